"""The text-encoder adapter site (issue 15): what trains, what stays frozen, the unconditional input, the latent
cache, the peft export that plain peft loads, loading, mixing and merging, and the setting errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from peft import PeftModel
from transformers import ClapTextModelWithProjection, SpeechT5HifiGan

from audioldm_lora.lightning_cli import build_cli
from lightning_modules.adapter_files import (
    ADAPTER_WEIGHTS,
    PEFT_CONFIG,
    PEFT_WEIGHTS,
    parse_adapter_spec,
    parse_adapter_specs,
    read_adapter,
)
from lightning_modules.adapters import load_adapters
from lightning_modules.audioldm import encode_text
from lightning_modules.backbone import load_backbone
from lightning_modules.lora import LoraConfigError
from lightning_modules.module import AudioLDMLoRA
from tests.adapter_helpers import site_adapter
from tests.cli_helpers import tiny_args

PROMPTS = ["boom bap music", "gugak music"]
TEXT_ENCODER_ONLY = ["--model.init_args.adapters.unet.targets=none",
                     "--model.init_args.adapters.text_encoder.targets=WqWv",
                     "--model.init_args.adapters.text_encoder.rank=2", "--model.init_args.adapters.text_encoder.alpha=8"]


def text_encoder_module(model_dir: Path, site: dict | None = None, **kwargs) -> AudioLDMLoRA:
    """A text-encoder-only module (WqWv, rank 2, alpha 8; ``site`` overrides the text encoder's settings)."""
    text_encoder = {"targets": "WqWv", "rank": 2, "alpha": 8.0, **(site or {})}
    return AudioLDMLoRA(pretrained_model=str(model_dir),
                        adapters={"unet": {"targets": "none"}, "text_encoder": text_encoder}, **kwargs)


def randomize(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def unet_output(unet: torch.nn.Module, embeds: torch.Tensor) -> torch.Tensor:
    x = torch.randn(embeds.shape[0], 8, 8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet(x, torch.tensor([5, 500][: embeds.shape[0]]), encoder_hidden_states=None,
                    class_labels=embeds).sample


@pytest.fixture(scope="module")
def fitted(tiny_model_dir: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Four steps of `lightning fit` of the tiny recipe with both sites (UNet `attention`, text encoder WqWv)."""
    run_dir = tmp_path_factory.mktemp("fit-text-encoder")
    cli = build_cli(tiny_args(
        "fit", tiny_model_dir, synthetic_root, run_dir, "--trainer.max_steps=4", "--trainer.val_check_interval=2",
        "--model.init_args.adapters.text_encoder.targets=WqWv", "--model.init_args.adapters.text_encoder.alpha=8",
        "--model.init_args.adapters.text_encoder.rank=4",
        "--model.init_args.caption_dropout=0.5", "--adapter_export.every_n_steps=2",
    ))
    return cli


def test_gradients_reach_the_text_encoder_adapter_and_nothing_else(tiny_model_dir: Path) -> None:
    module = text_encoder_module(tiny_model_dir)
    module.train()
    assert not module.text_encoder.training  # its own dropout stays off
    latents, cond = module.batch_latents_and_conditioning({"mel": torch.randn(2, 16, 64), "caption": PROMPTS})
    assert cond["class_labels"].requires_grad
    module.diffusion_loss(latents, cond, torch.tensor([False, True])).backward()  # one row on the "" embedding
    with_grad = {name for name, p in module.named_parameters() if p.grad is not None}
    assert with_grad and all(name.startswith("text_encoder.") and "lora_" in name for name in with_grad)
    lora_b = [p.grad for name, p in module.named_parameters() if "lora_B" in name]
    assert lora_b and all(g.abs().max() > 0 for g in lora_b)  # B starts at zero, so B's gradient is the signal
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in module.text_encoder.named_parameters(prefix="text_encoder") if "lora_" in n}


def test_the_text_encoders_own_dropout_is_opt_in(tiny_model_dir: Path) -> None:
    """Off by default (the embedding in training is the one inference sees); `module_dropout` turns CLAP's
    hidden/attention dropout on in training only, and asking for it without a text-encoder site is an error."""
    def two_encodings(module: AudioLDMLoRA) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        return tuple(encode_text(module.text_encoder, module.backbone.tokenizer, PROMPTS).detach() for _ in range(2))

    default = text_encoder_module(tiny_model_dir).train()
    first, second = two_encodings(default)
    assert torch.equal(first, second)
    opted_in = text_encoder_module(tiny_model_dir, {"module_dropout": True}).train()
    assert opted_in.text_encoder.training and opted_in.text_encoder.config.hidden_dropout_prob > 0
    assert not opted_in.vae.training and not opted_in.vocoder.training
    first, second = two_encodings(opted_in)
    assert (first - second).abs().max() > 1e-4
    first, second = two_encodings(opted_in.eval())
    assert torch.equal(first, second) and torch.allclose(first, two_encodings(default.eval())[0])
    with pytest.raises(ValueError, match="adapters.text_encoder.module_dropout needs the site switched on"):
        AudioLDMLoRA(pretrained_model=str(tiny_model_dir),
                     adapters={"unet": {}, "text_encoder": {"targets": None, "module_dropout": True}})


def test_the_unconditional_embedding_follows_the_adapter(tiny_model_dir: Path) -> None:
    module = text_encoder_module(tiny_model_dir)
    before = module.unconditional()["class_labels"].detach().clone()
    randomize(module.text_encoder, seed=1)
    after = module.unconditional()["class_labels"]
    assert (after - before).abs().max() > 1e-4
    expected = encode_text(module.text_encoder, module.backbone.tokenizer, [""])
    torch.testing.assert_close(after, expected)
    from lightning_modules.adapter_sites import adapters_disabled

    with adapters_disabled(module.backbone):  # the base model's own "" (A/B's B side, the distillation target)
        torch.testing.assert_close(module.unconditional()["class_labels"], before)


def test_latent_cache_batches_encode_their_captions(tiny_model_dir: Path) -> None:
    """With an adapted text encoder the cached text embeddings are not used; the VAE posteriors are."""
    module = text_encoder_module(tiny_model_dir)
    randomize(module.text_encoder, seed=2)
    mel = torch.randn(2, 16, 64)
    posterior = module.vae.encode(mel.unsqueeze(1)).latent_dist
    stale = torch.nn.functional.normalize(torch.randn(2, 32), dim=-1)
    cached = {"latent_mean": posterior.mean, "latent_logvar": posterior.logvar, "text_embeds": stale,
              "caption": PROMPTS}
    latents, cond = module.batch_latents_and_conditioning(cached, torch.Generator().manual_seed(0))
    from_audio = module.batch_latents_and_conditioning({"mel": mel, "caption": PROMPTS}, torch.Generator().manual_seed(0))
    torch.testing.assert_close(latents, from_audio[0])
    torch.testing.assert_close(cond["class_labels"], from_audio[1]["class_labels"])
    assert cond["class_labels"].requires_grad


def test_unknown_targets_and_no_site_fail_before_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(LoraConfigError, match=r"text_encoder.targets: Unknown LoRA target preset 'Wk'.*WqWv"):
        text_encoder_module(tiny_model_dir, {"targets": "Wk"})
    with pytest.raises(LoraConfigError, match=r"text_encoder.targets: .*\['query_proj'\] match no module of the "
                                              r"text_encoder. Linear layers it has: .*'query'"):
        text_encoder_module(tiny_model_dir, {"targets": ["query_proj"]})
    # no site at all: refused before the model is even loaded (the path does not exist)
    with pytest.raises(LoraConfigError, match=r"No adapter site is switched on \(model.init_args.adapters has unet"):
        AudioLDMLoRA(pretrained_model=str(tmp_path / "missing"), adapters={"unet": {"targets": "none"}})


def test_fit_with_both_sites_keeps_every_frozen_weight(fitted, tiny_model_dir: Path) -> None:
    model = fitted.model
    assert fitted.trainer.global_step == 4
    for name, cls in [("vae", AutoencoderKL), ("vocoder", SpeechT5HifiGan)]:
        reference = cls.from_pretrained(tiny_model_dir, subfolder=name).state_dict()
        assert all(torch.equal(reference[k], v) for k, v in getattr(model, name).state_dict().items()), name
    for name, cls in [("text_encoder", ClapTextModelWithProjection), ("unet", UNet2DConditionModel)]:
        reference = cls.from_pretrained(tiny_model_dir, subfolder=name).state_dict()
        trained = {k.replace(".base_layer", ""): v for k, v in getattr(model, name).state_dict().items()
                   if "lora_" not in k}
        assert reference.keys() == trained.keys(), name
        assert all(torch.equal(reference[k], trained[k]) for k in reference), name
        lora_b = [v for k, v in getattr(model, name).state_dict().items() if "lora_B" in k]
        assert lora_b and all(v.abs().sum() > 0 for v in lora_b), name  # both sites learned


def test_exported_text_encoder_loads_with_plain_peft(fitted, tiny_model_dir: Path) -> None:
    adapter = Path(fitted.trainer.log_dir) / "adapters" / "final"
    assert (adapter / ADAPTER_WEIGHTS).is_file()
    assert {p.name for p in (adapter / "text_encoder").iterdir()} == {PEFT_CONFIG, PEFT_WEIGHTS}
    config = json.loads((adapter / "text_encoder" / PEFT_CONFIG).read_text())
    assert config["auto_mapping"]["base_model_class"] == "ClapTextModelWithProjection"
    assert (config["r"], config["lora_alpha"]) == (4, 8.0)  # the site's own rank and alpha

    plain = PeftModel.from_pretrained(
        ClapTextModelWithProjection.from_pretrained(tiny_model_dir, subfolder="text_encoder"),
        str(adapter / "text_encoder"),
    ).eval()
    tokens = fitted.model.backbone.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = fitted.model.text_encoder(**tokens).text_embeds
        torch.testing.assert_close(plain(**tokens).text_embeds, expected, atol=0, rtol=0)

    info = json.loads((adapter / "adapter_info.json").read_text())
    assert set(info["sites"]) == {"unet", "text_encoder"}
    site = info["sites"]["text_encoder"]
    assert (site["targets"], site["rank"], site["alpha"]) == ("WqWv", 4, 8.0)
    assert site["target_modules"] == ["attention.self.query", "attention.self.value"]
    assert info["trainable_parameters"] == site["trainable_parameters"] + info["sites"]["unet"]["trainable_parameters"]


def test_text_encoder_only_adapter_has_no_unet_file_and_leaves_the_unet_alone(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    adapter = site_adapter(tiny_model_dir, tmp_path / "te", seed=3, unet_targets=None, text_encoder_targets="WqWv")
    assert not (adapter / ADAPTER_WEIGHTS).exists()
    loaded = read_adapter(parse_adapter_spec(str(adapter)))
    assert loaded.site_names == ["text_encoder"]
    base, adapted = load_backbone(str(tiny_model_dir)), load_backbone(str(tiny_model_dir))
    load_adapters(adapted, [loaded], str(tiny_model_dir))
    assert not getattr(adapted.unet, "peft_config", None)
    embeds = torch.nn.functional.normalize(torch.randn(2, 32, generator=torch.Generator().manual_seed(1)), dim=-1)
    torch.testing.assert_close(unet_output(adapted.unet, embeds), unet_output(base.unet, embeds), atol=0, rtol=0)
    with torch.no_grad():
        moved = adapted.encode_prompts(PROMPTS)["class_labels"] - base.encode_prompts(PROMPTS)["class_labels"]
    assert moved.abs().max() > 1e-4  # the adapter acts through the prompt's embedding only


def test_mixing_weights_scale_the_text_encoder_update(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Two adapters at (1, 0) equal the first alone; the mix goes through both sites."""
    first = site_adapter(tiny_model_dir, tmp_path / "a", seed=4, unet_targets="paper", text_encoder_targets="Wq")
    second = site_adapter(tiny_model_dir, tmp_path / "b", seed=5, unet_targets=None, text_encoder_targets="WqWv")
    alone, mixed = load_backbone(str(tiny_model_dir)), load_backbone(str(tiny_model_dir))
    load_adapters(alone, [read_adapter(parse_adapter_spec(str(first)))], "tiny")
    load_adapters(mixed, [read_adapter(s) for s in parse_adapter_specs([f"{first}=1", f"{second}=0"])], "tiny")
    with torch.no_grad():
        torch.testing.assert_close(mixed.encode_prompts(PROMPTS)["class_labels"],
                                   alone.encode_prompts(PROMPTS)["class_labels"], atol=1e-6, rtol=0)
    assert set(mixed.text_encoder.peft_config) == {"a", "b"}


def test_merged_folder_equals_the_adapters_loaded_with_plain_diffusers_and_peft(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from diffusers import AudioLDMPipeline

    from audioldm_lora.commands import merge as merge_command

    both = site_adapter(tiny_model_dir, tmp_path / "both", seed=6, unet_targets="attention", text_encoder_targets="WqWv")
    out = tmp_path / "merged"
    argv = ["--base", str(tiny_model_dir), "--adapter", str(both), "--out", str(out), "--model-card"]
    assert merge_command.main(argv) == 0
    assert "fused into its UNet and CLAP text encoder" in (out / "README.md").read_text()
    settings = {"num_inference_steps": 3, "audio_length_in_s": 0.64, "guidance_scale": 2.5, "output_type": "pt"}

    def audio(pipe) -> torch.Tensor:
        pipe.set_progress_bar_config(disable=True)
        return pipe(PROMPTS, generator=torch.Generator().manual_seed(3), **settings).audios

    merged = audio(AudioLDMPipeline.from_pretrained(out))
    pipe = AudioLDMPipeline.from_pretrained(tiny_model_dir)
    base = audio(pipe)
    pipe.unet.load_lora_adapter(str(both), prefix=None, weight_name=ADAPTER_WEIGHTS, use_safetensors=True)
    pipe.text_encoder = PeftModel.from_pretrained(pipe.text_encoder, str(both / "text_encoder"))
    with_adapters = audio(pipe)
    assert (with_adapters - base).abs().max() > 1e-3
    assert (merged - with_adapters).abs().max() < 1e-5
    assert not any("lora" in n for n, _ in ClapTextModelWithProjection.from_pretrained(
        out, subfolder="text_encoder").named_parameters())


def test_the_readme_snippet_loads_both_parts(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The README's plain diffusers + peft snippet, run as written on the tiny model (paths and sampling length
    swapped for the tiny ones), gives the project's own sampler's audio."""
    import re

    from lightning_modules.sampler import generate

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = re.search(r"<!-- text-encoder-snippet -->\n```python\n(.*?)```", readme, re.S).group(1)
    adapter = site_adapter(tiny_model_dir, tmp_path / "both", seed=7, unet_targets="paper", text_encoder_targets="WqWv")
    code = re.sub(r'^base, adapter = .*$', f'base, adapter = "{tiny_model_dir}", "{adapter}"', snippet, flags=re.M)
    code = code.replace("num_inference_steps=200", "num_inference_steps=3").replace("10.24", "0.64")
    assert code != snippet
    namespace: dict = {}
    exec(compile(code, "README snippet", "exec"), namespace)  # noqa: S102 - the documented code itself
    ours = load_backbone(str(tiny_model_dir))
    load_adapters(ours, [read_adapter(parse_adapter_spec(str(adapter)))], str(tiny_model_dir))
    expected = generate(ours, ["hip hop music, The subgenre of hip-hop is boom bap."], 0.64, num_inference_steps=3,
                        guidance_scale=2.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.as_tensor(namespace["audio"]), expected[0], atol=1e-5, rtol=0)


def test_prior_preservation_holds_the_base_models_conditioning_and_trains_the_text_encoder(
    tiny_model_dir: Path,
) -> None:
    """The prior set keeps the base model's conditioning; the step re-encodes its prompts with the adapter on, and the
    distillation target is the base model's prediction under the base conditioning, so a text-encoder adapter that
    moves the prior prompts' embedding is penalised (and only its LoRA weights get the gradient)."""
    shape = (8, 4, 16)
    module = text_encoder_module(tiny_model_dir, num_inference_steps=2, prior_prompts=["techno music", ""],
                                 prior_samples_per_prompt=2, prior_target="base_model", caption_dropout=0.0)
    prior = module.prior_set(shape)
    with torch.no_grad():
        torch.testing.assert_close(prior.conditioning, module.encode_prompts(list(prior.prompts)))
    # B = 0: the adapter is the identity, the adapted model equals the base (to float rounding of other batchings)
    assert module.prior_loss(torch.zeros(2, *shape)).item() < 1e-10
    randomize(module.text_encoder, seed=8)
    module.train()
    loss = module.prior_loss(torch.zeros(2, *shape))
    assert loss.item() > 0
    loss.backward()
    with_grad = {name for name, p in module.named_parameters() if p.grad is not None}
    assert with_grad and all(name.startswith("text_encoder.") and "lora_" in name for name in with_grad)


def test_adapter_health_reports_each_site(fitted) -> None:
    from callbacks.adapter_health import AdapterHealth, lora_update_norms, site_totals
    from lightning_modules.adapter_sites import site_layers

    norms = lora_update_norms(site_layers(fitted.model.backbone))
    assert any(name.startswith("text_encoder/") for name in norms) and any("/" not in name for name in norms)
    totals = site_totals(norms)
    assert set(totals) == {"unet", "text_encoder"} and all(v > 0 for v in totals.values())
    health = AdapterHealth(every_n_steps=1)
    health.on_train_batch_end(SimpleNamespace(global_step=4, loggers=[]), fitted.model)
    assert health.last["lora/update_norm_total/text_encoder"] > 0
    per_site = [v for k, v in health.last.items() if k.startswith("lora/update_norm_total/")]
    assert health.last["lora/update_norm_total"] ** 2 == pytest.approx(sum(v * v for v in per_site), rel=1e-6)


@pytest.mark.parametrize(("unet_targets", "snippet_lines"), [(None, 1), ("paper", 2)])
def test_model_card_usage_loads_the_sites_the_adapter_has(tiny_model_dir: Path, tmp_path: Path,
                                                          unet_targets: str | None, snippet_lines: int) -> None:
    import re

    from lightning_modules.model_card import adapter_card

    adapter = site_adapter(tiny_model_dir, tmp_path / "a", seed=9, unet_targets=unet_targets,
                           text_encoder_targets="Wv")
    info = json.loads((adapter / "adapter_info.json").read_text())
    card = adapter_card(info, repo_id=str(adapter))
    assert "CLAP text encoder" in card and "| CLAP text encoder LoRA (rank, alpha, targets) | 2, 8.0, attention.self.value |" in card
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert len(re.findall(r"load_lora_adapter|PeftModel.from_pretrained\(", code)) == snippet_lines
    code = code.replace("num_inference_steps=200", "num_inference_steps=2").replace("10.24", "0.64")
    code = code.replace("path/to/the/base", str(tiny_model_dir))  # a local base: the reader names their copy
    namespace: dict = {}
    exec(compile(code, "model card snippet", "exec"), namespace)  # noqa: S102 - the card's own code
    assert isinstance(namespace["pipe"].text_encoder, PeftModel) and namespace["audio"].shape == (10240,)


def test_half_precision_text_encoder_trains_float32_lora_weights(tiny_model_dir: Path) -> None:
    module = text_encoder_module(tiny_model_dir, frozen_dtype="bfloat16")
    lora = {name: p for name, p in module.text_encoder.named_parameters() if "lora_" in name}
    assert lora and all(p.dtype == torch.float32 for p in lora.values())
    assert module.text_encoder.text_model.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    module.train()
    latents, cond = module.batch_latents_and_conditioning({"mel": torch.randn(2, 16, 64), "caption": PROMPTS})
    module.diffusion_loss(latents, cond, torch.tensor([False, True])).backward()
    lora_b = [p for n, p in lora.items() if "lora_B" in n]
    assert lora_b and all(p.grad is not None and p.grad.dtype == torch.float32 for p in lora_b)


@pytest.mark.parametrize("unet_off", ["none", "null"])
def test_a_text_encoder_only_run_is_configured_from_the_command_line(
    tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path, unet_off: str
) -> None:
    args = [a.replace("unet.targets=none", f"unet.targets={unet_off}") for a in TEXT_ENCODER_ONLY]
    cli = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, *args)[1:], run=False)
    assert [(site, c.targets, c.rank, c.alpha) for site, c in cli.model.site_settings.items()] == [
        ("text_encoder", "WqWv", 2, 8.0)]
    assert not getattr(cli.model.unet, "peft_config", None)
    assert all(not p.requires_grad for p in cli.model.unet.parameters())
