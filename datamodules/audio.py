"""Audio file I/O: decode a window of a file with soundfile, downmix to mono, resample with torchaudio.

Reading only the window that is needed (``start``/``frames``) keeps random crops of long files cheap. Every source
(files, Hugging Face rows, WebDataset members) decodes here, so one decoder and one set of errors serve them all:
a source gives a path or the encoded file's bytes.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as AT

from datamodules.atomic_files import atomic_write_bytes

# A path, or the bytes of an encoded audio file (a Hugging Face Audio cell, a WebDataset member).
AudioSource = Union[str, Path, bytes]


def _open_target(source: AudioSource) -> str | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)


def describe_source(source: AudioSource, name: str | None = None) -> str:
    """How messages name a source: ``name`` when given, else the path, else ``<N bytes>``."""
    if name:
        return name
    return f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


@functools.lru_cache(maxsize=16)
def _resampler(source_rate: int, target_rate: int) -> AT.Resample:
    """One resampler per rate pair: the sinc kernel is computed once, not per item as ``torchaudio.functional.resample``
    does. With ``dtype=float32`` the result is bit-identical to ``functional.resample`` on float32 input."""
    return AT.Resample(source_rate, target_rate, dtype=torch.float32)


class AudioDecodeError(RuntimeError):
    """A file that soundfile cannot open or decode; the message names the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file."""

    path: str
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def audio_info(path: AudioSource, name: str | None = None) -> AudioInfo:
    """Read the header of ``path`` (a path or encoded bytes; ``name`` names bytes in messages).

    Raises :class:`AudioDecodeError` naming the file when it cannot be read.
    """
    label = describe_source(path, name)
    try:
        with sf.SoundFile(_open_target(path)) as handle:
            rate, frames, channels = int(handle.samplerate), int(handle.frames), int(handle.channels)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError depending on the failure
        raise AudioDecodeError(f"{label}: cannot read audio header ({error}). Check the file or remove it.") from error
    return AudioInfo(label, rate, frames, channels)


def load_audio(
    path: AudioSource,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """Decode ``duration`` seconds of ``path`` from ``offset`` seconds, as a mono float32 tensor at ``sample_rate``.

    ``path`` is a file path or the bytes of an encoded file; ``name`` names bytes in error messages.

    Raises:
        AudioDecodeError: the file cannot be decoded, or it contains NaN/inf samples.
    """
    label = describe_source(path, name)
    try:
        with sf.SoundFile(_open_target(path)) as handle:
            source_rate = handle.samplerate
            start = int(round(offset * source_rate))
            if start:
                handle.seek(min(start, handle.frames))
            count = -1 if duration is None else int(round(duration * source_rate))
            data = handle.read(frames=count, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioDecodeError(f"{label}: cannot decode audio ({error}). Check the file or remove it.") from error
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{label}: contains NaN or inf samples. Re-export the file or remove it.")
    waveform = torch.from_numpy(data.mean(axis=1))
    if source_rate != sample_rate:
        with torch.no_grad():
            waveform = _resampler(source_rate, sample_rate)(waveform)
    return waveform


def save_audio(path: str | Path, waveform: torch.Tensor, sample_rate: int) -> None:
    """Write a mono waveform ``[samples]`` as 16-bit PCM wav; the file appears only when complete."""
    data = waveform.detach().float().cpu().clamp(-1.0, 1.0).numpy()
    buffer = io.BytesIO()
    sf.write(buffer, data, sample_rate, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buffer.getvalue())
