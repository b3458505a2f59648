"""Which listeners' answers are used: duplicates, tampered or unfinished files, and failed attention checks.

Every rejected file is kept with its reasons so the report can list it: a reviewer sees how many listeners were
excluded and why. The checks:

* duplicate: a listener id (or byte-identical file) seen in an earlier file; the first one is kept.
* order: the recorded presentation order differs from the one the page derives from the listener id.
* incomplete: not every page was answered.
* repeat: on a repeated MOS page, the mean absolute difference from the first ratings exceeds ``repeat_tolerance``;
  on a repeated A/B page, the opposite clip was preferred.
* anchor: the degraded clip was rated above ``anchor_max`` on the MOS scale, or preferred to (or tied with) its
  own original in an A/B page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .answers import AnswerFile
from .randomise import presentation_plan


@dataclass(frozen=True)
class ScreeningRules:
    """Thresholds of the attention checks."""

    repeat_tolerance: float = 1.0
    anchor_max: int = 2


@dataclass
class ListenerResult:
    """One answer file's fate: accepted when ``reasons`` is empty."""

    answers: AnswerFile
    reasons: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.reasons


def _system_of_choice(choice: str, key: dict[str, Any]) -> str | None:
    """The system behind an A/B choice (a clip id, possibly a copy), or None for "no preference"."""
    return None if choice == "none" else key["clips"][choice]["system"]


def _repeat_failures(answers: AnswerFile, key: dict[str, Any], rules: ScreeningRules) -> list[str]:
    """Compare each repeated page with its original."""
    reasons = []
    for trial_id, trial in key["trials"].items():
        if trial["role"] != "repeat":
            continue
        original_id = trial["original"]
        if trial["kind"] == "mos":
            differences = []
            for copy in trial["clips"]:
                source = key["clips"][copy]["source"]
                for scale in key["scales"]:
                    first = answers.ratings.get((original_id, source, scale["id"]))
                    again = answers.ratings.get((trial_id, copy, scale["id"]))
                    if first is not None and again is not None:
                        differences.append(abs(first - again))
            if differences and sum(differences) / len(differences) > rules.repeat_tolerance:
                mean = sum(differences) / len(differences)
                reasons.append(
                    f"repeat: rated a repeated page {mean:.2f} points away from the first time on average "
                    f"(tolerance {rules.repeat_tolerance:g})"
                )
        else:
            first_choice = answers.preferences.get(original_id)
            again_choice = answers.preferences.get(trial_id)
            if first_choice is None or again_choice is None:
                continue
            first_system = _system_of_choice(first_choice, key)
            again_system = _system_of_choice(again_choice, key)
            if first_system is not None and again_system is not None and first_system != again_system:
                reasons.append("repeat: preferred the other clip when an A/B page was repeated")
    return reasons


def _anchor_failures(answers: AnswerFile, key: dict[str, Any], rules: ScreeningRules) -> list[str]:
    """Check each degraded anchor."""
    reasons = []
    for trial_id, trial in key["trials"].items():
        if trial["role"] != "anchor":
            continue
        anchor = trial["anchor"]
        if trial["kind"] == "mos":
            value = answers.ratings.get((trial_id, anchor, "mos"))
            if value is not None and value > rules.anchor_max:
                reasons.append(f"anchor: rated the degraded anchor {value} (at most {rules.anchor_max} expected)")
        else:
            choice = answers.preferences.get(trial_id)
            if choice is not None and choice != next(c for c in trial["clips"] if c != anchor):
                said = "no preference" if choice == "none" else "the degraded clip"
                reasons.append(f"anchor: chose {said} over the original on the degraded A/B page")
    return reasons


def _answered(answers: AnswerFile, key: dict[str, Any]) -> int:
    """How many pages of the test this file answers completely."""
    scales = [scale["id"] for scale in key["scales"]]
    done = 0
    for trial_id, trial in key["trials"].items():
        if trial["kind"] == "ab":
            done += trial_id in answers.preferences
        else:
            done += all((trial_id, clip, scale) in answers.ratings for clip in trial["clips"] for scale in scales)
    return done


def screen(files: list[AnswerFile], key: dict[str, Any], rules: ScreeningRules | None = None) -> list[ListenerResult]:
    """Decide, in argument order, which answer files are used; see the module doc for the checks."""
    rules = rules or ScreeningRules()
    results = []
    seen_listeners: dict[str, AnswerFile] = {}
    seen_content: dict[str, AnswerFile] = {}
    n_trials = len(key["trials"])
    for answers in files:
        result = ListenerResult(answers)
        results.append(result)
        earlier = seen_content.get(answers.sha256) or seen_listeners.get(answers.listener_id)
        if earlier is not None:
            result.reasons.append(f"duplicate: listener {answers.listener_id!r} already answered in {earlier.path}")
            continue
        seen_content[answers.sha256] = answers
        seen_listeners[answers.listener_id] = answers
        expected = presentation_plan(key["blocks"], key["test_id"], answers.listener_id)
        recorded = [{"trial": e.get("trial"), "kind": e.get("kind"), "clips": e.get("clips")} for e in answers.plan]
        if recorded != expected:
            result.reasons.append(
                "order: the recorded presentation order does not match the listener id (edited file?)"
            )
        answered = _answered(answers, key)
        if answered < n_trials:
            result.reasons.append(f"incomplete: answered {answered} of {n_trials} pages")
        result.reasons.extend(_repeat_failures(answers, key, rules))
        result.reasons.extend(_anchor_failures(answers, key, rules))
    return results
