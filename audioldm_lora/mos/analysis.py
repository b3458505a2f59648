"""From accepted answer files to the tables of the report: MOS per system and genre, paired tests, A/B shares.

Only the ratings of real pages count: the attention-check pages (repeats, anchors) served to screen listeners and
are left out. Genre ``all`` pools every prompt; a genre row exists for each genre the key knows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from .screening import ListenerResult
from .stats import MosSummary, PairedTest, PreferenceTest, holm, preference_test, summarise, wilcoxon_test

ALL = "all"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rating:
    """One rating of a real clip by an accepted listener."""

    listener: str
    item: int
    genre: str
    system: str
    scale: str
    value: int


@dataclass(frozen=True)
class Choice:
    """One A/B decision of an accepted listener; ``winner`` is a system name or None for no preference."""

    listener: str
    item: int
    genre: str
    system_a: str
    system_b: str
    winner: str | None


@dataclass(frozen=True)
class MosRow:
    scale: str
    genre: str
    system: str
    summary: MosSummary
    n_listeners: int


@dataclass(frozen=True)
class PairRow:
    scale: str
    genre: str
    system_a: str
    system_b: str
    test: PairedTest
    p_holm: float


@dataclass(frozen=True)
class PreferenceRow:
    genre: str
    system_a: str
    system_b: str
    test: PreferenceTest
    p_holm: float
    n_listeners: int


@dataclass
class Analysis:
    """Everything the report shows."""

    test_id: str
    systems: list[str]
    scales: list[dict[str, Any]]
    genres: list[str]
    listeners: list[ListenerResult]
    mos: list[MosRow] = field(default_factory=list)
    pairs: list[PairRow] = field(default_factory=list)
    preferences: list[PreferenceRow] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def _genre_of(key: dict[str, Any], item: int) -> str:
    return key["items"][item]["genre"] or UNKNOWN


def collect_ratings(results: list[ListenerResult], key: dict[str, Any]) -> list[Rating]:
    """Ratings of real MOS pages from accepted listeners."""
    ratings = []
    for result in results:
        if not result.accepted:
            continue
        for (trial_id, clip, scale), value in result.answers.ratings.items():
            trial = key["trials"][trial_id]
            if trial["role"] != "real":
                continue
            info = key["clips"][clip]
            ratings.append(
                Rating(
                    result.answers.listener_id, info["item"], _genre_of(key, info["item"]), info["system"], scale, value
                )
            )
    return ratings


def collect_choices(results: list[ListenerResult], key: dict[str, Any]) -> list[Choice]:
    """A/B decisions on real pages from accepted listeners, with the systems in the key's order."""
    order = {system: index for index, system in enumerate(key["systems"])}
    choices = []
    for result in results:
        if not result.accepted:
            continue
        for trial_id, choice in result.answers.preferences.items():
            trial = key["trials"][trial_id]
            if trial["role"] != "real":
                continue
            a, b = sorted((key["clips"][clip]["system"] for clip in trial["clips"]), key=order.__getitem__)
            winner = None if choice == "none" else key["clips"][choice]["system"]
            choices.append(
                Choice(result.answers.listener_id, trial["item"], _genre_of(key, trial["item"]), a, b, winner)
            )
    return choices


def _genres(key: dict[str, Any]) -> list[str]:
    """``all`` then each genre in the key (``unknown`` for prompts without one, if some have one)."""
    named = sorted({item["genre"] for item in key["items"] if item["genre"]})
    if named and any(not item["genre"] for item in key["items"]):
        named.append(UNKNOWN)
    return [ALL] + named


def _mos_and_pairs(
    analysis: Analysis, ratings: list[Rating], scale: str, genre: str, confidence: float, n_resamples: int, seed: int
) -> None:
    """Append the MOS rows and the Holm-corrected paired tests of one scale and genre."""
    chosen = [r for r in ratings if r.scale == scale and (genre == ALL or r.genre == genre)]
    for system in analysis.systems:
        mine = [r for r in chosen if r.system == system]
        if mine:
            summary = summarise([r.value for r in mine], confidence, n_resamples, seed)
            analysis.mos.append(MosRow(scale, genre, system, summary, len({r.listener for r in mine})))
    paired = {(r.listener, r.item, r.system): r.value for r in chosen}
    units = sorted({(r.listener, r.item) for r in chosen})
    tests: list[tuple[str, str, PairedTest]] = []
    for a, b in itertools.combinations(analysis.systems, 2):
        both = [u for u in units if (*u, a) in paired and (*u, b) in paired]
        if both:
            tests.append((a, b, wilcoxon_test([paired[(*u, a)] for u in both], [paired[(*u, b)] for u in both])))
    for (a, b, test), adjusted in zip(tests, holm([test.p_value for _, _, test in tests])):
        analysis.pairs.append(PairRow(scale, genre, a, b, test, adjusted))


def _preferences(analysis: Analysis, choices: list[Choice], genre: str, confidence: float) -> None:
    """Append the Holm-corrected A/B preference rows of one genre."""
    tests: list[tuple[str, str, PreferenceTest, int]] = []
    for a, b in itertools.combinations(analysis.systems, 2):
        mine = [c for c in choices if c.system_a == a and c.system_b == b and (genre == ALL or c.genre == genre)]
        if mine:
            wins_a = sum(c.winner == a for c in mine)
            wins_b = sum(c.winner == b for c in mine)
            test = preference_test(wins_a, wins_b, len(mine) - wins_a - wins_b, confidence)
            tests.append((a, b, test, len({c.listener for c in mine})))
    for (a, b, test, n_listeners), adjusted in zip(tests, holm([t[2].p_value for t in tests])):
        analysis.preferences.append(PreferenceRow(genre, a, b, test, adjusted, n_listeners))


def analyse(
    key: dict[str, Any],
    results: list[ListenerResult],
    *,
    confidence: float = 0.95,
    n_resamples: int = 10000,
    seed: int = 0,
) -> Analysis:
    """Compute the MOS table, the paired Wilcoxon tests (Holm within scale and genre) and the A/B table."""
    analysis = Analysis(
        key["test_id"],
        list(key["systems"]),
        list(key["scales"]),
        _genres(key),
        results,
        settings={"confidence": confidence, "n_resamples": n_resamples, "seed": seed},
    )
    ratings = collect_ratings(results, key)
    for scale in (s["id"] for s in key["scales"]):
        for genre in analysis.genres:
            _mos_and_pairs(analysis, ratings, scale, genre, confidence, n_resamples, seed)
    choices = collect_choices(results, key)
    for genre in analysis.genres:
        _preferences(analysis, choices, genre, confidence)
    return analysis
