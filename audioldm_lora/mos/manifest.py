"""Pairing clips across systems: which files are the same prompt rendered by each system.

Each ``--system NAME=DIR`` folder is searched recursively for audio files; clips are matched across systems by
their path relative to the folder, without the extension (the *stem*: ``rock/0001`` for ``DIR/rock/0001.wav``).
Every stem must have a clip in every system, or the comparison would be unbalanced: the error names each stem
and the systems it lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from datamodules.clip_folder import AUDIO_EXTENSIONS

from .errors import MosInputError
from .prompts import PromptInfo, load_prompt_file, read_sidecar

SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_LISTED = 10


@dataclass(frozen=True)
class Item:
    """One prompt of the test: its text, genre, and the source clip of each system."""

    stem: str
    prompt: str
    genre: str | None
    clips: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """The systems under test (in command-line order) and the paired items (sorted by stem)."""

    systems: list[str]
    items: list[Item]


def parse_systems(specs: list[str]) -> dict[str, Path]:
    """Parse ``NAME=DIR`` specs; names must be unique and simple, folders must exist; at least two systems."""
    systems: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name = name.strip()
        if not sep or not folder.strip():
            raise MosInputError(f"--system {spec!r}: expected NAME=DIR, e.g. --system base=outputs/base.")
        if not SYSTEM_NAME.match(name):
            raise MosInputError(f"--system {spec!r}: the name may hold only letters, digits and _ . + - (64 at most).")
        if name in systems:
            raise MosInputError(f"--system {name!r} is given twice; each system needs its own name.")
        path = Path(folder.strip()).expanduser()
        if not path.is_dir():
            raise MosInputError(f"--system {name}={folder}: folder not found.")
        systems[name] = path
    if len(systems) < 2:
        raise MosInputError("a listening test compares systems: give at least two --system NAME=DIR.")
    return systems


def discover(folder: Path) -> dict[str, Path]:
    """Audio files under ``folder`` keyed by stem (relative posix path without extension); hidden files skipped."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if not path.is_file():
            continue
        stem = str(PurePosixPath(*relative.with_suffix("").parts))
        if stem in found:
            raise MosInputError(f"{folder}: two audio files share the name {stem!r} ({found[stem].name}, {path.name}).")
        found[stem] = path
    return found


def _pair(systems: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """Stem -> system -> path, requiring every stem in every system."""
    per_system = {name: discover(folder) for name, folder in systems.items()}
    for name, clips in per_system.items():
        if not clips:
            raise MosInputError(
                f"--system {name}={systems[name]}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in the folder."
            )
    stems = sorted(set().union(*per_system.values()))
    problems = []
    for stem in stems:
        have = [name for name in systems if stem in per_system[name]]
        if len(have) < len(systems):
            lacking = [f"{name} ({systems[name] / stem}.*)" for name in systems if name not in have]
            problems.append(f"  {stem!r}: clips only for {', '.join(have)}; missing in {', '.join(lacking)}")
    if problems:
        shown = problems[:MAX_LISTED] + (
            [f"  ... and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else []
        )
        raise MosInputError(
            f"{len(problems)} prompt(s) lack a clip from some system; every system must render every prompt "
            "(matched by path relative to its folder):\n" + "\n".join(shown)
        )
    return {stem: {name: per_system[name][stem] for name in systems} for stem in stems}


def _sidecar_info(stem: str, clips: dict[str, Path]) -> PromptInfo | None:
    """The sidecar prompt of a stem; sidecars of different systems must agree, or the clips are not comparable."""
    infos = {name: info for name, path in clips.items() if (info := read_sidecar(path)) is not None}
    prompts = {info.prompt for info in infos.values() if info.prompt}
    if len(prompts) > 1:
        listing = "; ".join(f"{name}: {info.prompt!r}" for name, info in infos.items())
        raise MosInputError(f"{stem!r}: the systems' sidecar prompts differ ({listing}); the clips are not comparable.")
    if not infos:
        return None
    genres = [info.genre for info in infos.values() if info.genre]
    return PromptInfo(prompts.pop() if prompts else "", genres[0] if genres else None)


def build_manifest(system_specs: list[str], prompts_file: str | Path | None = None) -> Manifest:
    """Pair the clips of ``system_specs`` and attach prompts and genres (see :mod:`.prompts` for the sources)."""
    systems = parse_systems(system_specs)
    paired = _pair(systems)
    from_file = load_prompt_file(prompts_file, list(paired)) if prompts_file is not None else {}
    items = []
    for stem, clips in paired.items():
        info = from_file.get(stem) or _sidecar_info(stem, clips) or PromptInfo("", None)
        genre = info.genre
        if genre is None and len(PurePosixPath(stem).parts) > 1:
            genre = PurePosixPath(stem).parts[0]
        items.append(Item(stem=stem, prompt=info.prompt, genre=genre, clips=clips))
    return Manifest(systems=list(systems), items=items)
