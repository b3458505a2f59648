"""The denoising objective of a LoRA step as one object: noising, timesteps, target and per-sample weighting.

:class:`DiffusionObjective` is diffusers' training recipe (``train_text_to_image_lora.py``): Gaussian noise (plus
offset noise), timesteps uniform in [0, T), the forward process of the checkpoint's noise schedule, the epsilon or v
target that ``prediction_type`` names, and Min-SNR-gamma weights. The model's prediction comes from the backbone
(:meth:`lightning_modules.backbone.Backbone.predict_noise`); the objective never sees the model, so the same object
serves every backbone, the LoRA module, prior preservation and the toy base's trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, SchedulerMixin


def sample_noise(latents: torch.Tensor, noise_offset: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise like ``latents``, plus ``noise_offset`` times a per-channel constant (offset noise)."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if noise_offset:
        offset = torch.randn(latents.shape[:2] + (1, 1), generator=generator, device=latents.device, dtype=latents.dtype)
        noise = noise + noise_offset * offset
    return noise


def diffusion_target(
    scheduler: SchedulerMixin, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """epsilon or v, whichever ``scheduler.config.prediction_type`` says the model predicts."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"Unsupported prediction_type {kind!r} in the scheduler config; expected epsilon or v_prediction.")


def snr_weights(scheduler: SchedulerMixin, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023): min(SNR, gamma) / SNR for epsilon, / (SNR + 1) for v."""
    alphas_cumprod = scheduler.alphas_cumprod.to(device=timesteps.device, dtype=torch.float32)[timesteps]
    snr = alphas_cumprod / (1.0 - alphas_cumprod)
    clipped = torch.clamp(snr, max=gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1.0)
    return clipped / snr


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error in float32, optionally weighted per sample."""
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=tuple(range(1, target.dim())))
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


@dataclass(frozen=True)
class NoisedLatents:
    """One batch through the forward process: the clean latents, the noise drawn, timesteps and the noisy input."""

    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    noisy: torch.Tensor


@dataclass
class DiffusionObjective:
    """Noise, timesteps, target and weights of the denoising loss for one noise schedule.

    Attributes:
        scheduler: the training noise schedule (a ``DDPMScheduler`` built from the checkpoint's scheduler config).
        noise_offset: offset-noise strength (0 disables).
        snr_gamma: Min-SNR-gamma weighting (5.0 is common); ``None`` for the plain mean.
    """

    scheduler: DDPMScheduler
    noise_offset: float = 0.0
    snr_gamma: float | None = None

    @classmethod
    def for_scheduler(cls, scheduler: SchedulerMixin, noise_offset: float = 0.0,
                      snr_gamma: float | None = None) -> "DiffusionObjective":
        """The objective of a checkpoint whose sampling scheduler is ``scheduler`` (same betas, same target)."""
        return cls(DDPMScheduler.from_config(scheduler.config), noise_offset, snr_gamma)

    @property
    def num_train_timesteps(self) -> int:
        """T: timesteps are drawn from [0, T)."""
        return int(self.scheduler.config.num_train_timesteps)

    def noised(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> NoisedLatents:
        """Draw noise (then timesteps, in that order: resumed runs depend on it) and apply the forward process."""
        noise = sample_noise(latents, self.noise_offset, generator)
        timesteps = torch.randint(0, self.num_train_timesteps, (latents.shape[0],), generator=generator,
                                  device=latents.device)
        return NoisedLatents(latents, noise, timesteps, self.scheduler.add_noise(latents, noise, timesteps))

    def target(self, noised: NoisedLatents) -> torch.Tensor:
        """What the model should predict for ``noised``: the noise or v."""
        return diffusion_target(self.scheduler, noised.latents, noised.noise, noised.timesteps)

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weights (Min-SNR), or ``None`` for the plain mean."""
        return None if self.snr_gamma is None else snr_weights(self.scheduler, timesteps, self.snr_gamma)

    def loss(self, prediction: torch.Tensor, noised: NoisedLatents, target: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted MSE of ``prediction`` against ``target`` (default: :meth:`target`, the denoising loss; a frozen
        model's prediction gives the distillation loss of prior preservation)."""
        return weighted_mse(prediction, self.target(noised) if target is None else target, self.weights(noised.timesteps))
