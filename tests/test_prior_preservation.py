"""Prior preservation: the prior set is the base model's own samples, and each step adds its weighted loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_modules.backbone import conditioning_rows
from lightning_modules.module import AudioLDMLoRA
from lightning_modules.prior_preservation import generate_prior_set
from lightning_modules.sampler import sample_latents, seeded_generators

PROMPTS = ["techno music", "boom bap music"]
SHAPE = (8, 40, 16)  # the tiny model's latents of 1.6 s clips (160 mel frames)


@pytest.fixture()
def module(tiny_model_dir: Path) -> AudioLDMLoRA:
    module = AudioLDMLoRA(
        pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "alpha": 2.0}}, num_inference_steps=3,
        prior_prompts=PROMPTS, prior_samples_per_prompt=3, prior_loss_weight=0.5, prior_seed=7,
    )
    with torch.no_grad():  # a trained-looking adapter: the prior set must still come from the base model
        for name, parameter in module.unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    return module


def test_prior_set_is_the_base_models_samples_with_fixed_seeds(module: AudioLDMLoRA) -> None:
    prior = module.prior_set(SHAPE)
    assert prior.latents.shape == (6, *SHAPE)
    assert prior.prompts == ("techno music",) * 3 + ("boom bap music",) * 3
    parts = module.backbone
    parts.unet.eval()
    parts.unet.disable_adapters()
    try:
        expected = sample_latents(parts, list(prior.prompts), (6, *SHAPE), 3, module.hparams.guidance_scale,
                                  generator=seeded_generators([7, 8, 9, 7, 8, 9]), scheduler="ddim")
    finally:
        parts.unet.enable_adapters()
    torch.testing.assert_close(prior.latents, expected)
    with_adapter = sample_latents(parts, list(prior.prompts), (6, *SHAPE), 3, module.hparams.guidance_scale,
                                  generator=seeded_generators([7, 8, 9, 7, 8, 9]), scheduler="ddim")
    assert not torch.allclose(prior.latents, with_adapter, atol=1e-4)  # the adapter was really off
    torch.testing.assert_close(prior.conditioning, parts.encode_prompts(list(prior.prompts)))


def test_prior_set_does_not_depend_on_batch_size_or_touch_the_global_rng(module: AudioLDMLoRA) -> None:
    module.unet.train()
    state = torch.get_rng_state()
    one = generate_prior_set(module.backbone, PROMPTS, 3, SHAPE, 3, 2.5, "ddim", 7, batch_size=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert module.unet.training  # mode restored
    many = generate_prior_set(module.backbone, PROMPTS, 3, SHAPE, 3, 2.5, "ddim", 7, batch_size=16)
    torch.testing.assert_close(one.latents, many.latents, atol=1e-4, rtol=1e-4)  # batched float sums


def test_training_step_adds_the_weighted_prior_loss(module: AudioLDMLoRA) -> None:
    batch = {"mel": torch.randn(2, 160, 64) - 5.0, "caption": ["gugak music", "gugak music"]}
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    module.prior_set(SHAPE)
    torch.manual_seed(11)
    total = module.training_step(batch, 0)
    torch.manual_seed(11)  # replay the same random draws piece by piece
    latents, embeds = module.batch_latents_and_conditioning(batch)
    drop = torch.rand(2) < module.hparams.caption_dropout
    instance = module.diffusion_loss(latents, embeds, drop)
    prior = module.prior_loss(latents)
    torch.testing.assert_close(total, instance + 0.5 * prior)
    assert prior.item() > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior_prompts": []}, "non-empty list"),
        ({"prior_prompts": ["jazz music", " "]}, "non-empty list of prompts"),
        ({"prior_prompts": ["jazz music"], "prior_samples_per_prompt": 0}, "at least 1"),
        ({"prior_prompts": ["jazz music"], "prior_loss_weight": 0.0}, "must be positive"),
        ({"prior_prompts": ["jazz music"], "prior_target": "noise"}, "prior_target must be one of"),
    ],
)
def test_bad_prior_settings_are_named(tiny_model_dir: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioLDMLoRA(pretrained_model=str(tiny_model_dir), **kwargs)


def test_distillation_loss_is_zero_for_an_untrained_adapter(tiny_model_dir: Path) -> None:
    """Gaussian init starts with B = 0: the adapter changes nothing, so the base-model target is met exactly."""
    fresh = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "alpha": 2.0}})
    latents, embeds = torch.randn(3, *SHAPE), fresh.encode_prompts(PROMPTS + [""])
    loss = fresh.distillation_loss(latents, embeds, torch.zeros(3, dtype=torch.bool), torch.Generator().manual_seed(0))
    assert loss.item() == 0.0


def test_distillation_loss_measures_the_adapters_change_and_trains_only_lora(module: AudioLDMLoRA) -> None:
    latents, embeds = torch.randn(2, *SHAPE), module.encode_prompts(PROMPTS)
    drop = torch.zeros(2, dtype=torch.bool)
    loss = module.distillation_loss(latents, embeds, drop, torch.Generator().manual_seed(3))
    # The same noisy input by hand: the adapter's prediction against the base model's.
    noised = module.objective.noised(latents, torch.Generator().manual_seed(3))
    with torch.no_grad():
        lora = module.backbone.predict_noise(noised.noisy, noised.timesteps, embeds)
        module.unet.disable_adapters()
        base = module.backbone.predict_noise(noised.noisy, noised.timesteps, embeds)
        module.unet.enable_adapters()
    torch.testing.assert_close(loss.detach(), torch.mean((lora - base) ** 2))
    assert loss.item() > 0
    loss.backward()
    grads = {n: p.grad for n, p in module.unet.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_training_step_with_the_base_model_target_adds_the_distillation_loss(tiny_model_dir: Path) -> None:
    module = AudioLDMLoRA(
        pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "alpha": 2.0}}, num_inference_steps=3,
        prior_prompts=PROMPTS, prior_samples_per_prompt=2, prior_loss_weight=3.0, prior_target="base_model",
    )
    with torch.no_grad():
        for name, parameter in module.unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    batch = {"mel": torch.randn(2, 160, 64) - 5.0, "caption": ["gugak music", "gugak music"]}
    module.log = lambda *args, **kwargs: None
    module.prior_set(SHAPE)
    torch.manual_seed(5)
    total = module.training_step(batch, 0)
    torch.manual_seed(5)
    latents, embeds = module.batch_latents_and_conditioning(batch)
    drop = torch.rand(2) < module.hparams.caption_dropout
    instance = module.diffusion_loss(latents, embeds, drop)
    prior = module.prior_set(SHAPE)
    rows = torch.randint(0, len(prior), (2,))
    prior_drop = torch.rand(2) < module.hparams.caption_dropout
    distilled = module.distillation_loss(prior.latents[rows], conditioning_rows(prior.conditioning, rows), prior_drop)
    torch.testing.assert_close(total, instance + 3.0 * distilled)
