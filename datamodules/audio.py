"""Audio file I/O: decode a window of a file with soundfile, downmix to mono, resample with torchaudio.

Reading only the window that is needed (``start``/``frames``) keeps random crops of long files cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


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


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of ``path``; raises :class:`AudioDecodeError` naming the file when it cannot be read."""
    try:
        info = sf.info(str(path))
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError depending on the failure
        raise AudioDecodeError(f"{path}: cannot read audio header ({error}). Check the file or remove it.") from error
    return AudioInfo(str(path), int(info.samplerate), int(info.frames), int(info.channels))


def load_audio(
    path: str | Path,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Decode ``duration`` seconds of ``path`` from ``offset`` seconds, as a mono float32 tensor at ``sample_rate``.

    Raises:
        AudioDecodeError: the file cannot be decoded, or it contains NaN/inf samples.
    """
    try:
        with sf.SoundFile(str(path)) as handle:
            source_rate = handle.samplerate
            start = int(round(offset * source_rate))
            if start:
                handle.seek(min(start, handle.frames))
            count = -1 if duration is None else int(round(duration * source_rate))
            data = handle.read(frames=count, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioDecodeError(f"{path}: cannot decode audio ({error}). Check the file or remove it.") from error
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{path}: contains NaN or inf samples. Re-export the file or remove it.")
    waveform = torch.from_numpy(data.mean(axis=1))
    if source_rate != sample_rate:
        waveform = AF.resample(waveform, source_rate, sample_rate)
    return waveform


def save_audio(path: str | Path, waveform: torch.Tensor, sample_rate: int) -> None:
    """Write a mono waveform ``[samples]`` as 16-bit PCM wav; the file appears only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = waveform.detach().float().cpu().clamp(-1.0, 1.0).numpy()
    sf.write(str(tmp), data, sample_rate, subtype="PCM_16", format="WAV")
    tmp.replace(path)
