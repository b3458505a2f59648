"""A/B generation: the same prompts and seeds with the LoRA adapter (A) and without it (B)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from diffusers import UNet2DConditionModel

from lightning_modules.components import AudioLDMComponents
from lightning_modules.sampler import generate, seeded_generators


@contextlib.contextmanager
def adapter_disabled(unet: UNet2DConditionModel) -> Iterator[None]:
    """Run the base model: LoRA layers off inside the block, back on after it (even on error)."""
    unet.disable_adapters()
    try:
        yield
    finally:
        unet.enable_adapters()


@torch.no_grad()
def generate_ab(
    components: AudioLDMComponents,
    prompts: list[str],
    seeds: list[int],
    duration: float,
    num_inference_steps: int,
    guidance_scale: float,
    scheduler: str = "ddim",
    batch_size: int = 8,
    with_base: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Waveforms [N, samples] with the adapter, and without it for the same seeds (a true A/B), in batches.

    Each clip has its own generator, so a clip does not depend on its batch or on ``batch_size``.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    device = components.unet.device
    was_training = components.unet.training
    components.unet.eval()

    def run() -> torch.Tensor:
        parts = []
        for start in range(0, len(prompts), batch_size):
            chunk = slice(start, start + batch_size)
            parts.append(
                generate(
                    components,
                    prompts[chunk],
                    duration,
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    generator=seeded_generators(seeds[chunk], device),
                    scheduler=scheduler,
                ).cpu()
            )
        return torch.cat(parts)

    try:
        with_adapter = run()
        base = None
        if with_base:
            with adapter_disabled(components.unet):
                base = run()
    finally:
        components.unet.train(was_training)
    return with_adapter, base
