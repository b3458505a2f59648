"""Statistics against values computed by hand (formulas and textbook tables, not the code under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audioldm_lora.mos.randomise import fnv1a32, mulberry32, presentation_plan, shuffle
from audioldm_lora.mos.stats import (
    bootstrap_interval,
    holm,
    preference_test,
    rank_biserial,
    summarise,
    t_interval,
    wilcoxon_test,
)

RATINGS = [3, 4, 4, 5, 2, 3, 4, 5]


def test_t_interval_matches_the_formula() -> None:
    # mean 3.75; squared deviations sum to 7.5, so s = sqrt(7.5 / 7); t(0.975, 7) = 2.364624 from a t table.
    mean, s, t975 = 3.75, math.sqrt(7.5 / 7), 2.364624252
    half = t975 * s / math.sqrt(8)
    low, high = t_interval(RATINGS)
    assert low == pytest.approx(mean - half, abs=1e-6)
    assert high == pytest.approx(mean + half, abs=1e-6)
    assert (low, high) == pytest.approx((2.8846, 4.6154), abs=1e-4)


def test_t_interval_other_level_and_edge_cases() -> None:
    _, high = t_interval(RATINGS, confidence=0.90)  # t(0.95, 7) = 1.894579
    assert high - 3.75 == pytest.approx(1.894579 * math.sqrt(7.5 / 7) / math.sqrt(8), abs=1e-5)
    assert all(math.isnan(v) for v in t_interval([4]))
    assert t_interval([4, 4, 4]) == (4.0, 4.0)


def test_summary_counts_and_spread() -> None:
    summary = summarise(RATINGS, n_resamples=2000)
    assert summary.mean == 3.75 and summary.n == 8
    assert summary.sd == pytest.approx(math.sqrt(7.5 / 7))


def test_bootstrap_is_reproducible_and_agrees_with_t_on_a_large_sample() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(1, 6, size=400)
    first = bootstrap_interval(values, n_resamples=3000, seed=7)
    assert first == bootstrap_interval(values, n_resamples=3000, seed=7)
    low, high = t_interval(values)
    assert first[0] < values.mean() < first[1]
    assert first[0] == pytest.approx(low, abs=0.03) and first[1] == pytest.approx(high, abs=0.03)
    assert bootstrap_interval([5, 5, 5]) == (5.0, 5.0)
    assert all(math.isnan(v) for v in bootstrap_interval([3]))


def test_rank_biserial_by_hand() -> None:
    # d = 1, -2, 3, 0, 4: zero dropped, ranks of |d| 1..4, R+ = 1 + 3 + 4 = 8, R- = 2: r = (8 - 2) / 10.
    assert rank_biserial([1, -2, 3, 0, 4]) == pytest.approx(0.6)
    # ties: |d| = 1, 1, 1, 2 -> ranks 2, 2, 2, 4; R+ = 2 + 2 + 4 = 8, R- = 2.
    assert rank_biserial([1, 1, -1, 2]) == pytest.approx(0.6)
    assert rank_biserial([2, 3]) == 1.0 and rank_biserial([-1, -2]) == -1.0
    assert math.isnan(rank_biserial([0, 0]))


def test_wilcoxon_exact_p_by_enumeration() -> None:
    # d = 1, -2, 3, 4 (no ties): W = min(R+, R-) = 2. Of the 16 sign patterns, 3 have a rank sum <= 2
    # ({}, {1}, {2}), so the two-sided exact p = 2 * 3 / 16.
    x, y = [4, 2, 5, 5], [3, 4, 2, 1]
    result = wilcoxon_test(x, y)
    assert result.statistic == 2.0
    assert result.p_value == pytest.approx(6 / 16)
    assert result.rank_biserial == pytest.approx(0.6)
    assert result.n_pairs == 4 and result.n_nonzero == 4 and result.mean_difference == 1.5


def test_wilcoxon_all_ties_is_not_a_test() -> None:
    result = wilcoxon_test([3, 4], [3, 4])
    assert result.n_nonzero == 0 and math.isnan(result.p_value) and math.isnan(result.rank_biserial)


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([float("nan"), 0.02, 0.5])
    assert math.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.04, 0.5])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_preference_binomial_and_wilson_by_hand() -> None:
    result = preference_test(8, 2, 3)
    # two-sided sign test: 2 * P(X >= 8 | n=10, 1/2) = 2 * (45 + 10 + 1) / 1024
    assert result.p_value == pytest.approx(112 / 1024)
    z, n, p = 1.959963985, 10, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (result.ci_low, result.ci_high) == pytest.approx((centre - half, centre + half), abs=1e-6)
    assert result.share_a == 0.8 and result.ties == 3
    assert math.isnan(preference_test(0, 0, 4).p_value)


def test_fnv1a_and_mulberry32_reference_values() -> None:
    # FNV-1a test vectors, and mulberry32 outputs printed by the reference JavaScript one-liner under node.
    assert (fnv1a32(""), fnv1a32("a"), fnv1a32("foobar")) == (0x811C9DC5, 0xE40C292C, 0xBF9CF968)
    draw = mulberry32(0)
    assert [draw() for _ in range(3)] == [0.26642920868471265, 0.0003297457005828619, 0.2232720274478197]
    draw = mulberry32(1)
    assert [draw() for _ in range(3)] == [0.6270739405881613, 0.002735721180215478, 0.5274470399599522]


def test_plan_is_a_per_listener_permutation() -> None:
    blocks = [
        {"kind": "mos", "trials": [{"id": f"t{i}", "item": i, "clips": [f"c{i}a", f"c{i}b"]} for i in range(6)]},
        {"kind": "ab", "trials": [{"id": f"u{i}", "item": i, "clips": [f"d{i}a", f"d{i}b"]} for i in range(3)]},
    ]
    first = presentation_plan(blocks, "mos-test", "ann")
    assert first == presentation_plan(blocks, "mos-test", "ann")
    assert first != presentation_plan(blocks, "mos-test", "bob")
    assert [entry["kind"] for entry in first] == ["mos"] * 6 + ["ab"] * 3
    assert sorted(entry["trial"] for entry in first[:6]) == [f"t{i}" for i in range(6)]
    assert sorted(shuffle(list(range(10)), mulberry32(3))) == list(range(10))
