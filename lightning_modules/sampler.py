"""The project's own AudioLDM sampler: the maths of diffusers' AudioLDMPipeline as a short loop.

AudioLDMPipeline is deprecated in diffusers (``pipelines/deprecated``), so the project owns this loop and keeps the
pipeline only as the reference its tests match. Guidance runs in one batch (unconditional and conditional halves).
"""

from __future__ import annotations

import inspect
import math
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

from lightning_modules.components import AudioLDMComponents, encode_text

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
        raise ValueError(f"Unknown sampler scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    return SCHEDULERS[name](base.config)


def seeded_generators(seeds: list[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per clip, so a clip's audio depends only on its own seed (not on its batch)."""
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


@torch.no_grad()
def denoise(
    unet: torch.nn.Module,
    scheduler: SchedulerMixin,
    latents: torch.Tensor,
    cond_embeds: torch.Tensor,
    uncond_embeds: torch.Tensor | None,
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
    guided = guidance_scale > 1.0 and uncond_embeds is not None
    class_labels = torch.cat([uncond_embeds, cond_embeds]) if guided else cond_embeds
    for index, t in enumerate(scheduler.timesteps):
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = scheduler.scale_model_input(model_input, t)
        noise_pred = unet(model_input, t, encoder_hidden_states=None, class_labels=class_labels).sample
        if guided:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance_scale * (cond - uncond)
        latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
        if progress is not None:
            progress(index)
    return latents


@torch.no_grad()
def decode_to_waveform(components: AudioLDMComponents, latents: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Latents -> log-mel (VAE) -> waveform (vocoder), cut to ``num_samples``; float32 [B, samples]."""
    vae = components.vae
    mel = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    vocoder = components.vocoder
    waveform = vocoder(mel.squeeze(1).to(vocoder.dtype))
    return waveform.float()[:, :num_samples]


def _produced_samples(components: AudioLDMComponents, duration: float) -> int:
    """Samples the decoder returns for ``duration`` before the cut (the pipeline's frame rounding)."""
    hop = round(components.seconds_per_frame * components.sampling_rate)
    return components.mel_frames(duration) * hop


def check_duration(components: AudioLDMComponents, duration: float) -> None:
    """Raise ValueError for a duration the model's geometry cannot produce exactly.

    Durations must be finite and at least one VAE latent row (``vae_scale_factor`` mel frames: 40 ms for every
    AudioLDM). AudioLDMPipeline also floors ``duration / hop`` to whole frames, so some durations (4.01 s, 2.01 s,
    0.29 s ...) would silently come out a few milliseconds short; they are refused with the nearest exact ones.
    """
    min_duration = components.seconds_per_frame * components.vae_scale_factor
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration}.")
    if duration < min_duration:
        raise ValueError(f"duration {duration} s is shorter than the model's minimum of {min_duration} s.")
    wanted = int(duration * components.sampling_rate)
    produced = _produced_samples(components, duration)
    if wanted > produced:
        below = produced / components.sampling_rate
        while below > min_duration and not _is_exact(components, below):
            below -= min_duration
        above = produced / components.sampling_rate + min_duration
        while not _is_exact(components, above):
            above += min_duration
        raise ValueError(
            f"duration {duration} s cannot be produced exactly: the model generates whole latent rows of "
            f"{components.vae_scale_factor} mel frames and the frame count is rounded down, which gives "
            f"{produced} of the {wanted} samples asked for. Use {below:g} s or {above:g} s."
        )


def _is_exact(components: AudioLDMComponents, duration: float) -> bool:
    """Whether the decoder returns at least the ``duration * sampling_rate`` samples asked for."""
    return int(duration * components.sampling_rate) <= _produced_samples(components, duration)


@torch.no_grad()
def sample_latents(
    components: AudioLDMComponents,
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
        scheduler = make_scheduler(scheduler, components.scheduler)
    elif scheduler is None:
        scheduler = type(components.scheduler).from_config(components.scheduler.config)
    unet = components.unet
    device = unet.device
    cond = encode_text(components.text_encoder, components.tokenizer, prompts)
    uncond = None
    if guidance_scale > 1.0:
        negatives = [negative_prompt or ""] * len(prompts) if not isinstance(negative_prompt, list) else negative_prompt
        if len(negatives) != len(prompts):
            raise ValueError(f"{len(negatives)} negative prompts for {len(prompts)} prompts.")
        uncond = encode_text(components.text_encoder, components.tokenizer, negatives)
    dtype = unet.dtype
    cond = cond.to(device=device, dtype=dtype)
    uncond = None if uncond is None else uncond.to(device=device, dtype=dtype)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype) * scheduler.init_noise_sigma
    return denoise(unet, scheduler, latents, cond, uncond, num_inference_steps, guidance_scale, generator, eta, progress)


def generate(
    components: AudioLDMComponents,
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
    check_duration(components, duration)
    latents = sample_latents(
        components, prompts, components.latent_shape(len(prompts), duration), num_inference_steps, guidance_scale,
        negative_prompt, generator, scheduler, eta, progress,
    )
    return decode_to_waveform(components, latents, int(duration * components.sampling_rate))
