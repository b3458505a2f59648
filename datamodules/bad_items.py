"""Bad input: the reasons an item is rejected, the record of one rejection, and the checks that find them.

One vocabulary serves the validator (``audioldm-lora prepare``), the readers of every source and the training
loaders, so a report, a warning and a skipped-item count all name the same reasons.
"""

from __future__ import annotations

import io
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import torch

from datamodules.audio import AudioSource, describe_source
from datamodules.clip_folder import AUDIO_EXTENSIONS

MIN_DURATION = 0.5  # seconds; shorter files are rejected (the threshold)
SILENCE_PEAK = 1e-4  # a clip whose peak stays below -80 dBFS is silence
_BLOCK_FRAMES = 1 << 16  # decode in blocks so that a long file never sits in memory whole


class Reason(str, Enum):
    """Why an item was rejected; the value is the phrase reports print."""

    UNREADABLE = "unreadable or corrupt file"
    ZERO_LENGTH = "zero length"
    TOO_SHORT = "shorter than 0.5 s"
    SILENT = "all silence"
    NON_FINITE = "NaN or inf samples"
    UNSUPPORTED = "unsupported format"
    NO_CAPTION = "missing or empty caption"
    UNKNOWN_GENRE = "unknown genre"
    MALFORMED_ROW = "malformed manifest row"
    NOT_UTF8 = "text that is not UTF-8"
    TWO_CAPTIONS = "two different caption sidecars"


class BadItem(NamedTuple):
    """One rejected item: what it is (a path, ``shard.tar#key``, ``manifest row N``), why, and the details."""

    source: str
    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.reason.value}" + (f" ({self.detail})" if self.detail else "")


class BadItemError(ValueError):
    """Raised where one item is bad; carries the :class:`BadItem` so that callers can report or count it."""

    def __init__(self, source: str, reason: Reason, detail: str = "") -> None:
        self.item = BadItem(source, reason, detail)
        super().__init__(str(self.item))


class AudioStats(NamedTuple):
    """What a full decode learned about a file (or the segment of it that an item uses)."""

    sample_rate: int
    channels: int
    frames: int
    peak: float

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def has_supported_extension(name: str) -> bool:
    """True for the extensions the readers decode (wav, flac, mp3, ogg)."""
    return Path(name.split("#")[-1]).suffix.lower() in AUDIO_EXTENSIONS


def inspect_audio(source: AudioSource, name: str | None = None, start: float = 0.0, end: float | None = None) -> AudioStats:
    """Decode the whole segment ``[start, end)`` of a file in blocks and check it as the validator does.

    Raises:
        BadItemError: unsupported format, unreadable or corrupt, zero length, NaN/inf samples, shorter than
            :data:`MIN_DURATION` seconds, or all silence (peak below :data:`SILENCE_PEAK`).
    """
    label = describe_source(source, name)
    target = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)) and not Path(source).exists():
        raise BadItemError(label, Reason.UNREADABLE, "no such file")
    try:
        handle = sf.SoundFile(target)
    except Exception as error:  # LibsndfileError, RuntimeError, TypeError depending on the failure
        unsupported = Path(label.split("#")[-1]).suffix and not has_supported_extension(label)
        reason = Reason.UNSUPPORTED if unsupported else Reason.UNREADABLE
        raise BadItemError(label, reason, f"cannot open: {error}") from error
    with handle:
        rate, channels = int(handle.samplerate), int(handle.channels)
        if handle.frames <= 0:
            raise BadItemError(label, Reason.ZERO_LENGTH, "the file holds no samples")
        first = min(int(round(start * rate)), handle.frames)
        last = handle.frames if end is None else min(int(round(end * rate)), handle.frames)
        peak, frames, finite = 0.0, 0, True
        try:
            handle.seek(first)
            remaining = last - first
            while remaining > 0:
                block = handle.read(frames=min(_BLOCK_FRAMES, remaining), dtype="float32", always_2d=True)
                if not len(block):
                    break
                remaining -= len(block)
                frames += len(block)
                if finite and not np.isfinite(block).all():
                    finite = False
                else:
                    peak = max(peak, float(np.abs(block).max()))
        except Exception as error:
            raise BadItemError(label, Reason.UNREADABLE, f"decoding failed after {frames} frames: {error}") from error
    if frames == 0:
        raise BadItemError(label, Reason.ZERO_LENGTH, f"no samples in the segment starting at {start} s")
    if not finite:
        raise BadItemError(label, Reason.NON_FINITE, "re-export the file")
    stats = AudioStats(rate, channels, frames, peak)
    if stats.duration < MIN_DURATION:
        raise BadItemError(label, Reason.TOO_SHORT, f"{stats.duration:.3f} s")
    if peak < SILENCE_PEAK:
        raise BadItemError(label, Reason.SILENT, f"peak {peak:.2e}")
    return stats


def check_clip(waveform: torch.Tensor, source_duration: float, label: str) -> None:
    """The cheap checks the training loaders run on each decoded crop (the full scan is the validator's job).

    Raises:
        BadItemError: the crop is empty, the source is shorter than :data:`MIN_DURATION`, or the crop is silence.
    """
    if waveform.numel() == 0 or source_duration <= 0:
        raise BadItemError(label, Reason.ZERO_LENGTH, "no samples")
    if source_duration < MIN_DURATION:
        raise BadItemError(label, Reason.TOO_SHORT, f"{source_duration:.3f} s")
    if float(waveform.abs().max()) < SILENCE_PEAK:
        raise BadItemError(label, Reason.SILENT, "the crop is silence")
