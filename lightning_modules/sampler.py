"""The project's own sampler: the maths of diffusers' AudioLDM pipelines as a short loop over any backbone.

AudioLDMPipeline is deprecated in diffusers (``pipelines/deprecated``), so the project owns this loop and keeps the
pipeline only as the reference its tests match. Everything model-specific (conditioning, the UNet call, geometry,
decoding) goes through the backbone seam (:mod:`lightning_modules.backbone`). Guidance runs in one batch
(unconditional and conditional halves).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    SchedulerMixin,
    UniPCMultistepScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from lightning_modules.backbone import Backbone, Conditioning, concat_conditioning, conditioning_to
from lightning_modules.errors import SettingError

# Keyed by sampling_settings.SCHEDULER_NAMES, the light list tools and settings check names against (tested equal).
SCHEDULERS: dict[str, Callable[..., SchedulerMixin]] = {
    "ddim": DDIMScheduler.from_config,
    "ddpm": DDPMScheduler.from_config,
    "pndm": PNDMScheduler.from_config,
    "lms": LMSDiscreteScheduler.from_config,
    "euler": EulerDiscreteScheduler.from_config,
    "euler_a": EulerAncestralDiscreteScheduler.from_config,
    "heun": HeunDiscreteScheduler.from_config,
    "dpmsolver++": lambda config: DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++"),
    "unipc": UniPCMultistepScheduler.from_config,
}


def make_scheduler(name: str, base: SchedulerMixin) -> SchedulerMixin:
    """A fresh scheduler of kind ``name`` with the noise schedule of ``base`` (the checkpoint's scheduler config)."""
    if name not in SCHEDULERS:
        raise SettingError(f"Unknown sampler scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    return SCHEDULERS[name](base.config)


def seeded_generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per clip, so a clip's audio depends only on its own seed (not on its batch)."""
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


@torch.no_grad()
def denoise(
    backbone: Backbone,
    scheduler: SchedulerMixin,
    latents: torch.Tensor,
    cond: Conditioning,
    uncond: Conditioning | None,
    num_inference_steps: int,
    guidance_scale: float,
    generator: torch.Generator | list[torch.Generator] | None = None,
    eta: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Run the reverse diffusion from ``latents`` (already scaled by ``init_noise_sigma``)."""
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    step_params = set(inspect.signature(scheduler.step).parameters)
    step_kwargs = {}
    if "eta" in step_params:
        step_kwargs["eta"] = eta
    if "generator" in step_params:
        step_kwargs["generator"] = generator
    guided = guidance_scale > 1.0 and uncond is not None
    conditioning = concat_conditioning(uncond, cond, backbone.stream_masks) if guided else cond
    for index, t in enumerate(scheduler.timesteps):
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = scheduler.scale_model_input(model_input, t)
        noise_pred = backbone.predict_noise(model_input, t, conditioning)
        if guided:
            uncond_pred, cond_pred = noise_pred.chunk(2)
            noise_pred = uncond_pred + guidance_scale * (cond_pred - uncond_pred)
        latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
        if progress is not None:
            progress(index)
    return latents


@torch.no_grad()
def sample_latents(
    backbone: Backbone,
    prompts: list[str],
    shape: tuple[int, ...],
    num_inference_steps: int = 50,
    guidance_scale: float = 2.5,
    negative_prompt: str | list[str] | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    scheduler: str | SchedulerMixin | None = None,
    eta: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Text to denoised latents of ``shape`` (already multiplied by the VAE's ``scaling_factor``, as in training).

    :func:`generate` decodes these to audio; prior preservation (:mod:`lightning_modules.prior_preservation`)
    trains on them directly.
    """
    if not prompts:
        raise ValueError("generate needs at least one prompt.")
    if isinstance(scheduler, str):
        scheduler = make_scheduler(scheduler, backbone.scheduler)
    elif scheduler is None:
        scheduler = type(backbone.scheduler).from_config(backbone.scheduler.config)
    device, dtype = backbone.unet.device, backbone.unet.dtype
    cond = conditioning_to(backbone.encode_prompts(prompts), device, dtype)
    uncond = None
    if guidance_scale > 1.0:
        uncond = conditioning_to(backbone.unconditional(len(prompts), negative_prompt), device, dtype)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype) * scheduler.init_noise_sigma
    return denoise(backbone, scheduler, latents, cond, uncond, num_inference_steps, guidance_scale, generator, eta,
                   progress)


def generate(
    backbone: Backbone,
    prompts: list[str],
    duration: float,
    num_inference_steps: int = 50,
    guidance_scale: float = 2.5,
    negative_prompt: str | list[str] | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    scheduler: str | SchedulerMixin | None = None,
    eta: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Text to 16 kHz waveforms [B, samples], equal to AudioLDMPipeline for the same seed and settings.

    Args:
        generator: one generator for the whole batch (as the pipeline) or one per prompt (see
            :func:`seeded_generators`), which makes each clip independent of its batch.
        scheduler: a name from :data:`SCHEDULERS`, a scheduler instance, or ``None`` for the checkpoint's own.
    """
    if not prompts:
        raise ValueError("generate needs at least one prompt.")
    backbone.check_duration(duration)
    latents = sample_latents(
        backbone, prompts, backbone.latent_shape(len(prompts), duration), num_inference_steps, guidance_scale,
        negative_prompt, generator, scheduler, eta, progress,
    )
    return backbone.decode(latents, int(duration * backbone.sampling_rate))
