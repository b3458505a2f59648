"""Loading the key and the listeners' answer files, and checking that they belong together.

Anything that means the file is not a well-formed answer file of *this* test (invalid JSON, another format, a
different test id, clip or trial ids the key does not know, ratings outside 1..5) raises :class:`MosInputError`
naming the file: the analysis stops before writing anything. Whether a well-formed file's *listener* is used is
decided later, by :mod:`.screening`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MosInputError
from .formats import ANSWER_FORMAT, FORMAT_VERSION, KEY_FORMAT


@dataclass(frozen=True)
class AnswerFile:
    """One listener's answers: ratings keyed by (trial, clip, scale), A/B choices keyed by trial."""

    path: Path
    sha256: str
    listener_id: str
    seed: int | None
    complete: bool
    plan: list[dict[str, Any]]
    ratings: dict[tuple[str, str, str], int] = field(default_factory=dict)
    preferences: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path, what: str) -> tuple[Any, bytes]:
    """Parse ``path`` as JSON; a clear MosInputError for a missing, unreadable or malformed file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MosInputError(f"{path}: cannot read the {what} ({error.strerror or error}).") from error
    try:
        return json.loads(data.decode("utf-8-sig")), data
    except UnicodeDecodeError as error:
        raise MosInputError(f"{path}: the {what} is not UTF-8 text; is it the right file?") from error
    except json.JSONDecodeError as error:
        raise MosInputError(
            f"{path}: the {what} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "ask for the file again, unedited."
        ) from error


def load_key(path: str | Path) -> dict[str, Any]:
    """Read and check the key written by ``mos build``."""
    path = Path(path)
    key, _ = _read_json(path, "key file")
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        raise MosInputError(f"{path}: not a listening-test key (written by 'mos build' as <OUT>.key.json).")
    if key.get("version") != FORMAT_VERSION:
        raise MosInputError(f"{path}: key version {key.get('version')!r} is not supported (expected {FORMAT_VERSION}).")
    for name in ("test_id", "systems", "scales", "items", "clips", "trials", "blocks"):
        if name not in key:
            raise MosInputError(f"{path}: the key lacks {name!r}; it is damaged, rebuild the test or restore it.")
    return key


def _fail(path: Path, message: str) -> MosInputError:
    return MosInputError(f"{path}: {message}")


def _trial(key: dict[str, Any], name: Any) -> dict[str, Any] | None:
    """The key's trial called ``name``; ``None`` for an unknown name or one that is not a string (an edited file
    can hold any JSON value there)."""
    return key["trials"].get(name) if isinstance(name, str) else None


def _check_plan(path: Path, plan: Any, key: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded presentation order must name the key's trials and each trial's own clips."""
    if not isinstance(plan, list):
        raise _fail(path, "'plan' must be a list of presented trials.")
    for entry in plan:
        if not isinstance(entry, dict) or not isinstance(entry.get("clips"), list):
            raise _fail(path, "an entry of 'plan' is not an object with 'trial' and 'clips'.")
        trial = _trial(key, entry.get("trial"))
        clips = entry["clips"]
        if trial is None or not all(isinstance(c, str) for c in clips) or sorted(clips) != sorted(trial["clips"]):
            raise _fail(path, f"'plan' names trial {entry.get('trial')!r} with clips this test's key does not hold.")
    return plan


def _check_ratings(path: Path, ratings: Any, key: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    """Ratings: known MOS trial, a clip of that trial, a known scale, an integer 1..5, at most once each."""
    if not isinstance(ratings, list):
        raise _fail(path, "'ratings' must be a list.")
    scales = {scale["id"] for scale in key["scales"]}
    out: dict[tuple[str, str, str], int] = {}
    for number, rating in enumerate(ratings, start=1):
        if not isinstance(rating, dict):
            raise _fail(path, f"rating {number} is not an object.")
        trial = _trial(key, rating.get("trial"))
        if trial is None or trial["kind"] != "mos":
            raise _fail(
                path, f"rating {number} names trial {rating.get('trial')!r}, which is not a rating page of this test."
            )
        if rating.get("clip") not in trial["clips"]:
            raise _fail(
                path, f"rating {number} names clip {rating.get('clip')!r}, which is not on page {rating['trial']}."
            )
        if not isinstance(rating.get("scale"), str) or rating["scale"] not in scales:
            raise _fail(path, f"rating {number} uses scale {rating.get('scale')!r}; this test has {sorted(scales)}.")
        value = rating.get("value")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise _fail(path, f"rating {number} has value {value!r}; ratings are whole numbers from 1 to 5.")
        index = (rating["trial"], rating["clip"], rating["scale"])
        if index in out:
            raise _fail(path, f"clip {rating['clip']} on page {rating['trial']} is rated twice on {rating['scale']}.")
        out[index] = value
    return out


def _check_preferences(path: Path, preferences: Any, key: dict[str, Any]) -> dict[str, str]:
    """A/B choices: a known A/B trial, and one of its clips or ``"none"``, at most once each."""
    if not isinstance(preferences, list):
        raise _fail(path, "'preferences' must be a list.")
    out: dict[str, str] = {}
    for number, entry in enumerate(preferences, start=1):
        if not isinstance(entry, dict):
            raise _fail(path, f"preference {number} is not an object.")
        trial = _trial(key, entry.get("trial"))
        if trial is None or trial["kind"] != "ab":
            raise _fail(
                path, f"preference {number} names trial {entry.get('trial')!r}, which is not an A/B page of this test."
            )
        choice = entry.get("choice")
        if not isinstance(choice, str) or (choice != "none" and choice not in trial["clips"]):
            raise _fail(path, f"preference {number} chooses {choice!r}, which is not a clip of page {entry['trial']}.")
        if entry["trial"] in out:
            raise _fail(path, f"page {entry['trial']} has two preferences.")
        out[entry["trial"]] = choice
    return out


def load_answers(path: str | Path, key: dict[str, Any]) -> AnswerFile:
    """Read one answer file and check it against ``key`` (see the module doc for what is an error)."""
    path = Path(path)
    doc, raw = _read_json(path, "answer file")
    if not isinstance(doc, dict) or doc.get("format") != ANSWER_FORMAT:
        raise _fail(path, "not a listening-test answer file (it should come from the page's 'Download answers').")
    if doc.get("version") != FORMAT_VERSION:
        raise _fail(path, f"answer file version {doc.get('version')!r} is not supported (expected {FORMAT_VERSION}).")
    if doc.get("test_id") != key["test_id"]:
        raise _fail(
            path,
            f"these answers belong to test {doc.get('test_id')!r}, but the key is for test {key['test_id']!r}; "
            "pass the key written when this listener's page was built.",
        )
    listener = doc.get("listener_id")
    if not isinstance(listener, str) or not listener.strip():
        raise _fail(path, "the answer file has no listener id.")
    seed = doc.get("seed")
    return AnswerFile(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        listener_id=listener,
        seed=seed if isinstance(seed, int) else None,
        complete=bool(doc.get("complete")),
        plan=_check_plan(path, doc.get("plan"), key),
        ratings=_check_ratings(path, doc.get("ratings", []), key),
        preferences=_check_preferences(path, doc.get("preferences", []), key),
    )
