"""FAD's interval (jackknife) and the paired adapter-minus-base differences of every score (issue 33, stage 3).

FAD's value depends on the clip count, so its "true value" here is the expected FAD at the clip count of the test,
estimated from many fresh draws; the jackknife interval must hold it at least at its stated rate (it is
conservative), where the percentile bootstrap held it 0 times in 200 (metrics.bootstrap's docstring).
"""

from __future__ import annotations

import numpy as np
import pytest

from metrics.bootstrap import Interval, distance_interval, paired_distance_difference, paired_mean_difference
from metrics.comparison import compare_reports, comparison_markdown, flat_row
from metrics.fad import frechet_audio_distance
from metrics.genre_scores import OVERALL, GenreScores, LabelledEmbeddings
from metrics.paired import clips_for_significance, paired_differences

DIM = 24
SCALE = np.linspace(0.5, 2.0, DIM)


@pytest.mark.parametrize(("m", "n", "dim"), [(40, 30, 64), (64, 48, 24), (300, 200, 16)])
def test_fads_value_is_metrics_fads_for_fewer_and_more_clips_than_dimensions(m: int, n: int, dim: int) -> None:
    rng = np.random.default_rng(m)
    x, y = rng.normal(size=(m, dim)) * 2 + 5, rng.normal(size=(n, dim)) * 2.2 + 5.3
    expected = float(frechet_audio_distance(x, y))
    assert distance_interval("fad", x, y).value == pytest.approx(expected, rel=1e-7)


def test_fads_jackknife_interval_holds_the_expected_fad_and_the_paired_difference() -> None:
    rng = np.random.default_rng(3)
    m, n = 48, 40

    def draw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shared = rng.normal(size=(n, DIM)) * SCALE  # both arms: one prompt and seed per row
        return (rng.normal(size=(m, DIM)) * SCALE, shared * 1.1 + 0.3,
                shared + 0.15 + 0.3 * rng.normal(size=(n, DIM)))

    truths = np.array([[float(frechet_audio_distance(x, b)), float(frechet_audio_distance(x, a))]
                       for x, b, a in (draw() for _ in range(600))])
    expected_base, expected_difference = truths[:, 0].mean(), (truths[:, 1] - truths[:, 0]).mean()
    hits = paired_hits = 0
    for _ in range(100):
        x, b, a = draw()
        single = distance_interval("fad", x, b)
        paired = paired_distance_difference("fad", x, b, a)
        hits += single.low <= expected_base <= single.high
        paired_hits += paired.low <= expected_difference <= paired.high
    assert hits >= 92 and paired_hits >= 92, (hits, paired_hits)


def test_clips_for_significance_scales_the_zero_side_of_the_interval() -> None:
    interval = Interval(1.0, 0.5, 1.2, 0.95, 100, 0)  # significant: half 0.5 -> a quarter of the clips would do
    assert clips_for_significance(interval, 100) == 25
    interval = Interval(-0.2, -0.6, 0.3, 0.95, 100, 0)  # n.s.: the upper half 0.5 must shrink to 0.2
    assert clips_for_significance(interval, 48) == int(np.ceil(48 * (0.5 / 0.2) ** 2))
    assert clips_for_significance(Interval(0.0, -1, 1, 0.95, 100, 0), 48) is None
    assert clips_for_significance(Interval(1.0, float("nan"), float("nan"), 0.95, 100, 0), 48) is None


def test_the_predicted_clip_count_makes_the_difference_significant() -> None:
    """A shift found n.s. on 12 clips: at the predicted count the same shift is significant in most draws."""
    rng = np.random.default_rng(5)
    predictions = []
    for _ in range(10):
        base = rng.normal(size=12)
        difference = paired_mean_difference(base, base + 0.25 + rng.normal(size=12), resamples=400)
        if not difference.excludes_zero:
            predictions.append(clips_for_significance(difference, 12))
    assert predictions
    clips = int(np.median(predictions))
    significant = 0
    for draw in range(20):
        base = rng.normal(size=clips)
        significant += paired_mean_difference(base, base + 0.25 + rng.normal(size=clips), resamples=400,
                                              seed=draw).excludes_zero
    assert significant >= 10, (clips, significant)


def _arms(shift: float, seed: int = 0) -> tuple[GenreScores, GenreScores]:
    rng = np.random.default_rng(seed)
    genres = ["a"] * 30 + ["b"] * 30
    reference = LabelledEmbeddings(rng.normal(size=(60, 8)), genres, "reference")
    shared = rng.normal(size=(60, 8))
    text = rng.normal(size=(60, 8))
    arms = []
    for name, offset in (("base model", 0.0), ("LoRA", shift)):
        scores = GenreScores(reference, name, resamples=300, sync_on_compute=False)
        moved = shared + np.where(np.array(genres)[:, None] == "a", offset, 0.0)
        scores.update(moved, genres, text + offset * (np.array(genres)[:, None] == "a"))
        arms.append(scores)
    return arms[0], arms[1]


def test_identical_arms_are_not_significant_and_a_shifted_genre_is() -> None:
    base, same = _arms(0.0)
    for group, row in paired_differences(base, same).items():
        for metric in ("kad", "fad", "clap_score"):
            assert row[f"{metric}_delta_ci"] == [0.0, 0.0] and row[f"{metric}_delta_significant"] is False
    base, moved = _arms(1.5)
    differences = paired_differences(base, moved)
    assert differences["a"]["kad_delta_significant"] and differences["a"]["kad_delta_ci"][0] > 0
    assert differences["a"]["fad_delta_significant"] and differences["a"]["fad_delta_ci"][0] > 0
    assert differences["b"]["kad_delta_ci"] == [0.0, 0.0]  # genre b is the same clips on both arms
    rows = compare_reports(base.compute(), moved.compute(), differences)
    assert rows["a"]["kad_base_ci"] == base.compute()["rows"]["a"]["kad_ci"]
    assert rows["a"]["kad_lora_ci"] == moved.compute()["rows"]["a"]["kad_ci"]
    assert rows[OVERALL]["kad_delta_ci"] == differences[OVERALL]["kad_delta_ci"]
    markdown = comparison_markdown(rows)
    b_line = next(line for line in markdown.splitlines() if line.startswith("| b |"))
    assert b_line.count("n.s.") == 3 and "[+0.0000, +0.0000]" in b_line
    a_line = next(line for line in markdown.splitlines() if line.startswith("| a |"))
    assert "n.s." not in a_line and a_line.count("[") == 9  # base, LoRA and delta of three metrics
    assert "paired" in markdown and "jackknife" in markdown


def test_unpaired_arms_are_refused_and_intervals_can_be_off() -> None:
    base, lora = _arms(0.5)
    lora.update(np.zeros((1, 8)), ["a"], np.ones((1, 8)))
    with pytest.raises(ValueError, match="group 'all' holds 60 base clips and 61 LoRA clips"):
        paired_differences(base, lora)
    off = GenreScores(base.reference, "base", resamples=0, sync_on_compute=False)
    assert paired_differences(off, lora) == {}


def test_flat_rows_give_each_interval_bound_a_scalar_column() -> None:
    flat = flat_row({"kad_lora": 1.0, "kad_lora_ci": [0.5, 1.5], "fad_delta_ci": None, "n_generated": 8})
    assert flat == {"kad_lora": 1.0, "kad_lora_ci_low": 0.5, "kad_lora_ci_high": 1.5, "fad_delta_ci_low": None,
                    "fad_delta_ci_high": None, "n_generated": 8}
    assert not any(isinstance(value, list) for value in flat.values())
