"""Synthetic genre clips straight to memory: waveforms and AudioLDM log-mels, with no files in between.

The toy AudioLDM build trains on thousands of short clips and its evaluation needs fresh reference clips; writing
them as files (:func:`audioldm_demo.synthetic.write_synthetic_dataset`) would only add I/O. Seeds are derived from
``(seed, genre, index)`` so that training, LoRA data and references can use disjoint seed ranges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from datamodules.captions import render_caption
from datamodules.dataset import clip_to_log_mel
from audioldm_demo.synthetic import STYLES, synthesize_clip


def clip_seed(seed: int, genre: str, index: int) -> int:
    """The synthesis seed of clip ``index`` of ``genre`` in the set numbered ``seed`` (disjoint for distinct sets)."""
    return (seed * 1_000_003 + sorted(STYLES).index(genre) * 100_003 + index) % (2**63)


def synthetic_waveforms(
    genre: str, count: int, duration: float, seed: int, shifts: Sequence[int] | None = None
) -> torch.Tensor:
    """``count`` clips of ``genre``: float32 [count, duration * 16000] at 16 kHz (peak 0.9).

    ``shifts``: one pitch shift in semitones per clip (augmentation; default: the genre's own register).
    """
    if genre not in STYLES:
        raise ValueError(f"Unknown synthetic genre {genre!r}; available: {sorted(STYLES)}.")
    shifts = [0] * count if shifts is None else list(shifts)
    if len(shifts) != count:
        raise ValueError(f"{len(shifts)} pitch shifts for {count} clips.")
    clips = [
        torch.from_numpy(synthesize_clip(genre, duration, clip_seed(seed, genre, i), shift))
        for i, shift in enumerate(shifts)
    ]
    return torch.stack(clips)


def synthetic_log_mels(
    genre: str, count: int, duration: float, seed: int, shifts: Sequence[int] | None = None
) -> torch.Tensor:
    """AudioLDM log-mels of :func:`synthetic_waveforms`: [count, duration * 100, 64] (the training recipe)."""
    clips = synthetic_waveforms(genre, count, duration, seed, shifts)
    return torch.stack([clip_to_log_mel(clip, duration) for clip in clips])


def genre_caption(genre: str, template: str = "{genre} music") -> str:
    """The caption (and prompt) of a genre, rendered as the data module renders it (``gugak music``)."""
    return render_caption(template, genre)
