"""FAD against an independent float64 implementation of the fadtk 1.1.0 formula (eigenvalue square-root trace)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import reference_fad

import metrics.fad as fad_module
from metrics import EmbeddingError, frechet_audio_distance
from metrics.fad import embedding_statistics, frechet_distance_from_statistics


def _sets(seed: int, m: int, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    x = rng.standard_normal((m, dim)) @ mixing
    y = 1.2 * rng.standard_normal((n, dim)) @ mixing + 0.3
    return x.astype(np.float32), y.astype(np.float32)


def test_fad_matches_the_float64_reference() -> None:
    x, y = _sets(0, 500, 400, 16)
    got = frechet_audio_distance(torch.from_numpy(x), torch.from_numpy(y))
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(reference_fad(x, y), rel=1e-6)
    assert float(frechet_audio_distance(x, y)) == pytest.approx(reference_fad(x, y), rel=1e-6)  # numpy input


def test_statistics_are_float64_mean_and_ddof1_covariance() -> None:
    x, _ = _sets(1, 30, 2, 5)
    mu, cov = embedding_statistics(x)
    assert mu.dtype == np.float64 and cov.shape == (5, 5)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False, ddof=1), rtol=1e-12)


def test_fewer_clips_than_dimensions_is_finite_and_matches_the_eigen_method() -> None:
    x, y = _sets(2, 40, 30, 64)  # both covariances singular (rank 39 and 29 in 64 dimensions)
    got = float(frechet_audio_distance(x, y))
    assert np.isfinite(got)
    assert got == pytest.approx(reference_fad(x, y), rel=1e-6)
    # the same trace through the symmetric form sqrt(S1) S2 sqrt(S1), which has real eigenvalues by construction
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    cov_x, cov_y = np.cov(x64, rowvar=False), np.cov(y64, rowvar=False)
    w, v = np.linalg.eigh(cov_x)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace = np.sqrt(np.clip(np.linalg.eigvalsh(root @ cov_y @ root), 0, None)).sum()
    symmetric = ((x64.mean(0) - y64.mean(0)) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2 * trace
    assert got == pytest.approx(symmetric, rel=1e-6)


def test_identical_sets_give_zero_and_shift_adds_its_squared_norm() -> None:
    x, _ = _sets(3, 200, 2, 8)
    assert float(frechet_audio_distance(x, x)) == pytest.approx(0.0, abs=1e-8)
    shift = np.full(8, 0.5, dtype=np.float32)
    assert float(frechet_audio_distance(x, x + shift)) == pytest.approx(8 * 0.25, rel=1e-6)


def test_eps_offset_is_added_only_when_the_trace_is_not_finite(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _sets(4, 50, 60, 6)
    mu1, cov1 = embedding_statistics(x)
    mu2, cov2 = embedding_statistics(y)
    calls = []
    original = fad_module.trace_sqrt_product

    def first_fails(a: np.ndarray, b: np.ndarray) -> float:
        calls.append(a.copy())
        return float("nan") if len(calls) == 1 else original(a, b)

    monkeypatch.setattr(fad_module, "trace_sqrt_product", first_fails)
    value = frechet_distance_from_statistics(mu1, cov1, mu2, cov2, eps=1e-3)
    np.testing.assert_allclose(calls[1], cov1 + 1e-3 * np.eye(6))
    trace = original(cov1 + 1e-3 * np.eye(6), cov2 + 1e-3 * np.eye(6))
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * trace
    assert value == pytest.approx(expected, rel=1e-12)


def test_errors_name_the_set() -> None:
    x, y = _sets(5, 10, 12, 4)
    with pytest.raises(EmbeddingError, match=r"FAD needs at least 2 generated embeddings, got 1"):
        frechet_audio_distance(x, y[:1])
    with pytest.raises(EmbeddingError, match=r"reference embeddings have dimension 4 but generated .* dimension 3"):
        frechet_audio_distance(x, y[:, :3])
    y[2, 1] = np.nan
    with pytest.raises(EmbeddingError, match=r"generated embeddings contain NaN or inf in 1 of 12 rows \(rows \[2\]"):
        frechet_audio_distance(x, y)
