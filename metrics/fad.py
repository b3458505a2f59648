"""Fréchet Audio Distance (FAD), the value fadtk 1.1.0 computes.

Definition (docs/metrics.md, 'FAD'): fit a Gaussian to each embedding set (mean and covariance in float64,
``np.cov(rowvar=False)``, ddof 1) and return

    ||mu_r - mu_g||^2 + tr S_r + tr S_g - 2 tr sqrt(S_r S_g)

Why the trace of the square root is written here and not taken from scipy: fadtk itself does not trust
``scipy.linalg.sqrtm`` (on a real, nearly singular product it can silently return garbage, which is the normal case
with fewer clips than embedding dimensions) and uses the eigendecomposition ``V sqrt(L) V^-1`` instead. Its trace is
the sum of the square roots of the eigenvalues of ``S_r S_g``, so only the eigenvalues are needed: principal complex
square roots, real part, which for real eigenvalues is ``sqrt(max(lambda, 0))`` (rounding makes the zero eigenvalues
of a singular product slightly negative). fadtk is not a dependency (it pins numpy<2 and transformers<5).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from metrics.checks import check_embedding_pair

FAD_EPS = 1e-6


def embedding_statistics(embeddings: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (ddof 1) in float64 of ``[N, D]`` embeddings, as fadtk computes them."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    values = np.asarray(embeddings)
    # float64 accumulation without a float64 copy of the input; np.cov makes its own float64 centred copy
    return values.mean(axis=0, dtype=np.float64), np.atleast_2d(np.cov(values, rowvar=False, dtype=np.float64))


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """``tr sqrt(cov1 @ cov2)`` through the eigenvalues of the product (see the module docstring).

    Returns NaN when the eigen solver fails or yields non-finite values, so that the caller can regularise.
    """
    try:
        eigenvalues = scipy.linalg.eigvals(cov1 @ cov2, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return float("nan")
    return float(np.sqrt(eigenvalues.astype(np.complex128)).real.sum())


def frechet_distance_from_statistics(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, eps: float = FAD_EPS
) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2); adds ``eps * I`` to both covariances, as fadtk does,
    only when the square-root trace is not finite."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise ValueError(f"statistics have different dimensions: {mu1.shape} and {mu2.shape}")
    diff = mu1 - mu2
    tr_sqrt = trace_sqrt_product(cov1, cov2)
    if not np.isfinite(tr_sqrt):
        offset = np.eye(cov1.shape[0]) * eps
        tr_sqrt = trace_sqrt_product(cov1 + offset, cov2 + offset)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)


def frechet_audio_distance(
    reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray, eps: float = FAD_EPS
) -> torch.Tensor:
    """FAD between ``reference`` [m, D] and ``generated`` [n, D] embeddings (fadtk's background and eval sets).

    Returns:
        0-dim float64 tensor on the device of ``reference``. Raises :class:`~metrics.checks.EmbeddingError` for
        fewer than 2 rows in a set, mismatched dimensions or NaN/inf rows.
    """
    x, y = check_embedding_pair(reference, generated, "FAD")
    mu1, cov1 = embedding_statistics(x)
    mu2, cov2 = embedding_statistics(y)
    value = frechet_distance_from_statistics(mu1, cov1, mu2, cov2, eps=eps)
    return torch.tensor(value, dtype=torch.float64, device=x.device)
