"""The training objective of AudioLDMLoRA against docs/model-facts.md ('AudioLDM training objective'), piece by
piece."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from lightning_modules.diffusion_loss import diffusion_target, snr_weights, weighted_mse
from lightning_modules.module import AudioLDMLoRA


@pytest.fixture(scope="module")
def module(tiny_model_dir: Path) -> AudioLDMLoRA:
    return AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "alpha": 2.0}})


def test_frozen_parts_stay_in_eval_mode_without_gradients(module: AudioLDMLoRA) -> None:
    module.train()
    assert module.unet.training
    assert not any(m.training for m in (module.vae, module.text_encoder, module.vocoder))
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("unet.") and "lora_" in n for n in trainable)


def test_conditioning_is_normalised_clap_text_embeds(module: AudioLDMLoRA) -> None:
    tokens = module.backbone.tokenizer(["gugak music"], return_tensors="pt")
    raw = module.text_encoder(**tokens).text_embeds
    assert module.encode_prompts(["gugak music"]).keys() == {"class_labels"}
    torch.testing.assert_close(module.encode_prompts(["gugak music"])["class_labels"], F.normalize(raw, dim=-1))


def test_loss_is_epsilon_mse_with_class_labels(module: AudioLDMLoRA) -> None:
    """Recompute the step by hand with the same random draws and compare."""
    latents = torch.randn(2, 8, 4, 16)
    embeds = module.encode_prompts(["boom bap music", "techno music"])
    keep = torch.zeros(2, dtype=torch.bool)
    loss = module.diffusion_loss(latents, embeds, keep, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(latents.shape, generator=g)
    t = torch.randint(0, 1000, (2,), generator=g)
    noisy = module.objective.scheduler.add_noise(latents, noise, t)
    with torch.no_grad():
        pred = module.unet(noisy, t, encoder_hidden_states=None, class_labels=embeds["class_labels"]).sample
    torch.testing.assert_close(loss.detach(), F.mse_loss(pred, noise))


def test_caption_dropout_uses_the_empty_prompt(module: AudioLDMLoRA) -> None:
    latents = torch.randn(2, 8, 4, 16)
    embeds = module.encode_prompts(["boom bap music", "techno music"])
    empty = module.encode_prompts(["", ""])
    dropped = module.diffusion_loss(latents, embeds, torch.ones(2, dtype=torch.bool), torch.Generator().manual_seed(1))
    unconditional = module.diffusion_loss(latents, empty, torch.zeros(2, dtype=torch.bool), torch.Generator().manual_seed(1))
    conditional = module.diffusion_loss(latents, embeds, torch.zeros(2, dtype=torch.bool), torch.Generator().manual_seed(1))
    torch.testing.assert_close(dropped, unconditional)
    assert not torch.allclose(dropped, conditional)


def test_v_prediction_target_and_min_snr_weights() -> None:
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195,
                              prediction_type="v_prediction")
    latents, noise, t = torch.randn(3, 8, 2, 2), torch.randn(3, 8, 2, 2), torch.tensor([0, 500, 999])
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(diffusion_target(scheduler, latents, noise, t), a.sqrt() * noise - (1 - a).sqrt() * latents)
    snr = (a / (1 - a)).flatten()
    torch.testing.assert_close(snr_weights(scheduler, t, 5.0), torch.clamp(snr, max=5.0) / (snr + 1))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0195)
    torch.testing.assert_close(diffusion_target(scheduler, latents, noise, t), noise)
    torch.testing.assert_close(snr_weights(scheduler, t, 5.0), torch.clamp(snr, max=5.0) / snr)


def test_weighted_mse() -> None:
    pred, target = torch.zeros(2, 1, 2, 2), torch.stack([torch.ones(1, 2, 2), 2 * torch.ones(1, 2, 2)])
    assert weighted_mse(pred, target, None).item() == pytest.approx(2.5)
    assert weighted_mse(pred, target, torch.tensor([1.0, 0.5])).item() == pytest.approx(1.5)


def test_clip_length_must_fit_the_vae(module: AudioLDMLoRA) -> None:
    with pytest.raises(ValueError, match="not a multiple of the VAE factor 4"):
        module.backbone.encode_mel(torch.zeros(1, 101, 64))


def test_checkpoint_for_another_lora_config_is_refused(module: AudioLDMLoRA, tiny_model_dir: Path) -> None:
    other = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "targets": "attention_proj"}})
    checkpoint = {"state_dict": {k: v for k, v in module.state_dict().items() if "lora_" in k}}
    with pytest.raises(KeyError, match="written for another LoRA configuration"):
        other.on_load_checkpoint(checkpoint)
    module.on_load_checkpoint(checkpoint)  # its own checkpoint is accepted


def test_latent_cache_batch_matches_the_audio_path(module: AudioLDMLoRA) -> None:
    """A cache batch (posterior parameters + text embeddings) gives the same latents as encoding the mel."""
    mel = torch.randn(2, 16, 64)
    posterior = module.vae.encode(mel.unsqueeze(1)).latent_dist
    cached = {"latent_mean": posterior.mean, "latent_logvar": posterior.logvar,
              **module.backbone.conditioning_for_cache(module.encode_prompts(["a", "b"]))}
    from_cache = module.batch_latents_and_conditioning(cached, torch.Generator().manual_seed(0))
    from_audio = module.batch_latents_and_conditioning({"mel": mel, "caption": ["a", "b"]}, torch.Generator().manual_seed(0))
    torch.testing.assert_close(from_cache[0], from_audio[0])
    torch.testing.assert_close(from_cache[1], from_audio[1])


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir: Path) -> None:
    plain = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"init": "kaiming"}})
    checkpointed = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"init": "kaiming"}}, gradient_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    assert checkpointed.unet.is_gradient_checkpointing and not plain.unet.is_gradient_checkpointing
    latents = torch.randn(2, 8, 4, 16)
    embeds = plain.encode_prompts(["a", "b"])
    keep = torch.zeros(2, dtype=torch.bool)
    for model in (plain, checkpointed):
        model.train()
        model.diffusion_loss(latents, embeds, keep, torch.Generator().manual_seed(0)).backward()
    grads = [(p.grad, q.grad) for p, q in zip(plain.parameters(), checkpointed.parameters()) if p.requires_grad]
    assert grads and all(a is not None and torch.allclose(a, b, atol=1e-6) for a, b in grads)


def test_channels_last_gives_the_same_loss_and_gradients(module: AudioLDMLoRA, tiny_model_dir: Path) -> None:
    other = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "alpha": 2.0}}, channels_last=True)
    conv = next(m for m in other.unet.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    latents, embeds = torch.randn(2, 8, 4, 16), module.encode_prompts(["boom bap music", "techno music"])
    keep = torch.zeros(2, dtype=torch.bool)
    losses = [m.diffusion_loss(latents, embeds, keep, torch.Generator().manual_seed(4)) for m in (module, other)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("setting", "fused"), [(None, False), (True, True), (False, False)])
def test_fused_adamw_on_request_or_on_cuda(tiny_model_dir: Path, setting: bool | None, fused: bool) -> None:
    """``None`` picks the fused kernel only for CUDA weights (here on the CPU: the default foreach kernel)."""
    module = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"rank": 2, "alpha": 2.0}}, fused_optimizer=setting)
    optimizer = module.configure_optimizers()["optimizer"]
    assert bool(optimizer.defaults["fused"]) is fused
