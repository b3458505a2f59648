"""The clip folder format, written and read in one place: audio files with JSON sidecars, and prompt files.

A clip folder holds ``<stem>.wav`` plus ``<stem>.json`` (the sidecar: ``prompt``, ``seed``, optional ``genre`` and
the sampling settings). ``lightning predict`` (:class:`callbacks.WaveformWriter`) and ``audioldm-lora generate``
write them with :func:`clip_stem` and :func:`write_sidecar`; ``evaluate`` (:mod:`metrics.clip_labels`) and
``mos build`` (:mod:`audioldm_lora.mos.prompts`) read them with :func:`read_sidecar`, and read prompt files with
:func:`read_prompt_file`: one prompt per line, or CSV / JSONL / a JSON list of objects / a JSON object
``{path: prompt}``, with a path key (``path``, ``file``, ``stem``...), a prompt key (``prompt``, ``caption``,
``text``) and optionally ``genre``, matched to clips by :func:`match_stem`.

Standard library only (the MOS kit reads clip folders without torch). Problems raise :class:`ClipFolderError`
naming the file (and entry); each tool re-raises it as its own input error.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from datamodules.atomic_files import atomic_write_json
from datamodules.json_files import read_json_object

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
PATH_KEYS = ("path", "file", "filename", "stem", "name", "clip")
PROMPT_KEYS = ("prompt", "caption", "text")
GENRE_KEYS = ("genre",)
STRUCTURED_SUFFIXES = (".csv", ".json", ".jsonl")


class ClipFolderError(ValueError):
    """A sidecar or prompt file that cannot be used; the message names the file, the entry and what to fix."""


def slugify(text: str, limit: int = 48) -> str:
    """A file-name-safe short form of a prompt."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "prompt"


def clip_stem(index: int, prompt: str, seed: int) -> str:
    """``<index>_<prompt>_seed<seed>``: the file stem of clip ``index`` (sorted names keep the generation order)."""
    return f"{index:05d}_{slugify(prompt)}_seed{seed}"


def write_sidecar(audio_path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as the clip's ``<stem>.json`` sidecar (atomically); returns its path."""
    sidecar = Path(audio_path).with_suffix(".json")
    atomic_write_json(sidecar, record, default=str)
    return sidecar


def first_value(record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The stripped text of the first of ``keys`` that ``record`` has with a non-empty value (keys case-insensitive)."""
    lowered = {str(key).strip().lower(): value for key, value in record.items()}
    for key in keys:
        value = lowered.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def read_sidecar(audio_path: str | Path) -> dict[str, Any] | None:
    """The sidecar beside ``audio_path`` as a dict, or ``None`` when there is none.

    Raises:
        ClipFolderError: the sidecar is not a JSON object.
    """
    sidecar = Path(audio_path).with_suffix(".json")
    if not sidecar.is_file():
        return None
    return read_json_object(sidecar, ClipFolderError, "a clip's sidecar is a JSON object with a 'prompt' key.")


def match_stem(value: str, stems: list[str] | dict[str, Any]) -> str | None:
    """The clip stem a prompt-file entry names: its relative path with or without extension, a longer path ending
    in it (a leading system folder, say), or a file name that only one clip has."""
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    path = PurePosixPath(text)
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        path = path.with_suffix("")
    text = str(path)
    if text in stems:
        return text
    longer = [stem for stem in stems if text.endswith("/" + stem)]
    if longer:
        return max(longer, key=len)
    same_name = [stem for stem in stems if PurePosixPath(stem).name == path.name]
    return same_name[0] if len(same_name) == 1 else None


def read_prompt_text(path: Path) -> str:
    """A prompt file's text (UTF-8, a byte-order mark allowed).

    Raises:
        ClipFolderError: the file is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ClipFolderError(f"{path}: not UTF-8 text (byte {error.start}); save the prompt file as UTF-8.") from None


def read_prompt_lines(path: Path) -> list[str]:
    """The non-blank lines of a plain-text prompt file, stripped."""
    return [line.strip() for line in read_prompt_text(path).splitlines() if line.strip()]


def read_prompt_records(path: Path) -> list[dict[str, Any]]:
    """The entries of a CSV, JSONL, JSON-list or JSON ``{path: prompt}`` prompt file, as dicts.

    Raises:
        ClipFolderError: no header (CSV), invalid JSON (with its line), or entries that are not objects.
    """
    text = read_prompt_text(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ClipFolderError(f"{path}: the CSV file has no header row; expected columns path,prompt[,genre].")
        return [dict(row) for row in reader]
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ClipFolderError(
                f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
            ) from error
        if isinstance(data, dict) and isinstance(data.get("clips"), list):
            data = data["clips"]  # the manifest `generate` writes (generation.json): settings and a list of clips
        elif isinstance(data, dict):
            return [{"path": key, "prompt": value} for key, value in data.items()]
        if isinstance(data, list) and all(isinstance(row, dict) for row in data):
            return data
        raise ClipFolderError(f"{path}: expected a JSON object {{path: prompt}} or a list of objects with path and "
                              "prompt keys.")
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ClipFolderError(f"{path}: line {number} is not valid JSON ({error.msg}).") from error
        if not isinstance(row, dict):
            raise ClipFolderError(f"{path}: line {number} is not a JSON object with path and prompt keys.")
        records.append(row)
    return records


def read_prompt_file(path: str | Path, stems: list[str]) -> dict[str, dict[str, str | None]]:
    """Prompt (and genre, where given) per clip stem from a prompt file (module docstring for the formats).

    A plain-text file must give exactly one prompt per clip, in sorted stem order; a structured file's every entry
    must name a clip. Clips a structured file does not name are absent from the result.

    Raises:
        ClipFolderError: the file is missing or malformed, counts differ, or an entry matches no clip.
    """
    path = Path(path)
    if not path.is_file():
        raise ClipFolderError(f"{path}: prompt file not found.")
    stems = sorted(stems)
    if path.suffix.lower() not in STRUCTURED_SUFFIXES:
        lines = read_prompt_lines(path)
        if len(lines) != len(stems):
            raise ClipFolderError(
                f"{path}: {len(lines)} prompts for {len(stems)} clips. A plain-text prompt file gives one prompt per "
                f"line for the clips in sorted name order (first: {stems[0] if stems else None!r}); use a CSV or "
                "JSONL file with path and prompt columns to match prompts by name."
            )
        return {stem: {"prompt": line, "genre": None} for stem, line in zip(stems, lines)}
    found: dict[str, dict[str, str | None]] = {}
    for number, record in enumerate(read_prompt_records(path), start=1):
        where, prompt = first_value(record, PATH_KEYS), first_value(record, PROMPT_KEYS)
        if where is None or prompt is None:
            raise ClipFolderError(f"{path}: entry {number} lacks a path or a prompt (expected keys path, prompt[, genre]).")
        stem = match_stem(where, stems)
        if stem is None:
            raise ClipFolderError(f"{path}: entry {number} names {where!r}, which matches no clip.")
        found[stem] = {"prompt": prompt, "genre": first_value(record, GENRE_KEYS)}
    return found
