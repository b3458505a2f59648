"""Where the toy demo's clips come from: procedural genres (the fast tests' world) or a real-music catalogue.

The toy base, its LoRA and its report need the same three things of a world: the base's training clips of genres
A..E, the VAE's extra clips (the same timbres in other registers, so that the toy VAE codes a melody in a register
it has not heard, as a real AudioLDM VAE would) and, for every genre, reference clips that no training saw. Each
world keeps the three apart:

- :class:`SyntheticWorld` synthesizes them from disjoint seed sets (:func:`audioldm_demo.synthetic_mels.clip_seed`).
- :class:`CatalogueWorld` reads a ``build-real-music`` folder: training clips are its unmarked rows, references its
  ``split=test`` rows, which come from other pieces; the VAE's extra clips are training clips moved by seeded
  pitch shifts.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torchaudio

from audioldm_demo.synthetic_mels import genre_caption, synthetic_log_mels, synthetic_waveforms
from datamodules.audio import load_audio
from datamodules.dataset import clip_to_log_mel

SAMPLE_RATE = 16_000
TRAINING_SET = 1  # synthesis seed sets (audioldm_demo.synthetic_mels.clip_seed): the build's clips, the VAE's extra
VAE_SET = 3  # clips and the references; the LoRA data are write_synthetic_dataset's own seeds
REFERENCE_SET = 2


class WorldError(ValueError):
    """A catalogue the toy demo cannot use as asked; the message names the folder and what to do."""


class ToyWorld(Protocol):
    """What the toy base build and the toy report ask of a world."""

    def caption(self, genre: str) -> str:
        """The caption the base trained on, and the prompt the report generates, for ``genre``."""

    def training_log_mels(self, genres: Sequence[str], count: int, duration: float, seed: int) -> torch.Tensor:
        """The base's training clips, ``count`` per genre in ``genres`` order, as log-mels [N, frames, 64]."""

    def vae_log_mels(self, genres: Sequence[str], count: int, duration: float, seed: int,
                     max_shift: int) -> torch.Tensor:
        """``count`` clips per genre moved by seeded pitch shifts of up to ``max_shift`` semitones, as log-mels."""

    def reference_waveforms(self, genre: str, count: int, duration: float) -> torch.Tensor:
        """``count`` 16 kHz clips [count, samples] of ``genre`` that no training saw."""


def log_mels(waveforms: torch.Tensor | Sequence[torch.Tensor], duration: float) -> torch.Tensor:
    """AudioLDM log-mels [N, duration * 100, 64] of 16 kHz clips (the training recipe's)."""
    return torch.stack([clip_to_log_mel(clip, duration) for clip in waveforms])


class SyntheticWorld:
    """The procedural genres of :mod:`audioldm_demo.synthetic`, each role from its own seed set."""

    def __init__(self, caption_template: str = "{genre} music") -> None:
        self.caption_template = caption_template

    def caption(self, genre: str) -> str:
        return genre_caption(genre, self.caption_template)

    def training_log_mels(self, genres: Sequence[str], count: int, duration: float, seed: int) -> torch.Tensor:
        return torch.cat([synthetic_log_mels(g, count, duration, seed * 10 + TRAINING_SET) for g in genres])

    def vae_log_mels(self, genres: Sequence[str], count: int, duration: float, seed: int,
                     max_shift: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)  # one stream over the genres in order: the toy base's recipe since v2
        parts = []
        for genre in genres:
            shifts = rng.integers(-max_shift, max_shift + 1, count).tolist()
            parts.append(synthetic_log_mels(genre, count, duration, seed * 10 + VAE_SET, shifts))
        return torch.cat(parts)

    def reference_waveforms(self, genre: str, count: int, duration: float) -> torch.Tensor:
        return synthetic_waveforms(genre, count, duration, REFERENCE_SET)


def pitch_shifted(clip: torch.Tensor, semitones: int) -> torch.Tensor:
    """``clip`` played ``2 ** (semitones / 12)`` times faster, looped to its own length: pitch and timbre move
    together, as with a tape played at another speed (augmentation for the VAE; torchaudio's phase-vocoder
    ``pitch_shift`` takes about a second per clip on a CPU, this a millisecond).

    The ratio is rounded to 1/100 (at most 17 cents off), which keeps torchaudio's resampling kernel small.
    """
    if semitones == 0:
        return clip
    ratio = round(100 * 2 ** (semitones / 12))
    looped = clip.repeat(int(np.ceil(ratio / 100)) + 1)
    return torchaudio.functional.resample(looped, orig_freq=ratio, new_freq=100)[: clip.numel()]


def catalogue_digest(root: str | Path) -> str:
    """A short hash of a catalogue's manifest and settings: the toy base's cache key holds it."""
    root = Path(root)
    digest = hashlib.sha256((root / "manifest.csv").read_bytes())
    settings = {k: v for k, v in json.loads((root / "catalogue.json").read_text(encoding="utf-8")).items()
                if k != "traditions"}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]


class CatalogueWorld:
    """A ``build-real-music`` folder (``manifest.csv`` with a ``split`` column, ``catalogue.json``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest, record = self.root / "manifest.csv", self.root / "catalogue.json"
        if not manifest.is_file() or not record.is_file():
            raise WorldError(f"{self.root} is not a real-music catalogue (no manifest.csv or catalogue.json): build "
                             f"one with `audioldm-lora build-real-music {self.root} --reference-clips 64`.")
        self.record = json.loads(record.read_text(encoding="utf-8"))
        self.held_out: str = self.record["held_out"]
        self.files: dict[tuple[str, str], list[Path]] = {}
        self.captions: dict[str, str] = {}
        with manifest.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                self.files.setdefault((row["genre"], row.get("split") or ""), []).append(self.root / row["path"])
                self.captions[row["genre"]] = row["caption"]

    @property
    def genres(self) -> list[str]:
        """The traditions in the catalogue, in its order."""
        return list(self.captions)

    def caption(self, genre: str) -> str:
        if genre not in self.captions:
            raise WorldError(f"{self.root} has no clips of {genre!r}; it holds {self.genres}.")
        return self.captions[genre]

    def waveforms(self, genre: str, split: str, count: int, duration: float) -> torch.Tensor:
        """The first ``count`` clips of ``genre`` in ``split`` ("" training, "test" references), cut to ``duration``."""
        self.caption(genre)
        files = self.files.get((genre, split), [])
        flag = "--reference-clips" if split == "test" else "--clips-per-genre"
        if len(files) < count:
            raise WorldError(f"{self.root} has {len(files)} {split or 'training'} clips of {genre!r}, {count} are "
                             f"needed: rebuild it with a larger {flag}.")
        samples = round(duration * SAMPLE_RATE)
        clips = []
        for path in files[:count]:
            clip = load_audio(path, SAMPLE_RATE, duration=duration)
            if clip.numel() < samples:
                raise WorldError(f"{path} is {clip.numel() / SAMPLE_RATE:.2f} s long; the toy demo needs {duration} s "
                                 f"clips (rebuild the catalogue with --duration {duration}).")
            clips.append(clip[:samples])
        return torch.stack(clips)

    def training_log_mels(self, genres: Sequence[str], count: int, duration: float, seed: int) -> torch.Tensor:
        return torch.cat([log_mels(self.waveforms(g, "", count, duration), duration) for g in genres])

    def vae_log_mels(self, genres: Sequence[str], count: int, duration: float, seed: int,
                     max_shift: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        parts = []
        for genre in genres:
            shifts = rng.integers(-max_shift, max_shift + 1, count).tolist()
            clips = self.waveforms(genre, "", count, duration)
            parts.append(log_mels([pitch_shifted(c, s) for c, s in zip(clips, shifts)], duration))
        return torch.cat(parts)

    def reference_waveforms(self, genre: str, count: int, duration: float) -> torch.Tensor:
        return self.waveforms(genre, "test", count, duration)
