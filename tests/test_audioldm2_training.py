"""Training AudioLDM2 with the whole framework: `lightning fit --config configs/tiny_audioldm2.yaml` as shipped
(callbacks on), both adapter sites, the loss options, exact resume, the latent cache, and the shipped real recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audioldm_lora.lightning_cli import build_cli
from lightning_modules.adapter_files import PEFT_CONFIG, parse_adapter_spec, read_adapter
from lightning_modules.adapters import load_adapters
from lightning_modules.backbone import load_backbone
from tests.cli_helpers import tiny_args
from tests.resume_helpers import MID_EPOCH, assert_same_training, fit, last_checkpoint

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny_audioldm2.yaml")
SITES = ["--model.init_args.adapters.unet.targets=cross", "--model.init_args.adapters.text_encoder_2.targets=WqWv",
         "--model.init_args.snr_gamma=5.0", *MID_EPOCH, "--model.init_args.prior_target=base_model",
         '--model.init_args.prior_prompts=["pop music", "a long rock song with electric guitars and heavy drums", ""]',
         "--model.init_args.prior_samples_per_prompt=2", "--trainer.val_check_interval=4",
         "--adapter_export.every_n_steps=4", *(FEW_STEPS := ["--model.init_args.num_inference_steps=2"])]
PROMPTS = ["gugak music", "a slow techno loop with bright synth and warm bass"]


@pytest.fixture(scope="module")
def straight(tiny_audioldm2_dir: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """4 uninterrupted steps of configs/tiny_audioldm2.yaml (3 steps per epoch), UNet and T5 adapted, with caption
    dropout, offset noise, Min-SNR and prior preservation (prompts of other T5 lengths)."""
    return fit(tiny_audioldm2_dir, synthetic_root, tmp_path_factory.mktemp("a2-straight"), 4, *SITES, config=CONFIG)


def prediction(backbone) -> torch.Tensor:
    noisy = torch.randn(backbone.latent_shape(2, 0.64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return backbone.predict_noise(noisy, torch.tensor([400, 400]), backbone.encode_prompts(PROMPTS))


def test_the_shipped_recipe_trains_both_sites_and_exports_what_it_learned(straight, tiny_audioldm2_dir: Path) -> None:
    metrics = straight.trainer.callback_metrics
    assert straight.trainer.global_step == 4 and metrics["train/loss"].isfinite() and metrics["train/prior_loss"] > 0
    run = Path(straight.trainer.log_dir)
    assert {"val/loss", "val/kad", "val/kad_base", "val/cond_gain/gugak"} <= set(straight.trainer.callback_metrics)
    assert list(run.glob("samples/step-000000/gugak*_A_lora.wav"))  # A/B sampling ran
    adapter = run / "adapters" / "final"
    info = json.loads((adapter / "adapter_info.json").read_text())
    assert info["backbone"] == "audioldm2" and (adapter / "text_encoder_2" / PEFT_CONFIG).is_file()
    assert set(info["sites"]["unet"]["trainable_by_group"]) == {"cross-attention to the GPT2 stream",
                                                                "cross-attention to the T5 stream"}
    trained = prediction(straight.model.eval().backbone)
    base = load_backbone(str(tiny_audioldm2_dir))
    assert (trained - prediction(base)).abs().max() > 1e-4  # the adapter moves the output
    load_adapters(base, [read_adapter(parse_adapter_spec(str(adapter)))], str(tiny_audioldm2_dir))
    torch.testing.assert_close(prediction(base), trained, atol=1e-5, rtol=1e-4)


def test_an_interrupted_run_resumes_exactly(straight, tiny_audioldm2_dir: Path, synthetic_root: Path,
                                            tmp_path: Path) -> None:
    """Stopped mid-epoch at step 2 and resumed to 4 across the epoch boundary: bit-identical to the straight run."""
    fit(tiny_audioldm2_dir, synthetic_root, tmp_path / "first", 2, *SITES, config=CONFIG)
    resumed = fit(tiny_audioldm2_dir, synthetic_root, tmp_path / "resumed", 4, *SITES, config=CONFIG,
                  ckpt=last_checkpoint(tmp_path / "first"))
    assert_same_training(straight, resumed, sites={"unet", "text_encoder_2"})


def test_it_trains_from_a_latent_cache_of_both_streams(tiny_audioldm2_dir: Path, tiny_model_dir: Path,
                                                       synthetic_root: Path, tmp_path: Path) -> None:
    from audioldm_lora.commands.cache import main
    from datamodules.errors import DataSourceError
    from datamodules.latent_cache import load_cache_index

    cache = tmp_path / "cache"
    overrides = [f"--set+=model.init_args.pretrained_model={tiny_audioldm2_dir}",
                 f"--set+=data.init_args.root={synthetic_root}",
                 "--set+=model.class_path=lightning_modules.AudioLDMLoRA"]
    assert main(["--config", CONFIG, *overrides, "--cache-dir", str(cache), "--crops-per-file", "1"]) == 0
    model = load_cache_index(cache)["model"]
    assert model["backbone"] == "audioldm2" and model["text_streams"] == {
        "encoder_hidden_states_1": "encoder_attention_mask_1"}
    from_cache = ["--model.class_path=lightning_modules.AudioLDMLoRA", f"--data.init_args.latent_cache={cache}",
                  "--data.init_args.cache_crops_per_file=1", "--trainer.val_check_interval=2",
                  "--adapter_export.every_n_steps=0", "--trainer.max_steps=2", *FEW_STEPS]
    cli = build_cli(tiny_args("fit", tiny_audioldm2_dir, synthetic_root, tmp_path / "run", *from_cache,
                              config=CONFIG)[1:], run=False)
    cli.datamodule.setup("fit")
    batch = next(iter(cli.datamodule.train_dataloader()))
    assert batch["encoder_hidden_states"].shape[1:] == (8, 24) and batch["encoder_attention_mask_1"].dim() == 2
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2 and cli.trainer.callback_metrics["train/loss"].isfinite()

    with pytest.raises(DataSourceError, match=r"\(audioldm2\), but the model is .*\(audioldm\); rebuild it with "
                                              r"`audioldm-lora cache --config <your config>`"):
        fit(tiny_model_dir, synthetic_root, tmp_path / "v1", 2, *from_cache)


def test_the_real_recipe_names_its_base_and_loads_it_from_the_hub_cache(
    tiny_audioldm2_dir: Path, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """configs/genre_audioldm2.yaml offline: its hub id, not cached, is named with the command that fetches it; once
    in the cache, the hub id loads the AudioLDM2 backbone through the same path as a directory."""
    from audioldm_lora.cli import main
    from lightning_modules.audioldm2 import AudioLDM2Backbone
    from tests.test_hub_cache import hub_cache_with, offline_with_cache

    offline_with_cache(monkeypatch, tmp_path / "empty-hub")
    try:
        code = main(["fit", "--config", "configs/genre_audioldm2.yaml", f"--data.init_args.root={synthetic_root}",
                     f"--trainer.default_root_dir={tmp_path / 'run'}"])
    except SystemExit as exit_:
        code = int(exit_.code)
    assert code == 2 and "`hf download cvssp/audioldm2-music`" in capsys.readouterr().err
    offline_with_cache(monkeypatch, hub_cache_with(tiny_audioldm2_dir, "cvssp/audioldm2-music", tmp_path / "hub"))
    assert isinstance(load_backbone("cvssp/audioldm2-music"), AudioLDM2Backbone)


def test_bf16_mixed_precision_with_frozen_parts_in_bf16(tiny_audioldm2_dir: Path, synthetic_root: Path,
                                                          tmp_path: Path) -> None:
    """The whole chain (CLAP, T5 with its adapter, projection, GPT2, VAE) frozen in bf16 under bf16-mixed: the
    LoRA weights of both sites stay float32 and train, the loss is finite."""
    cli = fit(tiny_audioldm2_dir, synthetic_root, tmp_path, 2, "--trainer.precision=bf16-mixed",
              "--model.init_args.frozen_dtype=bfloat16", "--model.init_args.adapters.text_encoder_2.targets=WqWv",
              "--trainer.val_check_interval=2", "--adapter_export.every_n_steps=0", *FEW_STEPS, config=CONFIG)
    backbone = cli.model.backbone
    assert cli.trainer.global_step == 2 and cli.trainer.callback_metrics["train/loss"].isfinite()
    assert {backbone.language_model.dtype, backbone.text_encoder.dtype, backbone.vae.dtype} == {torch.bfloat16}
    trainable = [p for site in ("unet", "text_encoder_2") for p in backbone.adapter_sites()[site].parameters()
                 if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
