"""Confidence intervals for KAD, FAD and the CLAP score, and for adapter-minus-base differences (paired).

Everything works on embeddings already computed (nothing is generated or embedded again); docs/statistics.md says
what the intervals mean and how to read them.

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

**FAD: the jackknife, not the bootstrap.** FAD is a plug-in statistic whose value depends strongly on how many
distinct clips fit each Gaussian; a resample with copies fits the covariances to fewer distinct clips, so resampled
FADs sit far above the observed one (measured: on 64 and 48 clips from known 32-d Gaussians, the percentile interval
held the expected FAD at that clip count 0 times in 200, and its paired-difference interval 85% of the time).
FAD's interval is instead the normal interval ``value +- z * se`` with the grouped jackknife's standard error
(leave one group of rows out, at most :data:`JACKKNIFE_GROUPS` groups per set); it held the expected FAD 99.5% of
the time and the paired difference 98% (the jackknife overstates a variance slightly: conservative).
A resample's square-root trace needs no matrix square root: with factors ``F`` such that ``S = F^T F`` (the weighted,
centred rows), ``tr sqrt(S_r S_g)`` is the sum of the singular values of ``F_r F_g^T``, because the non-zero
eigenvalues of ``S_r S_g`` are the squared singular values of that product. A factor taller than the embedding
dimension is first reduced to its QR ``R`` (same ``F^T F``), so one evaluation costs at most a ``D x D`` SVD. The
value equals :func:`metrics.fad.frechet_audio_distance` (tests compare them).

**Bandwidth.** Fixed at the full sets' value (KAD's rule: the median pairwise distance of the generated set), so
the interval describes the sampling of clips, not of the bandwidth rule.

**Paired difference.** Base and adapter clips come from the same prompts and seeds, row for row: one resample of
rows applies to both arms (and one resample of the reference to both), so the spread of the difference excludes
the prompt-to-prompt variation the two arms share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
from scipy.stats import norm

from metrics.checks import check_embedding_pair
from metrics.kad import KAD_SCALE, KERNEL_EPS
from metrics.median_distance import median_pairwise_distance

DEFAULT_RESAMPLES = 1000
Metric = Literal["kad", "fad"]
METRICS: tuple[Metric, ...] = ("kad", "fad")
METHOD = "percentile bootstrap over clips, pairs of copies of one clip left out of the within-set sums"
JACKKNIFE_METHOD = "normal interval, standard error from the grouped jackknife over clips"
JACKKNIFE_GROUPS = 64


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


Counts = np.ndarray  # [resamples, rows]: how often each original row is drawn, per resample
Statistic = Callable[[Counts, Counts], np.ndarray]  # (reference counts, generated counts) -> one value per resample


def _centred(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Both sets in float64, less their common mean (distances are unchanged; the sums below lose no precision)."""
    a, b = x.double().numpy(), y.double().numpy()
    center = np.concatenate([a, b]).mean(axis=0)
    return a - center, b - center


def kad_statistic(reference: torch.Tensor, generated: torch.Tensor, bandwidth: float) -> Statistic:
    """KAD of resampled sets, for k(a, b) = exp(-||a - b||^2 / (2 s^2 + eps)) (metrics.kad's kernel): the three
    kernel matrices are computed once; a resample is then a few matrix-vector products of counts."""
    gamma = 1.0 / (2.0 * bandwidth**2 + KERNEL_EPS)
    a, b = (torch.from_numpy(m) for m in _centred(reference, generated))
    k_xx, k_yy, k_xy = (torch.exp(-gamma * torch.cdist(p, q).pow(2)).numpy() for p, q in ((a, a), (b, b), (a, b)))

    def statistic(cx: Counts, cy: Counts) -> np.ndarray:
        cross = _quadratic(cx, k_xy, cy) / (cx.sum(axis=1) * cy.sum(axis=1))
        return KAD_SCALE * (_within(k_xx, cx) + _within(k_yy, cy) - 2.0 * cross)

    return statistic


def _quadratic(left: Counts, kernel: np.ndarray, right: Counts) -> np.ndarray:
    """``left[r] @ kernel @ right[r]`` for every resample r, as one matrix product (BLAS; ``np.einsum`` over the
    three indices is tens of times slower on a few thousand clips)."""
    return np.einsum("rq,rq->r", left @ kernel, right)


def _within(kernel: np.ndarray, counts: Counts) -> np.ndarray:
    """Mean kernel over pairs of different original clips, per resample (rows of ``counts``)."""
    quadratic = _quadratic(counts, kernel, counts)
    diagonal = (counts**2) @ np.diag(kernel)
    pairs = counts.sum(axis=1) ** 2 - (counts**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # no pair of different clips: NaN, left out later
        return (quadratic - diagonal) / pairs


def _gaussian(rows: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, a factor ``F`` with ``F^T F`` the covariance (ddof 1) and its trace, of ``rows`` drawn ``counts``
    times. NaN trace when fewer than 2 clips were drawn."""
    total = counts.sum()
    mean = counts @ rows / total
    drawn = counts > 0
    if total < 2:
        return mean, np.zeros((0, rows.shape[1])), float("nan")
    factor = (rows[drawn] - mean) * np.sqrt(counts[drawn] / (total - 1.0))[:, None]
    if factor.shape[0] > factor.shape[1]:
        factor = np.linalg.qr(factor, mode="r")
    return mean, factor, float(np.square(factor).sum())


def fad_statistic(reference: torch.Tensor, generated: torch.Tensor) -> Statistic:
    """FAD of resampled sets (module docstring: the square-root trace from singular values)."""
    a, b = _centred(reference, generated)
    fitted: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray, float]] = {}

    def gaussian(side: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """:func:`_gaussian`, remembered: a jackknife leaves one set whole while the other's groups go in turn."""
        key = (side, counts.tobytes())
        if key not in fitted:
            fitted[key] = _gaussian(a if side == 0 else b, counts)
        return fitted[key]

    def statistic(cx: Counts, cy: Counts) -> np.ndarray:
        values = np.empty(cx.shape[0])
        for r in range(cx.shape[0]):
            mean_x, factor_x, trace_x = gaussian(0, cx[r])
            mean_y, factor_y, trace_y = gaussian(1, cy[r])
            singular = np.linalg.svd(factor_x @ factor_y.T, compute_uv=False) if np.isfinite(trace_x + trace_y) else 0
            values[r] = np.square(mean_x - mean_y).sum() + trace_x + trace_y - 2.0 * np.sum(singular)
        return values

    return statistic


def _counts(rng: np.random.Generator, size: int, resamples: int) -> Counts:
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


def _statistic(metric: Metric, reference: torch.Tensor, generated: torch.Tensor,
               bandwidth: float | None) -> Statistic:
    if metric == "kad":
        return kad_statistic(reference, generated, _bandwidth(generated, bandwidth))
    if metric == "fad":
        return fad_statistic(reference, generated)
    raise ValueError(f"no bootstrap for metric {metric!r}; choose one of {METRICS}")


def _leave_one_group_out(size: int, groups: int) -> Counts:
    """``[G, size]`` counts: row g leaves out the rows ``i`` with ``i % G == g`` (every other row counted once)."""
    groups = min(groups, size)
    return (np.arange(size)[None, :] % groups != np.arange(groups)[:, None]).astype(np.float64)


def _jackknife(value: float, statistic: Statistic, sizes: tuple[int, int], level: float) -> Interval:
    """The normal interval ``value +- z * se`` with the grouped jackknife's standard error, each set's groups left
    out in turn while the other set stays whole (two independent samples: their variances add)."""
    variance, evaluations = 0.0, 0
    for side, size in enumerate(sizes):
        left_out = _leave_one_group_out(size, JACKKNIFE_GROUPS)
        whole = np.ones((left_out.shape[0], sizes[1 - side]))
        values = statistic(*((left_out, whole) if side == 0 else (whole, left_out)))
        groups = left_out.shape[0]
        variance += (groups - 1) / groups * float(np.square(values - values.mean()).sum())
        evaluations += groups
    half = float(norm.ppf(0.5 + level / 2.0)) * np.sqrt(variance)
    return Interval(value, float(value - half), float(value + half), level, evaluations, 0, JACKKNIFE_METHOD)


def distance_interval(metric: Metric, reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray,
                      bandwidth: float | None = None, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = 0.95) -> Interval:
    """KAD (bootstrap) or FAD (jackknife), as :mod:`metrics.kad` and :mod:`metrics.fad` compute them, with an
    interval over reference and generated clips (module docstring). ``bandwidth`` is KAD's (None: KAD's rule)."""
    x, y = check_embedding_pair(reference, generated, metric.upper())
    statistic = _statistic(metric, x, y, bandwidth)
    value = float(statistic(np.ones((1, x.shape[0])), np.ones((1, y.shape[0])))[0])
    if metric == "fad":
        return _jackknife(value, statistic, (x.shape[0], y.shape[0]), level)
    rng = np.random.default_rng(seed)
    samples = statistic(_counts(rng, x.shape[0], resamples), _counts(rng, y.shape[0], resamples))
    return _interval(value, samples, level, resamples, seed)


def bootstrap_kad(reference: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray,
                  bandwidth: float | None = None, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                  level: float = 0.95) -> Interval:
    """KAD (as :func:`metrics.kad.kernel_audio_distance`) with its bootstrap interval (:func:`distance_interval`)."""
    return distance_interval("kad", reference, generated, bandwidth, resamples=resamples, seed=seed, level=level)


def paired_distance_difference(metric: Metric, reference: torch.Tensor | np.ndarray,
                               base: torch.Tensor | np.ndarray, adapted: torch.Tensor | np.ndarray,
                               bandwidth: float | None = None, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                               level: float = 0.95) -> Interval:
    """``metric``(adapted) - ``metric``(base) against one reference, with a paired interval (bootstrap for KAD,
    jackknife for FAD): row i of ``base`` and of ``adapted`` share a prompt and seed and are resampled (left out)
    together. KAD's ``bandwidth`` None gives
    each arm its own (KAD's rule, as the reports compute each arm); a number fixes it for both.

    Raises:
        ValueError: the arms have different numbers of rows (they are not paired).
    """
    x, b = check_embedding_pair(reference, base, metric.upper())
    _, a = check_embedding_pair(reference, adapted, metric.upper())
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired arms need the same clips: {b.shape[0]} base rows, {a.shape[0]} adapter rows")
    base_statistic, adapted_statistic = (_statistic(metric, x, arm, bandwidth) for arm in (b, a))
    ones_x, ones_y = np.ones((1, x.shape[0])), np.ones((1, b.shape[0]))
    value = float(adapted_statistic(ones_x, ones_y)[0] - base_statistic(ones_x, ones_y)[0])
    def difference(cx: Counts, cy: Counts) -> np.ndarray:
        return adapted_statistic(cx, cy) - base_statistic(cx, cy)

    if metric == "fad":
        return _jackknife(value, difference, (x.shape[0], b.shape[0]), level)
    rng = np.random.default_rng(seed)
    return _interval(value, difference(_counts(rng, x.shape[0], resamples), _counts(rng, b.shape[0], resamples)),
                     level, resamples, seed)


def paired_kad_difference(reference: torch.Tensor | np.ndarray, base: torch.Tensor | np.ndarray,
                          adapted: torch.Tensor | np.ndarray, bandwidth: float | None = None, *,
                          resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> Interval:
    """KAD(adapted) - KAD(base) with its paired interval (:func:`paired_distance_difference`)."""
    return paired_distance_difference("kad", reference, base, adapted, bandwidth, resamples=resamples, seed=seed,
                                      level=level)


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
