"""Which clips an evaluation folder holds, and the prompt and genre of each.

Clips are the audio files under a folder (recursively, hidden files skipped), keyed by their relative path without
extension (``rock/0001`` for ``DIR/rock/0001.wav``); a clip in a subfolder gets that folder's name as its genre.
Prompts and genres come from, in order of precedence:

1. ``manifest``: the project's CSV manifest (``path, caption, genre``; :func:`datamodules.manifest.read_csv_manifest`,
   relative paths resolved against the manifest's folder);
2. ``prompts``: a text file with one prompt per line for the clips in sorted key order, or a CSV / JSONL / JSON list
   with a path column (``path``, ``file``, ``stem``...) and a ``prompt`` (or ``caption``) column, optionally
   ``genre``, matched by relative path with or without extension, or by a unique file name;
3. ``<stem>.json`` sidecars beside the clips, as the prediction writer saves them (``prompt``, optional ``genre``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from datamodules.audio import AUDIO_EXTENSIONS
from datamodules.manifest import DataSourceError, read_csv_manifest

PATH_KEYS = ("path", "file", "filename", "stem", "name", "clip")
PROMPT_KEYS = ("prompt", "caption", "text")


class EvaluationInputError(ValueError):
    """An evaluation input that cannot be used; the message names the folder or file and what to fix."""


@dataclass(frozen=True)
class Clip:
    """One audio file of an evaluation set with what is known about it."""

    path: Path
    key: str
    genre: str | None = None
    prompt: str | None = None


def discover_clips(root: str | Path, role: str) -> list[Clip]:
    """Audio files under ``root`` sorted by key; ``role`` ("generated"/"reference") names the set in errors."""
    root = Path(root)
    if not root.is_dir():
        raise EvaluationInputError(f"{role} folder {root} does not exist or is not a directory")
    clips: dict[str, Clip] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if not path.is_file():
            continue
        key = str(PurePosixPath(*relative.with_suffix("").parts))
        if key in clips:
            raise EvaluationInputError(f"{role} folder {root}: two audio files share the name {key!r}; rename one")
        clips[key] = Clip(path=path, key=key, genre=relative.parts[0] if len(relative.parts) > 1 else None)
    if not clips:
        raise EvaluationInputError(
            f"{role} folder {root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); nothing to evaluate"
        )
    return [clips[key] for key in sorted(clips)]


def label_clips(
    clips: list[Clip], prompts: str | Path | None = None, manifest: str | Path | None = None
) -> list[Clip]:
    """Attach prompts and genres to ``clips`` from ``manifest``, ``prompts`` or sidecars (module docstring)."""
    if prompts is not None and manifest is not None:
        raise EvaluationInputError("give --prompts or --manifest, not both")
    if manifest is not None:
        return _from_manifest(clips, Path(manifest))
    if prompts is not None:
        return _from_prompt_file(clips, Path(prompts))
    return [_from_sidecar(clip) for clip in clips]


def _from_manifest(clips: list[Clip], manifest: Path) -> list[Clip]:
    try:
        items = read_csv_manifest(manifest)
    except DataSourceError as error:
        raise EvaluationInputError(str(error)) from error
    by_path = {clip.path.resolve(): clip for clip in clips}
    labelled = {}
    for number, item in enumerate(items, start=2):
        clip = by_path.get(Path(item.path).resolve())
        if clip is None:
            raise EvaluationInputError(
                f"{manifest} row {number}: {item.path} is not one of the generated clips; relative paths are "
                "resolved against the manifest's folder"
            )
        labelled[clip.key] = replace(clip, prompt=item.caption, genre=item.genre)
    return [labelled.get(clip.key, clip) for clip in clips]


def _first(record: dict, keys: tuple[str, ...]) -> str | None:
    lowered = {str(key).strip().lower(): value for key, value in record.items()}
    for key in keys:
        value = lowered.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return None


def _match(value: str, clips: dict[str, Clip]) -> Clip | None:
    """The clip a prompt-file entry names: relative path with or without extension, a longer path ending in it,
    or a file name that only one clip has."""
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    path = PurePosixPath(text)
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        path = path.with_suffix("")
    text = str(path)
    if text in clips:
        return clips[text]
    longer = [key for key in clips if text.endswith("/" + key)]
    if longer:
        return clips[max(longer, key=len)]
    same_name = [key for key in clips if PurePosixPath(key).name == path.name]
    return clips[same_name[0]] if len(same_name) == 1 else None


def _records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            reader = csv.DictReader(text.splitlines())
            if not reader.fieldnames:
                raise EvaluationInputError(f"{path}: the CSV file has no header row (expected path,prompt[,genre])")
            return [dict(row) for row in reader]
        if suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict):  # {"clip path": "prompt", ...}
                return [{"path": key, "prompt": value} for key, value in data.items()]
            if isinstance(data, list) and all(isinstance(row, dict) for row in data):
                return data
            raise EvaluationInputError(f"{path}: expected a JSON object {{path: prompt}} or a list of objects")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise EvaluationInputError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from error
    if not all(isinstance(row, dict) for row in rows):
        raise EvaluationInputError(f"{path}: every JSONL line must be an object with path and prompt keys")
    return rows


def _from_prompt_file(clips: list[Clip], path: Path) -> list[Clip]:
    if not path.is_file():
        raise EvaluationInputError(f"prompt file {path} not found")
    if path.suffix.lower() not in (".csv", ".json", ".jsonl"):
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if len(lines) != len(clips):
            raise EvaluationInputError(
                f"{path}: {len(lines)} prompts for {len(clips)} generated clips. A text prompt file holds one prompt "
                f"per line for the clips in sorted order (first: {clips[0].key!r}); use CSV/JSONL with path and "
                "prompt columns to match by name"
            )
        return [replace(clip, prompt=line) for clip, line in zip(clips, lines)]
    by_key = {clip.key: clip for clip in clips}
    labelled: dict[str, Clip] = {}
    for number, record in enumerate(_records(path), start=1):
        where, prompt = _first(record, PATH_KEYS), _first(record, PROMPT_KEYS)
        if where is None or prompt is None:
            raise EvaluationInputError(f"{path}: entry {number} lacks a path or a prompt (keys path, prompt[, genre])")
        clip = _match(where, by_key)
        if clip is None:
            raise EvaluationInputError(f"{path}: entry {number} names {where!r}, which matches no generated clip")
        genre = _first(record, ("genre",))
        labelled[clip.key] = replace(clip, prompt=prompt, genre=genre or clip.genre)
    return [labelled.get(clip.key, clip) for clip in clips]


def _from_sidecar(clip: Clip) -> Clip:
    sidecar = clip.path.with_suffix(".json")
    if not sidecar.is_file():
        return clip
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EvaluationInputError(f"{sidecar}: sidecar is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        return clip
    return replace(clip, prompt=_first(data, PROMPT_KEYS), genre=_first(data, ("genre",)) or clip.genre)
