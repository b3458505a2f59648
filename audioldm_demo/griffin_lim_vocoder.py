"""A weight-free vocoder for the toy AudioLDM: AudioLDM log-mel -> waveform by inverse mel + Griffin-Lim (torchaudio).

Only for the offline toy model (``audioldm-lora build-toy-base``): it makes the toy's output audible and measurable
without a trained HiFi-GAN. It has the vocoder interface the sampler and AudioLDMPipeline use (``config.sampling_rate``,
``config.upsample_rates`` multiplying to the 160-sample hop, ``config.model_in_dim`` = 64 mel bins; input
``[B, frames, 64]``, output ``[B, frames * 160]``) and saves and loads as a diffusers model, so the toy directory
loads through :func:`lightning_modules.backbone.load_backbone` like any AudioLDM.

It inverts exactly the recipe of :mod:`datamodules.features`: natural log of the Slaney mel magnitude (power 1) of a
1024-point STFT with hop 160 at 16 kHz.
"""

from __future__ import annotations

import math

import torch
import torchaudio.transforms as T
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from datamodules.features import F_MAX, F_MIN, N_FFT, N_MELS, SAMPLE_RATE, WIN_LENGTH


class GriffinLimVocoder(ModelMixin, ConfigMixin):
    """Log-mel [B, frames, 64] -> waveform [B, frames * 160]: exp, least-squares inverse mel, Griffin-Lim phase."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        model_in_dim: int = N_MELS,
        sampling_rate: int = SAMPLE_RATE,
        upsample_rates: tuple[int, ...] = (5, 4, 8),
        n_fft: int = N_FFT,
        win_length: int = WIN_LENGTH,
        f_min: float = F_MIN,
        f_max: float = F_MAX,
        n_iter: int = 32,
        momentum: float = 0.99,
    ) -> None:
        """
        Args:
            model_in_dim: mel bins of the input (64 for AudioLDM).
            sampling_rate: output rate in Hz (16 kHz).
            upsample_rates: only their product matters: the hop in samples (160), from which AudioLDM derives the
                number of mel frames of a duration.
            n_fft, win_length, f_min, f_max: the STFT and mel filterbank of the log-mel recipe.
            n_iter: Griffin-Lim iterations.
            momentum: Griffin-Lim's fast (momentum) variant; 0 for the plain algorithm.
        """
        super().__init__()
        self.hop_length = math.prod(upsample_rates)
        self.inverse_mel = T.InverseMelScale(
            n_stft=n_fft // 2 + 1,
            n_mels=model_in_dim,
            sample_rate=sampling_rate,
            f_min=f_min,
            f_max=f_max,
            norm="slaney",
            mel_scale="slaney",
        )
        # rand_init=False: the initial phase is deterministic, so a mel always gives the same waveform.
        self.griffin_lim = T.GriffinLim(
            n_fft=n_fft,
            n_iter=n_iter,
            win_length=win_length,
            hop_length=self.hop_length,
            power=1.0,
            momentum=momentum,
            rand_init=False,
        )

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[B, frames, 64]`` (or ``[frames, 64]``) natural-log mel magnitudes -> ``[B, frames * hop]`` float waveform."""
        batched = log_mel.dim() == 3
        mel = torch.exp(log_mel.float() if batched else log_mel.float().unsqueeze(0)).transpose(1, 2)  # [B, 64, T]
        # One repeated frame at the end: Griffin-Lim's centred inverse STFT returns (frames - 1) * hop samples.
        mel = torch.cat([mel, mel[..., -1:]], dim=-1)
        magnitude = self.inverse_mel(mel)  # [B, 513, T + 1], least squares, clamped at 0
        waveform = self.griffin_lim(magnitude)
        return waveform if batched else waveform.squeeze(0)
