"""Prompt and genre metadata for the clips of a listening test.

Three sources, in this order of precedence:

1. ``--prompts FILE``: a prompt file of the clip folder format (:mod:`datamodules.clip_folder`: one prompt per line
   for the clip names in sorted order, or CSV / JSONL / JSON with path and prompt keys and optionally ``genre``).
2. A JSON sidecar ``<stem>.json`` beside a clip, with a ``prompt`` key and optionally ``genre``.
3. Nothing: the prompt is left empty (a pure quality test), and the genre falls back to the clip's first folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datamodules import clip_folder
from datamodules.clip_folder import GENRE_KEYS, PROMPT_KEYS, ClipFolderError, first_value, read_prompt_file

from .errors import MosInputError


@dataclass(frozen=True)
class PromptInfo:
    """What listeners are told about a clip: the text prompt (may be empty) and its genre, where known."""

    prompt: str
    genre: str | None


def load_prompt_file(path: str | Path, stems: list[str]) -> dict[str, PromptInfo]:
    """Prompts for every stem in ``stems`` from ``path``; every stem must get one, and every entry must match a clip."""
    try:
        found = read_prompt_file(path, stems)
    except ClipFolderError as error:
        raise MosInputError(str(error)) from error
    missing = [stem for stem in sorted(stems) if stem not in found]
    if missing:
        raise MosInputError(f"{path}: no prompt for {len(missing)} clip(s): {', '.join(missing[:10])}.")
    return {stem: PromptInfo(entry["prompt"] or "", entry["genre"]) for stem, entry in found.items()}


def read_sidecar(audio_path: Path) -> PromptInfo | None:
    """The ``<stem>.json`` sidecar beside ``audio_path``, if any; raises MosInputError when it is malformed."""
    try:
        data = clip_folder.read_sidecar(audio_path)
    except ClipFolderError as error:
        raise MosInputError(str(error)) from error
    if data is None:
        return None
    prompt, genre = first_value(data, PROMPT_KEYS), first_value(data, GENRE_KEYS)
    if prompt is None and genre is None:
        return None
    return PromptInfo(prompt or "", genre)
