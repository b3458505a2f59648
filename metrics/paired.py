"""Adapter minus base, per group, with paired intervals, a significance mark and the clips a verdict would need.

Both arms are :class:`~metrics.genre_scores.GenreScores` fed with clips of the same prompts and seeds in the same
order (the evaluation callback, the demo's toy report): row i of one arm and row i of the other share a prompt and a
seed, so they are resampled together (:mod:`metrics.bootstrap`). The spread of a difference then leaves out the
prompt-to-prompt variation both arms share, which is why a paired interval is narrower than the two arms' intervals
suggest. docs/statistics.md says how to read the results.
"""

from __future__ import annotations

import math
from typing import Any

from metrics.bootstrap import Interval, paired_distance_difference, paired_mean_difference
from metrics.checks import EmbeddingError
from metrics.genre_scores import INTERVAL_LEVEL, GenreScores

DIFFERENCE_METRICS = ("clap_score", "kad", "fad")


def clips_for_significance(interval: Interval, clips: int) -> int | None:
    """Clips per set at which a difference of the observed size would be significant at the interval's level.

    The interval's half on the zero side shrinks as ``1 / sqrt(clips)`` when every set (both arms and the
    reference) grows by the same factor; the answer is the clip count at which that half equals the observed
    difference. It is an order of magnitude for planning an evaluation, not a guarantee: the observed difference is
    itself uncertain. None where the difference is 0 or the interval is undefined.
    """
    if not interval.defined or interval.value == 0.0:
        return None
    half = interval.value - interval.low if interval.value > 0 else interval.high - interval.value
    return max(2, math.ceil(clips * (half / abs(interval.value)) ** 2))


def _difference(metric: str, base: GenreScores, lora: GenreScores, group: str) -> Interval | None:
    """The paired interval of ``metric`` for ``group``, or None where either arm has no value for it."""
    if metric == "clap_score":
        base_scores, lora_scores = base.clap_scores(group), lora.clap_scores(group)
        if base_scores is None or lora_scores is None or base_scores.numel() < 2:
            return None
        return paired_mean_difference(base_scores.numpy(), lora_scores.numpy(), resamples=base.resamples,
                                      seed=base.bootstrap_seed, level=INTERVAL_LEVEL)
    reference, base_clips = base.embedding_sets(group)
    _, lora_clips = lora.embedding_sets(group)
    try:
        return paired_distance_difference(metric, reference, base_clips, lora_clips, base.bandwidth,
                                          resamples=base.resamples, seed=base.bootstrap_seed, level=INTERVAL_LEVEL)
    except EmbeddingError:  # too few clips in a genre: its row already says so and has no value
        return None


def paired_differences(base: GenreScores, lora: GenreScores) -> dict[str, dict[str, Any]]:
    """``{group: {"<metric>_delta_ci": [low, high] | None, "<metric>_delta_significant": bool | None,
    "<metric>_clips_needed": int | None}}`` for every group both arms hold (LoRA minus base, as
    :func:`metrics.comparison.compare_reports` writes the deltas). Empty when intervals are off (``resamples=0``).

    Raises:
        ValueError: the arms are not paired (a group holds different numbers of clips in each, or their reference
            sets differ).
    """
    if not base.resamples:
        return {}
    if base.reference is not lora.reference and base.reference.embeddings.shape != lora.reference.embeddings.shape:
        raise ValueError("paired arms must be scored against the same reference clips")
    differences: dict[str, dict[str, Any]] = {}
    for group in (g for g in lora.group_names if g in base.group_names):
        n_base, n_lora = base.embedding_sets(group)[1].shape[0], lora.embedding_sets(group)[1].shape[0]
        if n_base != n_lora:
            raise ValueError(f"group {group!r} holds {n_base} base clips and {n_lora} LoRA clips; a paired "
                             f"comparison needs the same prompts and seeds on both arms")
        row: dict[str, Any] = {}
        for metric in DIFFERENCE_METRICS:
            interval = _difference(metric, base, lora, group)
            usable = interval is not None and interval.defined
            row[f"{metric}_delta_ci"] = [interval.low, interval.high] if usable else None
            row[f"{metric}_delta_significant"] = interval.excludes_zero if usable else None
            row[f"{metric}_clips_needed"] = clips_for_significance(interval, n_lora) if usable else None
        differences[group] = row
    return differences
