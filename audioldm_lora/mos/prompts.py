"""Prompt and genre metadata for the clips of a listening test.

Three sources, in this order of precedence:

1. ``--prompts FILE``: a plain-text file with one prompt per line (matched to the clip names in sorted order), or a
   CSV / JSONL / JSON-list file with ``path`` and ``prompt`` columns and an optional ``genre`` column (matched by
   the clip's relative path, with or without its extension or a leading system folder).
2. A JSON sidecar ``<stem>.json`` beside a clip, with a ``prompt`` key and optionally ``genre``.
3. Nothing: the prompt is left empty (a pure quality test), and the genre falls back to the clip's first folder.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .audio import AUDIO_EXTENSIONS
from .errors import MosInputError

PATH_KEYS = ("path", "stem", "file", "filename", "name", "clip")
PROMPT_KEYS = ("prompt", "caption", "text")
GENRE_KEYS = ("genre",)


@dataclass(frozen=True)
class PromptInfo:
    """What listeners are told about a clip: the text prompt (may be empty) and its genre, where known."""

    prompt: str
    genre: str | None


def _first(record: dict, keys: tuple[str, ...]) -> object | None:
    """The value of the first of ``keys`` present in ``record`` (case-insensitive keys)."""
    lowered = {str(key).strip().lower(): value for key, value in record.items()}
    for key in keys:
        if key in lowered and lowered[key] not in (None, ""):
            return lowered[key]
    return None


def _match_stem(value: str, stems: list[str]) -> str | None:
    """Find the clip stem that a prompt file's path entry names: exact, or as a suffix of a longer path."""
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    path = PurePosixPath(text)
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        path = path.with_suffix("")
    text = str(path)
    if text in stems:
        return text
    suffix_matches = [stem for stem in stems if text.endswith("/" + stem)]
    if suffix_matches:
        return max(suffix_matches, key=len)
    basename_matches = [stem for stem in stems if PurePosixPath(stem).name == path.name]
    return basename_matches[0] if len(basename_matches) == 1 else None


def _read_records(path: Path) -> list[dict]:
    """Rows of a CSV, JSONL or JSON-list prompt file as dicts; raises MosInputError on malformed content."""
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise MosInputError(f"{path}: the CSV file has no header row; expected columns path,prompt[,genre].")
        return [dict(row) for row in reader]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise MosInputError(
                f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
            ) from error
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise MosInputError(f"{path}: expected a JSON list of objects with path and prompt keys.")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise MosInputError(f"{path}: line {number} is not valid JSON ({error.msg}).") from error
        if not isinstance(row, dict):
            raise MosInputError(f"{path}: line {number} is not a JSON object with path and prompt keys.")
        records.append(row)
    return records


def load_prompt_file(path: str | Path, stems: list[str]) -> dict[str, PromptInfo]:
    """Prompts for every stem in ``stems`` from ``path``; every stem must get one, and every entry must match a clip."""
    path = Path(path)
    if not path.is_file():
        raise MosInputError(f"{path}: prompt file not found.")
    stems = sorted(stems)
    if path.suffix.lower() not in (".csv", ".jsonl", ".json"):
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if len(lines) != len(stems):
            raise MosInputError(
                f"{path}: {len(lines)} prompts for {len(stems)} clip names. A plain-text prompt file gives one prompt "
                f"per line for the clips in sorted name order (first: {stems[0]!r}); use a CSV or JSONL file with "
                "path and prompt columns to match prompts by name."
            )
        return {stem: PromptInfo(line, None) for stem, line in zip(stems, lines)}
    found: dict[str, PromptInfo] = {}
    for number, record in enumerate(_read_records(path), start=1):
        where = _first(record, PATH_KEYS)
        prompt = _first(record, PROMPT_KEYS)
        if where is None or prompt is None:
            raise MosInputError(
                f"{path}: entry {number} lacks a path or a prompt (expected keys path, prompt[, genre])."
            )
        stem = _match_stem(str(where), stems)
        if stem is None:
            raise MosInputError(f"{path}: entry {number} names {where!r}, which matches no clip in the system folders.")
        genre = _first(record, GENRE_KEYS)
        found[stem] = PromptInfo(str(prompt).strip(), None if genre is None else str(genre).strip())
    missing = [stem for stem in stems if stem not in found]
    if missing:
        raise MosInputError(f"{path}: no prompt for {len(missing)} clip(s): {', '.join(missing[:10])}.")
    return found


def read_sidecar(audio_path: Path) -> PromptInfo | None:
    """The ``<stem>.json`` sidecar beside ``audio_path``, if any; raises MosInputError when it is malformed."""
    sidecar = audio_path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MosInputError(f"{sidecar}: sidecar is not valid JSON ({error}).") from error
    if not isinstance(data, dict):
        raise MosInputError(f"{sidecar}: sidecar must be a JSON object with a 'prompt' key.")
    prompt = _first(data, PROMPT_KEYS)
    genre = _first(data, GENRE_KEYS)
    if prompt is None and genre is None:
        return None
    return PromptInfo("" if prompt is None else str(prompt).strip(), None if genre is None else str(genre).strip())
