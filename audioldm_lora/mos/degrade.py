"""The degraded anchor: an attention check that any listener who actually listens rates near the bottom.

The anchor is a real clip of the test made clearly worse in several audible ways at once (band-limited like a
phone line, hissy, coarsely quantised), at the source's loudness so it cannot be spotted by level alone. Only
numpy and scipy are used, and the result is the same for the same seed.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .audio import Clip


def degrade(
    clip: Clip,
    *,
    cutoff_hz: float = 2000.0,
    snr_db: float = 5.0,
    bits: int = 6,
    seed: int = 0,
) -> Clip:
    """Return a degraded copy of ``clip``: low-pass at ``cutoff_hz``, white noise at ``snr_db``, ``bits``-bit quantisation.

    The low-pass is an 8th-order Butterworth run forwards and backwards (zero phase); the noise level is set
    against the source's RMS (a silent source gets noise at -30 dBFS so the anchor is still audibly bad).
    """
    x = clip.samples.astype(np.float64)
    source_rms = float(np.sqrt(np.mean(x**2)))
    nyquist = clip.sample_rate / 2.0
    cutoff = min(cutoff_hz, 0.45 * clip.sample_rate)
    sos = signal.butter(8, cutoff / nyquist, btype="lowpass", output="sos")
    padlen = min(x.shape[0] - 1, 3 * (2 * sos.shape[0] + 1))
    y = signal.sosfiltfilt(sos, x, axis=0, padlen=max(padlen, 0)) if x.shape[0] > 1 else x.copy()
    filtered_rms = float(np.sqrt(np.mean(y**2)))
    if filtered_rms > 0.0:
        y *= source_rms / filtered_rms
    reference = source_rms if source_rms > 0.0 else 10.0 ** (-30.0 / 20.0)
    noise_rms = reference / 10.0 ** (snr_db / 20.0)
    rng = np.random.default_rng(seed)
    y += rng.normal(0.0, noise_rms, size=y.shape)
    levels = 2.0 ** (bits - 1)
    y = np.round(np.clip(y, -1.0, 1.0) * levels) / levels
    return Clip(np.clip(y, -1.0, 1.0).astype(np.float32), clip.sample_rate)
