"""The AudioLDM log-mel against a reference written here from docs/mel-recipe.md (numpy STFT, librosa filters)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from datamodules.features import log_mel_spectrogram, normalize_waveform, num_frames, pad_or_crop


def reference_log_mel(waveform: np.ndarray, frames: int) -> np.ndarray:
    """docs/mel-recipe.md ('Steps') step by step in float64 numpy."""
    x = waveform - waveform.mean()
    x = x / (np.abs(x).max() + 1e-8) * 0.5
    x = np.pad(x, (432, 432), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann, as torch.hann_window
    count = 1 + (len(x) - 1024) // 160
    magnitude = np.stack([np.abs(np.fft.rfft(x[i * 160 : i * 160 + 1024] * window)) for i in range(count)])
    filters = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000)
    log_mel = np.log(np.clip(magnitude @ filters.T, 1e-5, None))
    out = np.zeros((frames, 64))
    out[: min(frames, len(log_mel))] = log_mel[:frames]
    return out


@pytest.mark.parametrize("seconds", [1.0, 2.56])
def test_log_mel_matches_reference(seconds: float) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t)) + 0.1
    frames = num_frames(seconds)
    ours = log_mel_spectrogram(normalize_waveform(torch.tensor(wave, dtype=torch.float32)), frames=frames)
    expected = reference_log_mel(wave, frames)
    assert ours.shape == (frames, 64)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4, rtol=0)


def test_log_mel_pads_with_zeros_and_batches() -> None:
    wave = normalize_waveform(torch.randn(2, 16000))
    mel = log_mel_spectrogram(wave, frames=150)
    assert mel.shape == (2, 150, 64)
    assert torch.all(mel[:, 101:] == 0)  # 16000 samples give 101 frames; the rest is zero padding
    torch.testing.assert_close(mel[1], log_mel_spectrogram(wave[1], frames=150))


def test_normalize_waveform_peak_and_mean() -> None:
    x = normalize_waveform(torch.randn(3, 1000) * 7 + 2)
    torch.testing.assert_close(x.abs().amax(dim=-1), torch.full((3,), 0.5), atol=1e-6, rtol=0)
    assert x.mean(dim=-1).abs().max() < 1e-6


def test_pad_or_crop() -> None:
    x = torch.arange(5.0)
    assert pad_or_crop(x, 3).tolist() == [0, 1, 2]
    assert pad_or_crop(x, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]


def test_log_mel_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="samples"):
        log_mel_spectrogram(torch.zeros(1, 1, 100))
    with pytest.raises(ValueError, match="too short"):
        log_mel_spectrogram(torch.zeros(100))
