"""Procedural genres: short clips that differ in tempo, timbre, register and scale, written as a GTZAN-style tree.

They give tests and the offline demo data that a model can learn and a metric can tell apart, with no download.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from datamodules.atomic_files import staged_directory

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class GenreStyle:
    """The musical parameters of one synthetic genre."""

    tempo_bpm: float
    root_midi: int
    scale: tuple[int, ...]
    timbre: str  # sine | square | saw | pluck | bell
    notes_per_beat: int
    percussion: str  # none | kick | boom_bap | hats
    description: str


STYLES: dict[str, GenreStyle] = {
    "ambient_drone": GenreStyle(60, 45, (0, 3, 7, 10), "sine", 1, "none", "slow sustained low sine chords"),
    "chiptune": GenreStyle(150, 76, (0, 4, 7, 12), "square", 4, "hats", "fast high square-wave arpeggios"),
    "boom_bap": GenreStyle(90, 40, (0, 3, 5, 7, 10), "saw", 1, "boom_bap", "kick and snare groove over a saw bass"),
    "gugak": GenreStyle(70, 62, (0, 2, 5, 7, 9), "pluck", 2, "none", "plucked pentatonic melody"),
    "techno": GenreStyle(128, 36, (0, 7, 12), "saw", 2, "kick", "four-on-the-floor kick with a saw bass"),
    "bell_choir": GenreStyle(80, 72, (0, 2, 3, 5, 7, 8, 10), "bell", 1, "none", "inharmonic minor-key bells"),
}


def _tone(freq: float, length: int, timbre: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    phase = 2 * np.pi * freq * t
    if timbre == "sine":
        wave = np.sin(phase) + 0.3 * np.sin(2 * phase)
        env = np.minimum(1.0, t / 0.2) * np.minimum(1.0, (t[-1] - t + 1e-3) / 0.2)
    elif timbre == "square":
        wave = np.sign(np.sin(phase)) * 0.6
        env = np.exp(-t * 6.0)
    elif timbre == "saw":
        wave = 2.0 * ((freq * t) % 1.0) - 1.0
        env = np.exp(-t * 3.0)
    elif timbre == "pluck":
        wave = sum(np.sin(k * phase) / k**1.5 for k in range(1, 6))
        env = np.exp(-t * 9.0)
    elif timbre == "bell":
        wave = sum(a * np.sin(r * phase) for a, r in ((1.0, 1.0), (0.6, 2.76), (0.4, 5.4), (0.25, 8.93)))
        env = np.exp(-t * 2.5)
    else:
        raise ValueError(f"unknown timbre {timbre!r}")
    detune = 1.0 + rng.normal(0.0, 0.002)
    return wave * env * detune


def _drum(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length) / SAMPLE_RATE
    if kind == "kick":
        return np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    if kind == "snare":
        return rng.normal(0.0, 0.5, length) * np.exp(-t * 20)
    if kind == "hat":
        noise = rng.normal(0.0, 0.3, length)
        return np.diff(noise, prepend=0.0) * np.exp(-t * 60)
    raise ValueError(f"unknown drum {kind!r}")


def synthesize_clip(genre: str, duration: float, seed: int, shift_semitones: int = 0) -> np.ndarray:
    """One clip of ``genre`` (a key of :data:`STYLES`), float32 mono at 16 kHz, peak 0.9.

    ``shift_semitones`` moves the melody away from the genre's register (pitch augmentation: the toy AudioLDM's
    VAE learns to code any register, not only the genres' own); 0 gives the genre as defined, bit for bit.
    """
    style = STYLES[genre]
    rng = np.random.default_rng(seed)
    total = int(round(duration * SAMPLE_RATE))
    out = np.zeros(total + SAMPLE_RATE, dtype=np.float64)
    tempo = style.tempo_bpm * rng.uniform(0.95, 1.05)
    beat = 60.0 / tempo
    step = beat / style.notes_per_beat
    note_len = int(step * SAMPLE_RATE * (4.0 if style.timbre == "sine" else 1.5))
    transpose = int(rng.integers(-2, 3)) + int(shift_semitones)
    position, index = rng.uniform(0, step), 0
    while position < duration:
        degree = style.scale[int(rng.integers(len(style.scale)))] if style.notes_per_beat < 4 else style.scale[index % len(style.scale)]
        freq = 440.0 * 2 ** ((style.root_midi + transpose + degree - 69) / 12)
        start = int(position * SAMPLE_RATE)
        out[start : start + note_len] += _tone(freq, note_len, style.timbre, rng)[: len(out) - start]
        position += step
        index += 1
    beat_len = int(beat * SAMPLE_RATE)
    for b in range(int(duration / beat) + 1):
        start = b * beat_len
        hits = {
            "kick": ["kick"],
            "boom_bap": ["kick"] if b % 2 == 0 else ["snare"],
            "hats": ["hat"],
            "none": [],
        }[style.percussion]
        for hit in hits:
            length = min(beat_len, len(out) - start)
            if length > 0:
                out[start : start + length] += 0.8 * _drum(hit, length, rng)
    clip = out[:total] + rng.normal(0.0, 0.003, total)
    return (clip / (np.abs(clip).max() + 1e-9) * 0.9).astype(np.float32)


def write_synthetic_dataset(
    root: str | Path,
    genres: list[str] | None = None,
    clips_per_genre: int = 8,
    duration: float = 2.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``root/<genre>/<genre>_<i>.wav`` plus ``root/manifest.csv`` (path, caption, genre), atomically.

    Captions are ``"<genre> music, <description>"``; the same seed gives the same files.
    """
    root = Path(root)
    genres = list(genres or STYLES)
    unknown = [g for g in genres if g not in STYLES]
    if unknown:
        raise ValueError(f"Unknown synthetic genre(s) {unknown}; available: {sorted(STYLES)}.")
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} already exists; pass overwrite=True to rewrite it.")
    with staged_directory(root, mode="folder", overwrite=overwrite) as staging:
        rows = []
        for g_index, genre in enumerate(genres):
            (staging / genre).mkdir()
            caption = f"{genre.replace('_', ' ')} music, {STYLES[genre].description}"
            for i in range(clips_per_genre):
                name = f"{genre}/{genre}_{i:03d}.wav"
                clip_seed = seed * 1_000_003 + g_index * 10_007 + i
                sf.write(staging / name, synthesize_clip(genre, duration, clip_seed), SAMPLE_RATE, subtype="PCM_16")
                rows.append({"path": name, "caption": caption, "genre": genre})
        with (staging / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "caption", "genre"])
            writer.writeheader()
            writer.writerows(rows)
    return root

