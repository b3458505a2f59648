"""Which clips an evaluation folder holds, and the prompt and genre of each.

Clips are the audio files under a folder (recursively, hidden files skipped), keyed by their relative path without
extension (``rock/0001`` for ``DIR/rock/0001.wav``); a clip in a subfolder gets that folder's name as its genre.
Prompts and genres come from, in order of precedence:

1. ``manifest``: the project's CSV manifest (``path, caption, genre``; :func:`datamodules.manifest.read_csv_manifest`,
   relative paths resolved against the manifest's folder);
2. ``prompts``: a prompt file of the clip folder format (:mod:`datamodules.clip_folder`: one prompt per line for
   the clips in sorted key order, or CSV / JSONL / JSON with path and prompt keys, optionally ``genre``);
3. ``<stem>.json`` sidecars beside the clips, as ``predict`` and ``generate`` write them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from datamodules.clip_folder import (
    AUDIO_EXTENSIONS,
    GENRE_KEYS,
    PROMPT_KEYS,
    ClipFolderError,
    first_value,
    read_prompt_file,
    read_sidecar,
)
from datamodules.manifest import DataSourceError, read_csv_manifest


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


def _from_prompt_file(clips: list[Clip], path: Path) -> list[Clip]:
    by_key = {clip.key: clip for clip in clips}
    try:
        found = read_prompt_file(path, list(by_key))
    except ClipFolderError as error:
        raise EvaluationInputError(str(error)) from error
    return [
        replace(clip, prompt=found[clip.key]["prompt"], genre=found[clip.key]["genre"] or clip.genre)
        if clip.key in found else clip
        for clip in clips
    ]


def _from_sidecar(clip: Clip) -> Clip:
    try:
        data = read_sidecar(clip.path)
    except ClipFolderError as error:
        raise EvaluationInputError(str(error)) from error
    if data is None:
        return clip
    return replace(clip, prompt=first_value(data, PROMPT_KEYS), genre=first_value(data, GENRE_KEYS) or clip.genre)
