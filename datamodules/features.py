"""The AudioLDM log-mel recipe (docs/mel-recipe.md), one implementation for training, caching and metrics.

It follows the training recipe the AudioLDM VAE and HiFi-GAN vocoder were trained with (AudioLDM-training-finetuning),
not the inference package's TacotronSTFT, which pads 512 samples per side and yields one extra frame.
"""

from __future__ import annotations

import functools

import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP_LENGTH = 160
WIN_LENGTH = 1024
N_MELS = 64
F_MIN = 0.0
F_MAX = 8_000.0
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
LOG_FLOOR = 1e-5


def num_samples(duration: float) -> int:
    """Waveform length in samples of a clip of ``duration`` seconds at 16 kHz."""
    return int(round(duration * SAMPLE_RATE))


def num_frames(duration: float) -> int:
    """Log-mel length in frames of a clip of ``duration`` seconds (100 frames per second)."""
    return int(round(duration * FRAMES_PER_SECOND))


@functools.lru_cache(maxsize=8)
def _mel_filters(device: str, dtype: torch.dtype) -> torch.Tensor:
    """Slaney mel filterbank [n_freqs, n_mels]; identical to librosa.filters.mel(...).T (docs/mel-recipe.md)."""
    return AF.melscale_fbanks(
        N_FFT // 2 + 1, F_MIN, F_MAX, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
    ).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=8)
def _hann_window(device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(WIN_LENGTH, device=device, dtype=dtype)


def normalize_waveform(waveform: torch.Tensor) -> torch.Tensor:
    """AudioLDM waveform normalisation: remove the mean, then scale the peak to 0.5 (per clip, last dimension)."""
    waveform = waveform - waveform.mean(dim=-1, keepdim=True)
    peak = waveform.abs().amax(dim=-1, keepdim=True)
    return waveform / (peak + 1e-8) * 0.5


def pad_or_crop(x: torch.Tensor, length: int, dim: int = -1) -> torch.Tensor:
    """Zero-pad at the end or crop ``x`` along ``dim`` to exactly ``length`` elements."""
    size = x.shape[dim]
    if size >= length:
        return x.narrow(dim, 0, length)
    pad_shape = list(x.shape)
    pad_shape[dim] = length - size
    return torch.cat([x, x.new_zeros(pad_shape)], dim=dim)


def log_mel_spectrogram(waveform: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """AudioLDM log-mel of a 16 kHz waveform.

    Args:
        waveform: ``[samples]`` or ``[batch, samples]``, mono, 16 kHz, already normalised with
            :func:`normalize_waveform` (the recipe normalises before padding to the clip length).
        frames: pad with zeros or crop the time axis to this many frames; ``None`` keeps ``samples // 160 + 1``.

    Returns:
        ``[frames, 64]`` (or ``[batch, frames, 64]``): ``log(clamp(mel(|STFT|), 1e-5))``.
    """
    if waveform.dim() not in (1, 2):
        raise ValueError(f"log_mel_spectrogram expects [samples] or [batch, samples], got shape {tuple(waveform.shape)}")
    batched = waveform.dim() == 2
    x = waveform if batched else waveform.unsqueeze(0)
    if not x.is_floating_point():
        raise TypeError(f"log_mel_spectrogram expects a floating-point waveform, got {x.dtype}")
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(compute_dtype)
    pad = (N_FFT - HOP_LENGTH) // 2  # 432 samples each side
    if x.shape[-1] <= pad:
        raise ValueError(f"waveform of {x.shape[-1]} samples is too short for reflect padding of {pad} samples")
    x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    device_key = str(x.device)
    spec = torch.stft(
        x,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=_hann_window(device_key, compute_dtype),
        center=False,
        return_complex=True,
    ).abs()  # [B, 513, T], magnitude (power 1)
    mel = torch.matmul(spec.transpose(1, 2), _mel_filters(device_key, compute_dtype))  # [B, T, 64]
    log_mel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
    if frames is not None:
        log_mel = pad_or_crop(log_mel, frames, dim=1)
    return log_mel if batched else log_mel.squeeze(0)
