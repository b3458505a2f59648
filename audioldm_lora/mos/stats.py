"""The statistics of a listening test, each a small function a reviewer can check against a textbook.

* MOS: the mean rating, with a Student-t confidence interval ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)`` (``s`` with
  ``ddof=1``) and a bootstrap interval (``scipy.stats.bootstrap``, BCa, fixed seed) that does not assume normality.
* Paired comparison of two systems: ``scipy.stats.wilcoxon`` on the per-listener, per-prompt differences
  (zeros dropped, Wilcoxon's convention), with the matched-pairs rank-biserial correlation as effect size
  ``r = (R+ - R-) / (R+ + R-)`` over the ranks of the non-zero absolute differences (Kerby 2014): +1 when every
  listener rated the first system higher, -1 when every listener rated it lower.
* Holm's step-down correction for the family of pairwise tests.
* A/B preference: the share of non-tied choices for the first system, a Wilson interval, a two-sided binomial test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

NAN = float("nan")


@dataclass(frozen=True)
class MosSummary:
    """Mean opinion score of a set of ratings with both intervals (NaN where undefined, e.g. one rating)."""

    mean: float
    sd: float
    n: int
    t_low: float
    t_high: float
    boot_low: float
    boot_high: float


def t_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean; NaN for fewer than two values, a point for zero spread."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return NAN, NAN
    mean = float(x.mean())
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean - half, mean + half


def bootstrap_interval(
    values: ArrayLike, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """BCa bootstrap interval for the mean with a fixed seed (reproducible); a point for zero spread."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return NAN, NAN
    if np.ptp(x) == 0.0:
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on tiny discrete samples can warn; the interval is still reported
        result = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarise(values: ArrayLike, confidence: float = 0.95, n_resamples: int = 10000, seed: int = 0) -> MosSummary:
    """MOS, standard deviation, count and both intervals of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if x.size else NAN
    sd = float(x.std(ddof=1)) if x.size > 1 else NAN
    t_low, t_high = t_interval(x, confidence)
    boot_low, boot_high = bootstrap_interval(x, confidence, n_resamples, seed)
    return MosSummary(mean, sd, int(x.size), t_low, t_high, boot_low, boot_high)


def rank_biserial(differences: ArrayLike) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped); NaN when all are zero."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return NAN
    ranks = stats.rankdata(np.abs(d))
    r_plus, r_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    return (r_plus - r_minus) / (r_plus + r_minus)


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of ``x - y`` over paired ratings."""

    n_pairs: int
    n_nonzero: int
    mean_difference: float
    median_difference: float
    statistic: float
    p_value: float
    rank_biserial: float


def wilcoxon_test(x: ArrayLike, y: ArrayLike) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test (scipy defaults: zeros dropped, exact/permutation/normal as scipy picks)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    d = a - b
    n_nonzero = int(np.count_nonzero(d))
    mean_d = float(d.mean()) if d.size else NAN
    median_d = float(np.median(d)) if d.size else NAN
    if n_nonzero == 0:
        return PairedTest(int(d.size), 0, mean_d, median_d, NAN, NAN, NAN)
    result = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return PairedTest(
        int(d.size), n_nonzero, mean_d, median_d, float(result.statistic), float(result.pvalue), rank_biserial(d)
    )


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values; NaN entries stay NaN and do not count towards the family size."""
    p = [float(v) for v in p_values]
    valid = sorted((value, index) for index, value in enumerate(p) if not math.isnan(value))
    m = len(valid)
    adjusted = [NAN] * len(p)
    running = 0.0
    for rank, (value, index) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * value))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class PreferenceTest:
    """A/B preference counts for systems a and b; ``share_a`` over non-tied choices."""

    wins_a: int
    wins_b: int
    ties: int
    share_a: float
    ci_low: float
    ci_high: float
    p_value: float


def preference_test(wins_a: int, wins_b: int, ties: int, confidence: float = 0.95) -> PreferenceTest:
    """Share of a among decided choices, its Wilson interval, and the two-sided binomial (sign) test against 0.5."""
    decided = wins_a + wins_b
    if decided == 0:
        return PreferenceTest(wins_a, wins_b, ties, NAN, NAN, NAN, NAN)
    result = stats.binomtest(wins_a, decided, 0.5, alternative="two-sided")
    interval = result.proportion_ci(confidence_level=confidence, method="wilson")
    return PreferenceTest(
        wins_a, wins_b, ties, wins_a / decided, float(interval.low), float(interval.high), float(result.pvalue)
    )
