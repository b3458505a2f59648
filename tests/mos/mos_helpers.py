"""Shared helpers of the listening-test kit's tests: synthetic clips and synthetic listeners.

The synthetic listener follows the page's rules (same presentation order from the same listener id, same answer
format), so the analysis can be tested without a browser; the browser test checks that the page does the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tests.browser_helpers import CHROMIUM_FLAGS  # noqa: F401  (the MOS browser test's import)
from audioldm_lora.mos.formats import ANSWER_FORMAT, FORMAT_VERSION
from audioldm_lora.mos.randomise import listener_seed, presentation_plan

ITEMS = [
    ("rock/0000", "energetic rock with distorted guitars", "rock"),
    ("rock/0001", "slow rock ballad with piano", "rock"),
    ("jazz/0000", "smooth jazz with saxophone", "jazz"),
    ("jazz/0001", "bebop jazz trio", "jazz"),
]
SYSTEMS = {"sysalpha": 220.0, "sysbeta": 330.0}
SAMPLE_RATE = 16000


def write_clips(
    root: Path,
    systems: dict[str, float] = SYSTEMS,
    items: list[tuple[str, str, str]] = ITEMS,
    sidecars: bool = True,
    seconds: float = 0.5,
) -> list[str]:
    """Write one short tone per system and item under ``root/<system>/<stem>.wav``; returns ``NAME=DIR`` specs."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    for index, (name, frequency) in enumerate(systems.items()):
        for number, (stem, prompt, genre) in enumerate(items):
            path = root / name / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            tone = 0.3 * np.sin(2 * np.pi * (frequency + 40 * number) * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
            sf.write(str(path), tone.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
            if sidecars:
                path.with_suffix(".json").write_text(json.dumps({"prompt": prompt, "genre": genre}))
    return [f"{name}={root / name}" for name in systems]


Rater = Callable[[dict[str, Any], dict[str, Any], str], int]
Chooser = Callable[[dict[str, Any], list[str]], str]


def synthetic_answers(
    key: dict[str, Any],
    listener_id: str,
    rate: Rater,
    prefer: Chooser | None = None,
    answer_pages: int | None = None,
) -> dict[str, Any]:
    """An answer document as the page exports it.

    ``rate(clip_info, trial_info, scale)`` gives each rating (``clip_info`` is the key's entry for the clip, with
    ``system``, ``item`` and ``role``); ``prefer(trial_info, clips)`` returns the chosen clip id or ``"none"``.
    ``answer_pages`` stops early, like a listener who did not finish.
    """
    plan = presentation_plan(key["blocks"], key["test_id"], listener_id)
    ratings, preferences = [], []
    for number, entry in enumerate(plan):
        if answer_pages is not None and number >= answer_pages:
            break
        trial = key["trials"][entry["trial"]]
        if entry["kind"] == "mos":
            for clip in entry["clips"]:
                for scale in key["scales"]:
                    ratings.append(
                        {
                            "trial": entry["trial"],
                            "clip": clip,
                            "scale": scale["id"],
                            "value": int(rate(key["clips"][clip], trial, scale["id"])),
                        }
                    )
        else:
            assert prefer is not None, "this test has A/B pages: pass prefer"
            preferences.append({"trial": entry["trial"], "choice": prefer(trial, entry["clips"])})
    return {
        "format": ANSWER_FORMAT,
        "version": FORMAT_VERSION,
        "test_id": key["test_id"],
        "listener_id": listener_id,
        "seed": listener_seed(key["test_id"], listener_id),
        "complete": answer_pages is None,
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": None,
        "exported_at": "2026-01-01T00:10:00Z",
        "user_agent": "synthetic",
        "plan": plan,
        "ratings": ratings,
        "preferences": preferences,
        "plays": [],
    }


def write_json(path: Path, document: Any) -> Path:
    """Write ``document`` as JSON and return ``path``."""
    path.write_text(json.dumps(document))
    return path


# Real-page ratings by listener, system and item index (items sorted by stem: jazz/0000, jazz/0001, rock/0000,
# rock/0001). By hand: sysalpha 23/8 = 2.875 overall, sysbeta 33/8 = 4.125.
TABLE = {
    "ann": {"sysalpha": [3, 2, 3, 4], "sysbeta": [4, 4, 5, 4]},
    "bob": {"sysalpha": [2, 3, 3, 3], "sysbeta": [5, 4, 4, 3]},
}
T_975 = {7: 2.364624252, 3: 3.182446305}  # Student t quantiles t(0.975, df) from a printed table


def policy(table: dict[str, list[int]], anchor: int = 1, shift: int = 0) -> Rater:
    """Rate real clips from ``table`` (second scale: one less), anchors ``anchor``, repeats ``shift`` higher."""

    def rate(clip: dict[str, Any], trial: dict[str, Any], scale: str) -> int:
        if clip["role"] == "anchor":
            return anchor
        value = table[clip["system"]][clip["item"]] - (1 if scale != "mos" else 0)
        if clip["role"] == "repeat":
            value += shift
        return max(1, min(5, value))

    return rate


def hand_interval(values: list[int]) -> tuple[float, float, float]:
    """Mean and 95% t-interval by the textbook formula, with the t quantile from :data:`T_975`."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[n - 1] * s / math.sqrt(n)
    return mean, mean - half, mean + half
