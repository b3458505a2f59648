"""The seam holds: a third backbone (tests/third_backbone.py: a variable-length masked text stream read by a UNet
without diffusers' adapter methods), registered by one line in ``BACKBONES``, trains, exports, reloads, mixes, fuses,
caches and samples through the same code as AudioLDM, configs and callbacks included."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from peft.tuners.lora import LoraLayer

from lightning_modules import backbone as backbone_registry
from lightning_modules.adapter_files import ADAPTER_WEIGHTS, PEFT_CONFIG, PEFT_FORMAT, parse_adapter_specs, read_adapter
from lightning_modules.adapters import fuse_adapters, load_adapters
from lightning_modules.backbone import load_backbone
from lightning_modules.sampler import generate, seeded_generators
from tests.cli_helpers import tiny_args
from tests.third_backbone import PIPELINE, REGISTRATION, StreamBackbone, build_stream_model

PROMPTS = ["gugak music", "a slow techno loop with bright synth and drums"]  # streams of other lengths


@pytest.fixture(scope="module")
def registry() -> object:
    """The one line that registers the backbone, for this module's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(backbone_registry.BACKBONES, *REGISTRATION)
        yield


@pytest.fixture(scope="module")
def stream_model(registry: object, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stream_model(tiny_model_dir, tmp_path_factory.mktemp("third") / "stream-model")


@pytest.fixture(scope="module")
def trained(stream_model: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three steps of `lightning fit` with configs/tiny.yaml (its callbacks on) on the third backbone, both sites
    adapted, and the adapter it exported."""
    from audioldm_lora.lightning_cli import build_cli

    run_dir = tmp_path_factory.mktemp("third-fit")
    cli = build_cli(tiny_args(
        "fit", stream_model, synthetic_root, run_dir, "--model.class_path=lightning_modules.AudioLDMLoRA",
        "--model.init_args.adapters.text_encoder.targets=WqWv", "--model.init_args.caption_dropout=0.5",
        "--trainer.max_steps=3", "--trainer.val_check_interval=3", "--adapter_export.every_n_steps=3",
    ))
    return cli, Path(cli.trainer.log_dir) / "adapters" / "final"


def prediction(backbone: StreamBackbone) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(backbone.latent_shape(2, 0.64), generator=generator)
    with torch.no_grad():
        return backbone.predict_noise(noisy, torch.tensor([400, 400]), backbone.encode_prompts(PROMPTS))


def test_it_trains_and_exports_every_site_in_peft_format(trained) -> None:
    cli, adapter = trained
    assert isinstance(cli.model.backbone, StreamBackbone) and cli.trainer.global_step == 3
    assert cli.trainer.callback_metrics["train/loss"].isfinite()
    for site in ("unet", "text_encoder"):
        lora_b = [v for k, v in cli.model.backbone.adapter_sites()[site].state_dict().items() if "lora_B" in k]
        assert lora_b and any(v.abs().sum() > 0 for v in lora_b), site  # both sites learned
    assert not (adapter / ADAPTER_WEIGHTS).exists()
    assert (adapter / "unet" / PEFT_CONFIG).is_file() and (adapter / "text_encoder" / PEFT_CONFIG).is_file()
    info = json.loads((adapter / "adapter_info.json").read_text())
    assert (info["backbone"], info["pipeline"]) == ("stream", PIPELINE)
    assert {site: record["format"] for site, record in info["sites"].items()} == {"unet": PEFT_FORMAT,
                                                                                 "text_encoder": PEFT_FORMAT}


def test_the_adapter_reloads_mixes_and_fuses(trained, stream_model: Path, tmp_path: Path) -> None:
    cli, adapter = trained
    expected = prediction(cli.model.eval().backbone)
    base = prediction(load_backbone(str(stream_model)))
    assert (expected - base).abs().max() > 1e-5

    loaded = load_backbone(str(stream_model))
    load_adapters(loaded, [read_adapter(parse_adapter_specs([str(adapter)])[0])], str(stream_model))
    torch.testing.assert_close(prediction(loaded), expected, atol=1e-5, rtol=1e-4)

    halves = load_backbone(str(stream_model))
    specs = parse_adapter_specs([f"a={adapter}=0.5", f"b={adapter}=0.5"])
    load_adapters(halves, [read_adapter(spec) for spec in specs], str(stream_model))
    torch.testing.assert_close(prediction(halves), expected, atol=1e-5, rtol=1e-4)

    fuse_adapters(halves, ["a", "b"])
    assert not any(isinstance(m, LoraLayer) for site in halves.adapter_sites().values() for m in site.modules())
    torch.testing.assert_close(prediction(halves), expected, atol=1e-5, rtol=1e-4)
    halves.save_pretrained(tmp_path / "merged")
    merged = load_backbone(str(tmp_path / "merged"))
    assert isinstance(merged, StreamBackbone)
    torch.testing.assert_close(prediction(merged), expected, atol=1e-5, rtol=1e-4)


def test_it_samples_with_guidance_over_prompts_of_other_lengths(trained) -> None:
    cli, _ = trained
    backbone = cli.model.eval().backbone
    kwargs = dict(duration=0.64, num_inference_steps=3, guidance_scale=2.5, scheduler="ddim")
    first = generate(backbone, PROMPTS, generator=seeded_generators([1, 2], "cpu"), **kwargs)
    assert first.shape == (2, int(0.64 * backbone.sampling_rate)) and torch.isfinite(first).all()
    alone = generate(backbone, PROMPTS[1:], generator=seeded_generators([2], "cpu"), **kwargs)
    torch.testing.assert_close(first[1:], alone, atol=1e-4, rtol=1e-3)  # padding the short prompt changes nothing


def test_it_caches_and_trains_from_the_cache(registry: object, stream_model: Path, synthetic_root: Path,
                                             tmp_path: Path) -> None:
    from audioldm_lora.commands.cache import main
    from audioldm_lora.lightning_cli import build_cli
    from datamodules.latent_cache import load_cache_index
    from tests.cli_helpers import CONFIG

    cache = tmp_path / "cache"
    overrides = [f"--set+=model.init_args.pretrained_model={stream_model}",
                 f"--set+=data.init_args.root={synthetic_root}",
                 "--set+=model.class_path=lightning_modules.AudioLDMLoRA"]
    assert main(["--config", CONFIG, *overrides, "--cache-dir", str(cache), "--crops-per-file", "1"]) == 0
    model = load_cache_index(cache)["model"]
    assert (model["backbone"], model["text_fields"]) == ("stream", ["encoder_hidden_states", "encoder_attention_mask"])
    cli = build_cli(tiny_args("fit", stream_model, synthetic_root, tmp_path, "--trainer.max_steps=2",
                              "--model.class_path=lightning_modules.AudioLDMLoRA",
                              f"--data.init_args.latent_cache={cache}", "--data.init_args.cache_crops_per_file=1",
                              "--trainer.val_check_interval=2", "--adapter_export.every_n_steps=0")[1:], run=False)
    cli.datamodule.setup("fit")
    batch = next(iter(cli.datamodule.train_dataloader()))
    assert batch["encoder_hidden_states"].shape[-1] == 32 and batch["encoder_attention_mask"].dim() == 2
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2 and cli.trainer.callback_metrics["train/loss"].isfinite()
