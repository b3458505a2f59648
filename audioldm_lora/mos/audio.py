"""Reading, checking and re-encoding clips for the listening page (soundfile only: no torch needed).

Every clip is decoded in full before anything is written, so a broken file stops the build with its name instead
of producing a page that fails in the listener's browser. Clips are re-encoded as 16-bit PCM WAV, which every
browser plays, and which drops any metadata (tags, file names) that could reveal the system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf



@dataclass(frozen=True)
class Clip:
    """Decoded audio: ``samples`` is float32 ``[frames, channels]`` in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.sample_rate


def read_clip(path: str | Path) -> Clip:
    """Decode ``path`` in full; raises ``ValueError`` with the reason when it is unreadable, empty or not finite."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError or TypeError depending on the fault
        raise ValueError(f"cannot decode audio ({error})") from error
    if data.shape[0] == 0:
        raise ValueError("the file holds no samples")
    if not np.isfinite(data).all():
        raise ValueError("the file contains NaN or inf samples")
    return Clip(np.clip(data, -1.0, 1.0), int(rate))


def rms_normalise(clip: Clip, target_dbfs: float = -20.0, peak_limit: float = 0.99) -> Clip:
    """Scale ``clip`` to ``target_dbfs`` RMS (lowering the gain if a peak would pass ``peak_limit``).

    Loudness differences bias opinion scores; matching RMS is the simple, transparent remedy. Silent clips are
    returned unchanged.
    """
    rms = float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64))))
    if rms == 0.0:
        return clip
    gain = 10.0 ** (target_dbfs / 20.0) / rms
    peak = float(np.max(np.abs(clip.samples)))
    gain = min(gain, peak_limit / peak)
    return Clip((clip.samples * gain).astype(np.float32), clip.sample_rate)


def write_wav(path: str | Path, clip: Clip) -> None:
    """Write ``clip`` as 16-bit PCM WAV with no metadata."""
    sf.write(str(path), np.clip(clip.samples, -1.0, 1.0), clip.sample_rate, subtype="PCM_16", format="WAV")
