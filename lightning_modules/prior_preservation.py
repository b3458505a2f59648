"""Prior preservation: the adapter learns a new genre without changing what the base model does for other prompts.

A LoRA trained only on one genre's clips also moves the model for every other prompt (its update does not look at
the prompt), so genres the base model rendered well can get worse. DreamBooth's remedy (Ruiz et al., CVPR 2023;
``--with_prior_preservation`` in diffusers' ``train_dreambooth_lora.py``) trains on the base model's own samples
for other prompts alongside the new data, which pins the model's behaviour there.

Here the frozen base (adapter disabled) samples ``samples_per_prompt`` latents per prior prompt once, with fixed
seeds, at the shape of the training latents; every training step then adds ``prior_loss_weight`` times a loss on a
random minibatch of them (:data:`PriorTarget`): DreamBooth's denoising loss (``samples``), or the distance between
the adapted and the base UNet's predictions on the same noisy latent (``base_model``, distillation). The set holds
latents, not audio: no vocoder and VAE round trip, and
no files to manage. It is a deterministic function of the base model, the prompts and the seed, so a resumed run
or another DDP rank regenerates exactly the same set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from lightning_modules.adapter_sites import adapters_disabled
from lightning_modules.backbone import Backbone, Conditioning
from lightning_modules.sampler import sample_latents, seeded_generators
from lightning_modules.errors import SettingError

PriorTarget = Literal["samples", "base_model"]


@dataclass(frozen=True)
class PriorSet:
    """Base-model samples to preserve: scaled latents [N, C, h, w] and their prompts' conditioning (N rows)."""

    latents: torch.Tensor
    conditioning: Conditioning
    prompts: tuple[str, ...]
    seconds: float

    def __len__(self) -> int:
        return int(self.latents.shape[0])


def check_prior_settings(
    prompts: list[str] | None, samples_per_prompt: int, loss_weight: float, target: str = "samples"
) -> None:
    """Raise :class:`SettingError` naming the bad setting (an empty prompt list or prompt, a count or weight <= 0, an
    unknown target)."""
    if target not in get_args(PriorTarget):
        raise SettingError(f"prior_target must be one of {list(get_args(PriorTarget))}, got {target!r}.")
    if prompts is None:
        return
    if not prompts or any(not isinstance(p, str) or (p and not p.strip()) for p in prompts):
        raise SettingError(
            f"prior_prompts must be a non-empty list of prompts (the genres to preserve, e.g. ['pop music', "
            f"'jazz music'], and \"\" for the unconditional output that guidance uses), got {prompts!r}; leave it "
            "unset to train without prior preservation."
        )
    if samples_per_prompt < 1:
        raise SettingError(f"prior_samples_per_prompt must be at least 1, got {samples_per_prompt}.")
    if not loss_weight > 0:
        raise SettingError(f"prior_loss_weight must be positive, got {loss_weight}; 1.0 is DreamBooth's default.")


@torch.no_grad()
def generate_prior_set(
    backbone: Backbone,
    prompts: list[str],
    samples_per_prompt: int,
    latent_shape: tuple[int, int, int],
    num_inference_steps: int,
    guidance_scale: float,
    scheduler: str = "ddim",
    seed: int = 0,
    batch_size: int = 16,
) -> PriorSet:
    """Sample the base model (adapter disabled) ``samples_per_prompt`` times per prompt at ``latent_shape`` (C, h, w).

    Sample ``i`` of every prompt uses seed ``seed + i`` (one generator per sample, so the set does not depend on
    ``batch_size``).
    """
    start = time.monotonic()
    unet = backbone.unet
    device = unet.device
    all_prompts = [p for p in prompts for _ in range(samples_per_prompt)]
    seeds = [seed + i for _ in prompts for i in range(samples_per_prompt)]
    was_training = unet.training
    unet.eval()
    parts = []
    try:
        with adapters_disabled(backbone):
            for begin in range(0, len(all_prompts), batch_size):
                chunk = slice(begin, begin + batch_size)
                shape = (len(all_prompts[chunk]), *latent_shape)
                parts.append(sample_latents(
                    backbone, all_prompts[chunk], shape, num_inference_steps, guidance_scale,
                    generator=seeded_generators(seeds[chunk], device), scheduler=scheduler,
                ).float())
            # The base model's conditioning (an adapted text encoder moves it; the training step re-encodes).
            conditioning = backbone.encode_prompts(all_prompts)
    finally:
        unet.train(was_training)
    return PriorSet(torch.cat(parts), conditioning, tuple(all_prompts), time.monotonic() - start)
