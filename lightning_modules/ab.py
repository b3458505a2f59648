"""A/B generation: the same prompts and seeds with the LoRA adapter (A) and without it (B)."""

from __future__ import annotations

from typing import Callable

import torch

from lightning_modules.adapter_sites import adapters_disabled
from lightning_modules.backbone import Backbone
from lightning_modules.sampler import generate, seeded_generators
from lightning_modules.sampling_settings import SamplingSettings


@torch.no_grad()
def generate_ab(
    backbone: Backbone,
    prompts: list[str],
    seeds: list[int],
    settings: SamplingSettings,
    batch_size: int = 8,
    with_base: bool = True,
    progress: Callable[[int, int], None] | None = None,
    keep: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Waveforms [N, samples] with the adapter, and without it for the same seeds (a true A/B), in batches.

    Each clip has its own generator, so a clip does not depend on its batch or on ``batch_size``. ``progress`` is
    called with (clips done, clips in all) after every batch. ``keep`` maps each batch's waveforms to what is kept
    of them (an evaluation keeps embeddings): the batch's audio is dropped at once, so memory grows with the clip
    count times the kept width, not times the samples per clip.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    unet = backbone.unet
    device = unet.device
    was_training = unet.training
    unet.eval()
    total = len(prompts) * (2 if with_base else 1)
    done = 0

    def run() -> torch.Tensor:
        nonlocal done
        parts = []
        for start in range(0, len(prompts), batch_size):
            chunk = slice(start, start + batch_size)
            waveforms = generate(
                backbone,
                prompts[chunk],
                settings.duration,
                num_inference_steps=settings.num_inference_steps,
                guidance_scale=settings.guidance_scale,
                generator=seeded_generators(seeds[chunk], device),
                scheduler=settings.scheduler,
            )
            parts.append((waveforms if keep is None else keep(waveforms)).cpu())
            done += len(prompts[chunk])
            if progress is not None:
                progress(done, total)
        return torch.cat(parts)

    try:
        with_adapter = run()
        base = None
        if with_base:
            with adapters_disabled(backbone):
                base = run()
    finally:
        unet.train(was_training)
    return with_adapter, base
