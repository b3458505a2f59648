"""The denoising objective of a LoRA step: noising, target and per-sample weighting (diffusers' recipe)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import SchedulerMixin


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
