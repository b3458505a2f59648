"""Bootstrap intervals of KAD (issue 33, stage 1): the point value is KAD's, the intervals cover the true value at
their stated rate in simulation, shrink as clips grow, and find a known shift; the paired difference likewise.

The true KAD of two Gaussians N(0, I) and N(mu, I) in d dimensions under the Gaussian kernel of fixed bandwidth s
is 100 * 2 (s^2 / (s^2 + 2))^(d/2) (1 - exp(-|mu|^2 / (2 (s^2 + 2)))) (kernel mean embeddings of Gaussians).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.bootstrap import bootstrap_kad, paired_kad_difference
from metrics.kad import kernel_audio_distance

DIM, BANDWIDTH = 16, 4.0


def true_kad(shift: float) -> float:
    ratio = BANDWIDTH**2 / (BANDWIDTH**2 + 2.0)
    return 100.0 * 2.0 * ratio ** (DIM / 2) * (1.0 - np.exp(-DIM * shift**2 / (2.0 * (BANDWIDTH**2 + 2.0))))


def test_the_point_value_is_kads_own() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, DIM)), rng.normal(size=(33, DIM)) + 0.2
    expected = float(kernel_audio_distance(x, y, dtype=torch.float64))
    assert bootstrap_kad(x, y, resamples=10).value == pytest.approx(expected, rel=1e-9, abs=1e-9)
    fixed = float(kernel_audio_distance(x, y, BANDWIDTH, dtype=torch.float64))
    assert bootstrap_kad(x, y, BANDWIDTH, resamples=10).value == pytest.approx(fixed, rel=1e-9, abs=1e-9)


def test_the_interval_covers_the_true_kad_at_its_rate_and_shrinks_with_clips() -> None:
    rng = np.random.default_rng(1)
    truth, draws = true_kad(0.3), 200
    for clips, expected_width in ((48, None), (96, None)):
        hits, widths = 0, []
        for draw in range(draws):
            x, y = rng.normal(size=(clips, DIM)), rng.normal(size=(clips, DIM)) + 0.3
            interval = bootstrap_kad(x, y, BANDWIDTH, resamples=200, seed=draw)
            hits += interval.low <= truth <= interval.high
            widths.append(interval.high - interval.low)
        assert 0.92 <= hits / draws <= 0.99, (clips, hits / draws)
        if clips == 48:
            width_48 = float(np.mean(widths))
    assert float(np.mean(widths)) < 0.75 * width_48  # twice the clips: a narrower interval


def test_one_distribution_is_not_significant_and_a_shift_is() -> None:
    """Where a clip drawn twice counted as two clips (its kernel with itself is 1), the interval of two sets from
    one distribution sat above zero most of the time; leaving those pairs out keeps zero inside."""
    rng = np.random.default_rng(2)
    same = [bootstrap_kad(rng.normal(size=(48, DIM)), rng.normal(size=(48, DIM)), resamples=200, seed=i)
            for i in range(40)]
    assert sum(not interval.excludes_zero for interval in same) >= 37
    shifted = [bootstrap_kad(rng.normal(size=(48, DIM)), rng.normal(size=(48, DIM)) + 0.6, resamples=200, seed=i)
               for i in range(20)]
    assert all(interval.excludes_zero and interval.low > 0 for interval in shifted)


def test_the_paired_difference_covers_the_truth_and_is_zero_for_identical_arms() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(48, DIM))
    arm = rng.normal(size=(48, DIM)) + 0.3
    identical = paired_kad_difference(reference, arm, arm.copy(), resamples=100)
    assert identical.value == identical.low == identical.high == 0.0 and not identical.excludes_zero
    truth, hits, draws = true_kad(0.15) - true_kad(0.45), 0, 150
    for draw in range(draws):
        reference, noise = rng.normal(size=(48, DIM)), rng.normal(size=(48, DIM))
        # One prompt and seed per row: both arms share the row's noise, as two models sampled from one seed do.
        difference = paired_kad_difference(reference, noise + 0.45, noise + 0.15, BANDWIDTH, resamples=200, seed=draw)
        hits += difference.low <= truth <= difference.high
    assert 0.92 <= hits / draws <= 0.99, hits / draws
    with pytest.raises(ValueError, match="paired arms need the same clips"):
        paired_kad_difference(reference, arm, arm[:-1])


def test_the_mean_interval_covers_the_true_mean_and_pairs_cancel_shared_variation() -> None:
    """The CLAP score is a mean of per-pair cosines: its interval covers the true mean at the stated rate, and
    pairing removes the prompt-to-prompt variation both arms share."""
    from metrics.bootstrap import bootstrap_mean, paired_mean_difference

    rng = np.random.default_rng(4)
    hits = sum(bootstrap_mean(v, resamples=300, seed=i).low <= 0.3 <= bootstrap_mean(v, resamples=300, seed=i).high
               for i, v in enumerate(rng.normal(0.3, 0.1, size=(300, 48))))
    assert 0.92 <= hits / 300 <= 0.98, hits / 300
    prompt_effect = rng.normal(0.0, 0.2, size=48)  # shared by both arms
    base = 0.30 + prompt_effect + rng.normal(0.0, 0.01, size=48)
    adapted = 0.31 + prompt_effect + rng.normal(0.0, 0.01, size=48)
    paired = paired_mean_difference(base, adapted, resamples=500)
    assert paired.excludes_zero and paired.low > 0  # +0.01 found: the shared variation cancels
    unpaired_width = bootstrap_mean(adapted, resamples=500).high - bootstrap_mean(adapted, resamples=500).low
    assert paired.high - paired.low < 0.2 * unpaired_width
    with pytest.raises(ValueError, match="paired arms need the same clips"):
        paired_mean_difference(base, adapted[:-1])
