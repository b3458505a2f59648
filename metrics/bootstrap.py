"""Bootstrap confidence intervals for KAD, and for the adapter-minus-base KAD difference (paired).

Issue 33, stage 1: the statistics, on embeddings already computed (nothing is generated or embedded again).

**The duplicate-pair trap.** Resampling clips with replacement and applying KAD's unbiased formula to the resample
treats a clip drawn twice as two clips: their kernel value is k(z, z) = 1, the largest a kernel takes, so the
within-set means grow and the interval shifts up (on two sets from one distribution, a naive 95% interval rarely
holds the true value 0). Here a resample is a vector of counts over the original clips, and the within-set sums
leave out every pair of copies of one original clip:

    within(c) = (c^T K c - sum_p c_p^2 K_pp) / ((sum c)^2 - sum_p c_p^2)

which is the unbiased within-set mean over pairs of *different* clips, weighted by how often each was drawn; with
every count 1 it is exactly KAD's own term. The cross term is ``c_x^T K_xy c_y / (sum c_x sum c_y)``.

**Cost.** The three kernel matrices are computed once in float64 (sets of a few thousand clips: tens of MB); a
resample is then a few matrix-vector products of counts, never a copy of embeddings.

**Bandwidth.** Fixed at the full sets' value (KAD's rule: the median pairwise distance of the generated set), so
the interval describes the sampling of clips, not of the bandwidth rule.

**Paired difference.** Base and adapter clips come from the same prompts and seeds, row for row: one resample of
rows applies to both arms (and one resample of the reference to both), so the spread of the difference excludes
the prompt-to-prompt variation the two arms share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from metrics.checks import check_embedding_pair
from metrics.kad import KAD_SCALE, KERNEL_EPS
from metrics.median_distance import median_pairwise_distance

DEFAULT_RESAMPLES = 1000
METHOD = "percentile bootstrap over clips, pairs of copies of one clip left out of the within-set sums"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile interval, and how the interval was made."""

    value: float
    low: float
    high: float
    level: float
    resamples: int
    seed: int
    method: str = METHOD

    @property
    def defined(self) -> bool:
        """Whether the set was large enough for an interval (see :func:`_interval`)."""
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies on one side of 0 (a difference significant at ``level``)."""
        return self.low > 0.0 or self.high < 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _kernels(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K_xx, K_yy, K_xy in float64 for k(a, b) = exp(-||a - b||^2 / (2 s^2 + eps)) (metrics.kad's kernel)."""
    gamma = 1.0 / (2.0 * bandwidth**2 + KERNEL_EPS)
    a, b = x.double(), y.double()
    center = torch.cat([a, b]).mean(dim=0)
    a, b = a - center, b - center
    return tuple(torch.exp(-gamma * torch.cdist(p, q).pow(2)).numpy() for p, q in ((a, a), (b, b), (a, b)))


def _within(kernel: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean kernel over pairs of different original clips, per resample (rows of ``counts``)."""
    quadratic = np.einsum("rp,pq,rq->r", counts, kernel, counts)
    diagonal = (counts**2) @ np.diag(kernel)
    pairs = counts.sum(axis=1) ** 2 - (counts**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # no pair of different clips: NaN, left out later
        return (quadratic - diagonal) / pairs


def _kad(kernels: tuple[np.ndarray, np.ndarray, np.ndarray], cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    k_xx, k_yy, k_xy = kernels
    cross = np.einsum("rp,pq,rq->r", cx, k_xy, cy) / (cx.sum(axis=1) * cy.sum(axis=1))
    return KAD_SCALE * (_within(k_xx, cx) + _within(k_yy, cy) - 2.0 * cross)


def _counts(rng: np.random.Generator, size: int, resamples: int) -> np.ndarray:
    """``resamples`` draws of ``size`` rows with replacement, as counts per row ([resamples, size])."""
    draws = rng.integers(0, size, size=(resamples, size))
    return np.stack([np.bincount(row, minlength=size) for row in draws]).astype(np.float64)


def _interval(value: float, samples: np.ndarray, level: float, resamples: int, seed: int) -> Interval:
    """The percentile interval of the resampled values. A resample of a very small set can hold copies of one
    clip only (no pair of different clips: KAD undefined); such resamples are left out, and where they are half or
    more, the interval is NaN (too few clips for one)."""
    valid = samples[np.isfinite(samples)]
    if valid.size * 2 <= samples.size:
        return Interval(float(value), float("nan"), float("nan"), level, resamples, seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    return Interval(float(value), float(low), float(high), level, resamples, seed)


def _bandwidth(generated: torch.Tensor, bandwidth: float | None) -> float:
    return float(median_pairwise_distance(generated)) if bandwidth is None else float(bandwidth)


def bootstrap_kad(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray,
                  bandwidth: float | None = None, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                  level: float = 0.95) -> Interval:
    """KAD (as :func:`metrics.kad.kernel_audio_distance`) with its bootstrap interval over reference and
    generated clips (module docstring)."""
    x, y = check_embedding_pair(reference, generated, "KAD")
    kernels = _kernels(x, y, _bandwidth(y, bandwidth))
    ones_x, ones_y = np.ones((1, x.shape[0])), np.ones((1, y.shape[0]))
    value = float(_kad(kernels, ones_x, ones_y)[0])
    rng = np.random.default_rng(seed)
    samples = _kad(kernels, _counts(rng, x.shape[0], resamples), _counts(rng, y.shape[0], resamples))
    return _interval(value, samples, level, resamples, seed)


def paired_kad_difference(reference: torch.Tensor | np.ndarray, base: torch.Tensor | np.ndarray,
                          adapted: torch.Tensor | np.ndarray, bandwidth: float | None = None, *,
                          resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> Interval:
    """KAD(adapted) - KAD(base) against one reference, with a paired bootstrap interval: row i of ``base`` and of
    ``adapted`` share a prompt and seed and are resampled together. ``bandwidth`` None gives each arm its own
    (KAD's rule, as the reports compute each arm); a number fixes it for both.

    Raises:
        ValueError: the arms have different numbers of rows (they are not paired).
    """
    x, b = check_embedding_pair(reference, base, "KAD")
    _, a = check_embedding_pair(reference, adapted, "KAD")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired arms need the same clips: {b.shape[0]} base rows, {a.shape[0]} adapter rows")
    base_kernels = _kernels(x, b, _bandwidth(b, bandwidth))
    adapted_kernels = _kernels(x, a, _bandwidth(a, bandwidth))
    ones_x, ones_y = np.ones((1, x.shape[0])), np.ones((1, b.shape[0]))
    value = float(_kad(adapted_kernels, ones_x, ones_y)[0] - _kad(base_kernels, ones_x, ones_y)[0])
    rng = np.random.default_rng(seed)
    cx, cy = _counts(rng, x.shape[0], resamples), _counts(rng, b.shape[0], resamples)
    samples = _kad(adapted_kernels, cx, cy) - _kad(base_kernels, cx, cy)
    return _interval(value, samples, level, resamples, seed)


def bootstrap_mean(values: np.ndarray | torch.Tensor, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> Interval:
    """The mean of per-clip values (the CLAP score: one cosine per prompt-and-clip pair) with its interval."""
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    if data.size < 2:
        raise ValueError(f"an interval needs at least 2 values, got {data.size}")
    counts = _counts(np.random.default_rng(seed), data.size, resamples)
    return _interval(float(data.mean()), counts @ data / data.size, level, resamples, seed)


def paired_mean_difference(base: np.ndarray | torch.Tensor, adapted: np.ndarray | torch.Tensor, *,
                           resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> Interval:
    """mean(adapted) - mean(base) of per-clip values paired by row (same prompt and seed), with its interval.

    Raises:
        ValueError: the arms have different numbers of values.
    """
    b = np.asarray(base, dtype=np.float64).reshape(-1)
    a = np.asarray(adapted, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise ValueError(f"paired arms need the same clips: {b.size} base values, {a.size} adapter values")
    return bootstrap_mean(a - b, resamples=resamples, seed=seed, level=level)
