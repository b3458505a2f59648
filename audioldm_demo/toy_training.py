"""Plain-PyTorch training loops of the toy AudioLDM build: the VAE on log-mels, then the UNet on its latents.

These are build steps (``audioldm-lora build-toy-base``), not the project's training path: LoRA fine-tuning is
:class:`lightning_modules.AudioLDMLoRA`. The UNet step is the same objective as ``AudioLDMLoRA.diffusion_loss``
(docs/model-facts.md, 'AudioLDM training objective': scaled latents, L2-normalised CLAP ``text_embeds`` as
``class_labels``, caption dropout to the embedding of "" so that classifier-free guidance works, the epsilon/v
target the scheduler names), built from the same helpers in :mod:`lightning_modules.diffusion_loss`.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Callable

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.optimization import get_scheduler

from lightning_modules.diffusion_loss import diffusion_target, sample_noise, snr_weights, weighted_mse

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, float], None]  # (phase, step, total steps, loss)


def _optimizer(params, learning_rate: float, steps: int) -> tuple[torch.optim.Optimizer, object]:
    """AdamW with a short warm-up and cosine decay (the usual recipe for a from-scratch diffusion model)."""
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=max(1, steps // 20), num_training_steps=steps)
    return optimizer, schedule


def _step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule) -> None:
    """One optimizer step with gradient clipping at 1.0 and the learning-rate schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()


def random_crops(mels: torch.Tensor, count: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random time crops of ``frames`` frames from random clips of ``mels`` [N, T, 64] -> [count, frames, 64]."""
    rows = torch.randint(0, len(mels), (count,), generator=generator)
    starts = torch.randint(0, mels.shape[1] - frames + 1, (count,), generator=generator)
    return torch.stack([mels[r, s : s + frames] for r, s in zip(rows.tolist(), starts.tolist())])


def train_vae(
    vae: AutoencoderKL,
    mels: torch.Tensor,
    steps: int,
    batch_size: int,
    learning_rate: float,
    kl_weight: float,
    generator: torch.Generator,
    crop_frames: int | None = None,
    progress: Progress | None = None,
) -> AutoencoderKL:
    """Fit the VAE to reconstruct log-mels [N, frames, 64]: L1 on a posterior sample plus ``kl_weight`` x KL.

    The VAE is convolutional, so it trains on random crops of ``crop_frames`` frames (a fraction of the compute of
    whole clips) and still encodes whole clips. The KL term is per latent element over per mel element, so
    ``kl_weight`` does not depend on the crop size; a small weight keeps the posterior variance bounded (the LoRA
    module samples it) without blurring the decoder.
    """
    vae.train()
    optimizer, schedule = _optimizer(vae.parameters(), learning_rate, steps)
    frames = crop_frames or mels.shape[1]
    for step in range(steps):
        x = random_crops(mels, batch_size, frames, generator).unsqueeze(1)
        posterior = vae.encode(x).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        l1 = (reconstruction - x).abs().mean()
        kl = posterior.kl().mean() / x[0].numel()
        _step(l1 + kl_weight * kl, vae, optimizer, schedule)
        if progress is not None:
            progress("vae", step, steps, float(l1.detach()))
    return vae.eval()


@torch.no_grad()
def encode_posteriors(vae: AutoencoderKL, mels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The VAE posterior parameters (mean and log-variance, unscaled) [N, 2C, h, w] of log-mels [N, frames, 64]."""
    vae.eval()
    parts = [vae.encode(mels[i : i + batch_size].unsqueeze(1)).latent_dist.parameters for i in range(0, len(mels), batch_size)]
    return torch.cat(parts)


def latent_scaling_factor(posteriors: torch.Tensor, generator: torch.Generator) -> float:
    """1 / std of posterior samples: the ``scaling_factor`` that gives the diffusion model unit-variance latents."""
    return float(1.0 / DiagonalGaussianDistribution(posteriors).sample(generator=generator).std())


class EMA:
    """Exponential moving average of a model's weights (a standard trick for sampling from a short training run)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for shadow, live in zip(self.shadow.parameters(), model.parameters()):
            shadow.lerp_(live, 1.0 - self.decay)


def train_unet(
    unet: UNet2DConditionModel,
    noise_scheduler: DDPMScheduler,
    posteriors: torch.Tensor,
    text_embeds: torch.Tensor,
    empty_embed: torch.Tensor,
    scaling_factor: float,
    steps: int,
    batch_size: int,
    learning_rate: float,
    caption_dropout: float,
    generator: torch.Generator,
    ema_decay: float = 0.0,
    snr_gamma: float | None = None,
    progress: Progress | None = None,
) -> UNet2DConditionModel:
    """Train text-conditioned denoising on VAE posteriors [N, 2C, h, w] with their caption embeddings [N, D].

    Every step samples the posterior, scales it, drops captions to ``empty_embed`` with probability
    ``caption_dropout`` and regresses the scheduler's target, exactly as ``AudioLDMLoRA.diffusion_loss`` (with its
    optional Min-SNR-gamma weighting). Returns the trained UNet, or its EMA copy when ``ema_decay`` > 0.
    """
    unet.train()
    optimizer, schedule = _optimizer(unet.parameters(), learning_rate, steps)
    ema = EMA(unet, ema_decay) if ema_decay > 0 else None
    num_timesteps = noise_scheduler.config.num_train_timesteps
    for step in range(steps):
        rows = torch.randint(0, len(posteriors), (batch_size,), generator=generator)
        latents = DiagonalGaussianDistribution(posteriors[rows]).sample(generator=generator) * scaling_factor
        drop = torch.rand(batch_size, generator=generator) < caption_dropout
        conditioning = torch.where(drop[:, None], empty_embed[None], text_embeds[rows])
        noise = sample_noise(latents, 0.0, generator)
        timesteps = torch.randint(0, num_timesteps, (batch_size,), generator=generator)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=None, class_labels=conditioning).sample
        weights = snr_weights(noise_scheduler, timesteps, snr_gamma) if snr_gamma is not None else None
        loss = weighted_mse(prediction, diffusion_target(noise_scheduler, latents, noise, timesteps), weights)
        _step(loss, unet, optimizer, schedule)
        if ema is not None:
            ema.update(unet)
        if progress is not None:
            progress("unet", step, steps, float(loss.detach()))
    return (ema.shadow if ema is not None else unet).eval()


def log_progress(every: int = 50) -> Progress:
    """A progress callback that logs the loss every ``every`` steps and at the end of a phase, with elapsed time."""
    start, cpu_start = time.monotonic(), time.process_time()

    def report(phase: str, step: int, total: int, loss: float) -> None:
        if step % every == 0 or step == total - 1:
            log.info("toy base: %s step %d/%d loss %.4f (%.0f s, %.0f CPU s)", phase, step + 1, total, loss,
                     time.monotonic() - start, time.process_time() - cpu_start)

    return report
