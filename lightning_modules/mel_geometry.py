"""Geometry and decoding of a mel-spectrogram latent diffusion model with a vocoder: the part AudioLDM and AudioLDM2
share (docs/model-facts.md, 'AudioLDM latents and geometry'; AudioLDM2 derives frames, latent shape and the cut the
same way).

The mel hop is the vocoder's ``prod(upsample_rates) / sampling_rate``; the pipelines floor ``duration / hop`` to
whole frames and round up to a multiple of the VAE factor; the latent is ``[B, unet in_channels, frames / factor,
mel bins / factor]``; decoding is VAE -> log-mel -> vocoder, cut to the asked number of samples.
"""

from __future__ import annotations

import math

import torch


class MelVocoderGeometry:
    """Mixin for a backbone holding ``vae``, ``unet`` and a HiFi-GAN-style ``vocoder`` (``sampling_rate``,
    ``upsample_rates``, ``model_in_dim`` in its config); implements the backbone's geometry and ``decode``."""

    vae: torch.nn.Module
    unet: torch.nn.Module
    vocoder: torch.nn.Module
    vae_scale_factor: int
    scaling_factor: float

    # ------------------------------------------------------------------------------------------------ geometry
    @property
    def sampling_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def seconds_per_frame(self) -> float:
        """Mel hop in seconds, as the pipeline derives it: ``prod(upsample_rates) / sampling_rate``."""
        return math.prod(self.vocoder.config.upsample_rates) / self.sampling_rate

    def mel_frames(self, duration: float) -> int:
        frames = int(duration / self.seconds_per_frame)
        return int(math.ceil(frames / self.vae_scale_factor)) * self.vae_scale_factor

    def latent_shape(self, batch_size: int, duration: float) -> tuple[int, int, int, int]:
        factor = self.vae_scale_factor
        return (
            batch_size,
            int(self.unet.config.in_channels),
            self.mel_frames(duration) // factor,
            int(self.vocoder.config.model_in_dim) // factor,
        )

    def _produced_samples(self, duration: float) -> int:
        """Samples the decoder returns for ``duration`` before the cut (the pipeline's frame rounding)."""
        hop = round(self.seconds_per_frame * self.sampling_rate)
        return self.mel_frames(duration) * hop

    def _is_exact(self, duration: float) -> bool:
        return int(duration * self.sampling_rate) <= self._produced_samples(duration)

    def check_duration(self, duration: float) -> None:
        """Durations must be finite and at least one VAE latent row (``vae_scale_factor`` mel frames: 40 ms for
        every AudioLDM). AudioLDMPipeline also floors ``duration / hop`` to whole frames, so some durations (4.01 s,
        2.01 s, 0.29 s ...) would silently come out a few milliseconds short; they are refused with the nearest
        exact ones."""
        min_duration = self.seconds_per_frame * self.vae_scale_factor
        if not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"duration must be a positive number of seconds, got {duration}.")
        if duration < min_duration:
            raise ValueError(f"duration {duration} s is shorter than the model's minimum of {min_duration} s.")
        wanted = int(duration * self.sampling_rate)
        produced = self._produced_samples(duration)
        if wanted > produced:
            below = produced / self.sampling_rate
            while below > min_duration and not self._is_exact(below):
                below -= min_duration
            above = produced / self.sampling_rate + min_duration
            while not self._is_exact(above):
                above += min_duration
            raise ValueError(
                f"duration {duration} s cannot be produced exactly: the model generates whole latent rows of "
                f"{self.vae_scale_factor} mel frames and the frame count is rounded down, which gives "
                f"{produced} of the {wanted} samples asked for. Use {below:g} s or {above:g} s."
            )

    # --------------------------------------------------------------------------------------------------- audio
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Latents -> log-mel (VAE) -> waveform (vocoder), cut to ``num_samples``; float32 [B, samples]."""
        mel = self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample
        waveform = self.vocoder(mel.squeeze(1).to(self.vocoder.dtype))
        return waveform.float()[:, :num_samples]
