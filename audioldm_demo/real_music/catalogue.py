"""``build-real-music``'s catalogue: clips cut from real pieces, one folder per tradition, deterministic by seed.

Layout (what :class:`datamodules.GenreAudioDataModule` and the demo read, like ``synth-data``'s):
``<root>/<genre>/<genre>_<i>.wav`` (16 kHz mono PCM), ``<root>/manifest.csv`` (path, caption, genre, split: empty
for training clips, ``test`` for the reference clips, which come from other pieces),
``<root>/catalogue.json`` (every clip's piece, offset and instrument; every piece that failed to parse or render,
with why) and ``<root>/SOURCES.md`` with the licence files of the corpus repertories used and the soundfont's origin.

Pieces are drawn in a seeded order per tradition; each gives at most ``clips_per_piece`` clips, cut one after
another from its start, so the clips of a genre come from many pieces. A clip whose RMS is below ``min_rms`` (a
rest, a fade) is not kept. A piece that fails to parse or render is recorded, not skipped silently; a tradition that
cannot fill its clips is an error naming it and its failures. The folder appears only when complete.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audioldm_demo.real_music.render import SAMPLE_RATE, render_midi, score_midi, soundfont
from audioldm_demo.real_music.traditions import HELD_OUT, TRADITIONS, PieceRef, Tradition
from datamodules.atomic_files import staged_directory
from datamodules.audio import save_audio


RENDER_MARGIN = 3
"""How much of a piece is rendered, in multiples of the audio its clips need: room for quiet clips that are skipped."""


class CatalogueError(ValueError):
    """A catalogue that cannot be built as asked; the message names the tradition and the pieces that failed."""


@dataclass
class TraditionResult:
    """What one tradition gave: its clips (file, piece, offset) and the pieces that failed, with why."""

    clips: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


def corpus_root() -> Path:
    """The folder of music21's corpus in its wheel."""
    from music21 import corpus

    return Path(corpus.__file__).parent


def parse_piece(piece: PieceRef):
    """The music21 score of one piece (one tune of an ABC collection by its number)."""
    from music21 import converter

    return converter.parse(piece.path, number=piece.number) if piece.number is not None else converter.parse(piece.path)


def cut(waveform: torch.Tensor, samples: int, limit: int, min_rms: float) -> list[tuple[int, torch.Tensor]]:
    """Up to ``limit`` consecutive clips of ``samples`` from the start, skipping quiet ones: (offset, clip)."""
    clips = []
    for start in range(0, waveform.numel() - samples + 1, samples):
        clip = waveform[start : start + samples]
        if float(clip.pow(2).mean().sqrt()) >= min_rms:
            clips.append((start, clip))
            if len(clips) == limit:
                break
    return clips


def tradition_clips(tradition: Tradition, counts: dict[str, int], duration: float, seed: int, clips_per_piece: int,
                    min_rms: float) -> tuple[dict[str, list[torch.Tensor]], TraditionResult]:
    """The clips of ``tradition`` for each split in ``counts`` (``{"": 64, "test": 64}``), pieces taken in a seeded
    order; the splits are filled one after another and never share a piece (a piece that straddles the change gives
    its remaining clips to no split). Each clip's record names its split.

    Raises:
        CatalogueError: the repertory runs out before every split is full, naming the failures.
    """
    root = corpus_root()
    pieces = tradition.pieces(root)
    random.Random(f"{seed}:{tradition.genre}").shuffle(pieces)
    samples = round(duration * SAMPLE_RATE)
    wanted = [(split, count) for split, count in counts.items() if count > 0]
    audio: dict[str, list[torch.Tensor]] = {split: [] for split in counts}
    result = TraditionResult()
    for piece in pieces:
        if not wanted:
            break
        split, count = wanted[0]
        where = piece.describe(root)
        try:
            midi = score_midi(parse_piece(piece), tradition.program, tradition.transpose)
            waveform = render_midi(midi, max_seconds=RENDER_MARGIN * clips_per_piece * duration)
        except Exception as error:  # music21 and the renderer raise many types; each failure is reported
            message = re.sub(r", id\(\)=\d+", "", f"{type(error).__name__}: {error}")  # addresses differ per run
            result.failures.append({"piece": where, "error": message[:300]})
            continue
        for start, clip in cut(waveform, samples, min(clips_per_piece, count - len(audio[split])), min_rms):
            audio[split].append(clip)
            result.clips.append({"piece": where, "offset_seconds": round(start / SAMPLE_RATE, 3), "split": split})
        if len(audio[split]) == count:
            wanted.pop(0)
    if wanted:
        given = ", ".join(f"{len(audio[s])} of {n} {s or 'training'} clips" for s, n in counts.items() if n > 0)
        raise CatalogueError(
            f"Tradition {tradition.genre!r} gave {given} from {len(pieces)} pieces; "
            f"{len(result.failures)} failed to parse or render (first: {result.failures[:3]}). Ask for fewer clips "
            "per genre or shorter clips, or more clips per piece.")
    return audio, result


def sources_markdown(traditions: tuple[Tradition, ...], root: Path) -> str:
    """Where the music and the instruments come from, and under which terms."""
    import music21
    import pretty_midi

    lines = ["# Sources", "", f"Scores: the corpus in music21 {music21.__version__}'s wheel (`{corpus_root()}`). "
             "Its `license.txt` is copied here; repertories that carry their own are copied beside it.", ""]
    for tradition in traditions:
        lines.append(f"- `{tradition.genre}`: {tradition.description}, corpus files `{'`, `'.join(tradition.corpus_files)}`,"
                     f" General MIDI program {tradition.program} ({tradition.instrument}).")
    lines += ["", f"Instruments: `TimGM6mb.sf2` (a 6 MB General MIDI soundfont) from the pretty_midi "
              f"{pretty_midi.__version__} wheel, rendered by midirenderer. pretty_midi is MIT-licensed; the soundfont "
              "is the one it distributes.", ""]
    return "\n".join(lines)


def copy_licences(traditions: tuple[Tradition, ...], staging: Path) -> list[str]:
    """Copy the corpus licence and each used repertory's own licence file into ``staging/licences/``."""
    root = corpus_root()
    wanted = [root / "license.txt"] + sorted({root / t.corpus_files[0].split("/")[0] / "license.txt" for t in traditions})
    target = staging / "licences"
    target.mkdir()
    copied = []
    for path in wanted:
        if path.is_file():
            name = "music21-corpus.txt" if path.parent == root else f"{path.parent.name}.txt"
            shutil.copyfile(path, target / name)
            copied.append(name)
    return copied


def tool_versions() -> dict[str, str]:
    """The versions of what decides the files: music21 (its corpus and MIDI writer), pretty_midi (the soundfont)
    and midirenderer (the synthesizer)."""
    from importlib.metadata import version

    return {name: version(name) for name in ("music21", "pretty_midi", "midirenderer")}


def built_settings(root: Path, keys: list[str]) -> dict[str, Any] | None:
    """The settings named ``keys`` that a catalogue folder was built with (``catalogue.json``), or None when it is
    not one."""
    try:
        record = json.loads((root / "catalogue.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {key: record.get(key) for key in keys}


def build_real_music(root: str | Path, clips_per_genre: int = 40, duration: float = 2.56, seed: int = 0,
                     genres: list[str] | None = None, clips_per_piece: int = 4, min_rms: float = 0.01,
                     overwrite: bool = False, reference_clips: int = 0) -> Path:
    """Write the catalogue into ``root`` (see the module docstring) and return it.

    ``clips_per_genre`` clips per tradition are left for training (the data module's fractions split off
    validation); ``reference_clips`` more, from other pieces, are marked ``split=test``: the held-out references
    that the demo's report scores against.

    Raises:
        CatalogueError: a tradition that cannot fill its clips, or an unknown genre.
        FileExistsError: ``root`` exists, ``overwrite`` is False and it is not a catalogue built with the same
            settings (such a folder is returned as it is: the same settings write the same files).
    """
    known = {t.genre: t for t in TRADITIONS}
    unknown = sorted(set(genres or []) - set(known))
    if unknown:
        raise CatalogueError(f"Unknown tradition(s) {unknown}; choose from {sorted(known)}.")
    if clips_per_genre < 1 or clips_per_piece < 1 or duration <= 0 or reference_clips < 0:
        raise CatalogueError("clips_per_genre and clips_per_piece must be at least 1, reference_clips at least 0 "
                             "and duration positive.")
    traditions = tuple(known[g] for g in genres) if genres else TRADITIONS
    root = Path(root)
    settings = {"seed": seed, "duration": duration, "clips_per_genre": clips_per_genre,
                "reference_clips": reference_clips, "clips_per_piece": clips_per_piece, "min_rms": min_rms,
                "genres": [t.genre for t in traditions], "versions": tool_versions()}
    if root.exists() and not overwrite:
        if built_settings(root, list(settings)) == settings:  # the same settings write the same files: the folder is the cache
            return root
        raise FileExistsError(f"{root} already exists and was not built with these settings (or is not a "
                              "catalogue); pass --overwrite to rebuild it, or choose another folder.")
    rows, record = [], {**settings, "sample_rate": SAMPLE_RATE, "held_out": HELD_OUT,
                        "soundfont": soundfont()[0].name, "traditions": {}}
    with staged_directory(root, mode="folder", overwrite=overwrite) as staging:
        for tradition in traditions:
            audio, result = tradition_clips(tradition, {"": clips_per_genre, "test": reference_clips}, duration,
                                            seed, clips_per_piece, min_rms)
            (staging / tradition.genre).mkdir()
            clips = [clip for split in audio for clip in audio[split]]  # in the order of result.clips
            for index, (clip, entry) in enumerate(zip(clips, result.clips)):
                name = f"{tradition.genre}/{tradition.genre}_{index:04d}.wav"
                save_audio(staging / name, clip, SAMPLE_RATE)
                entry["file"] = name
                rows.append({"path": name, "caption": tradition.caption, "genre": tradition.genre,
                             "split": entry["split"]})
            record["traditions"][tradition.genre] = {
                "caption": tradition.caption, "program": tradition.program, "instrument": tradition.instrument,
                "clips": result.clips, "failures": result.failures}
        with (staging / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "caption", "genre", "split"])
            writer.writeheader()
            writer.writerows(rows)
        record["licences"] = copy_licences(traditions, staging)
        (staging / "catalogue.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        (staging / "SOURCES.md").write_text(sources_markdown(traditions, root), encoding="utf-8")
    return root
