"""`lightning fit --config configs/tiny.yaml` end to end on the tiny model: what trains, what stays, what is written."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from lightning import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO
from transformers import ClapTextModelWithProjection, SpeechT5HifiGan

from audioldm_lora.lightning_cli import build_cli
from callbacks.checkpoint_io import AtomicCheckpointIO
from lightning_modules.lora import ADAPTER_WEIGHTS
from tests.cli_helpers import tiny_args
from tests.resume_helpers import MID_EPOCH


def logged_losses(run_dir: Path) -> list[float]:
    metrics = next(run_dir.rglob("metrics.csv"))
    with metrics.open() as handle:
        return [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


@pytest.fixture(scope="module")
def fitted(tiny_model_dir: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("fit")
    cli = build_cli(
        tiny_args("fit", tiny_model_dir, synthetic_root, run_dir, "--trainer.max_steps=6", "--trainer.log_every_n_steps=1",
                  "--trainer.val_check_interval=3", "--adapter_export.every_n_steps=3")
    )
    return cli, run_dir


def test_fit_logs_finite_loss_and_exports_adapters(fitted) -> None:
    cli, run_dir = fitted
    assert cli.trainer.global_step == 6
    assert type(cli.trainer.strategy.checkpoint_io) is AtomicCheckpointIO  # the CLI's default writer
    losses = logged_losses(run_dir)
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    adapters = cli.trainer.log_dir + "/adapters"
    for name in ("step-3", "step-6", "final"):
        assert (Path(adapters) / name / ADAPTER_WEIGHTS).is_file(), name
        assert (Path(adapters) / name / "adapter_info.json").is_file(), name


def test_only_lora_weights_change(fitted, tiny_model_dir: Path) -> None:
    model = fitted[0].model
    for name, cls in [("vae", AutoencoderKL), ("text_encoder", ClapTextModelWithProjection), ("vocoder", SpeechT5HifiGan)]:
        reference = cls.from_pretrained(tiny_model_dir, subfolder=name).state_dict()
        trained = getattr(model, name).state_dict()
        assert reference.keys() == trained.keys()
        assert all(torch.equal(reference[k], trained[k]) for k in reference), name
    base = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").state_dict()
    trained = {k.replace(".base_layer", ""): v for k, v in model.unet.state_dict().items() if "lora_" not in k}
    assert base.keys() == trained.keys()
    assert all(torch.equal(base[k], trained[k]) for k in base)
    lora_b = [v for k, v in model.unet.state_dict().items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: every one has learned


def test_exported_adapter_reproduces_the_trained_unet(fitted, tiny_model_dir: Path) -> None:
    cli, _ = fitted
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    unet.load_lora_adapter(cli.trainer.log_dir + "/adapters/final", prefix=None, weight_name=ADAPTER_WEIGHTS,
                           use_safetensors=True)
    x, t, e = torch.randn(2, 8, 16, 16), torch.tensor([3, 700]), torch.randn(2, 32)
    trained = cli.model.unet.eval()
    expected = trained(x, t, encoder_hidden_states=None, class_labels=e).sample
    torch.testing.assert_close(unet(x, t, encoder_hidden_states=None, class_labels=e).sample, expected, atol=0, rtol=0)


def test_adapter_info_records_the_run(fitted, synthetic_root: Path) -> None:
    import json

    cli, _ = fitted
    info = json.loads((Path(cli.trainer.log_dir) / "adapters/final/adapter_info.json").read_text())
    assert info["rank"] == 4 and info["alpha"] == 4.0
    assert info["global_step"] == 6
    assert set(info["target_modules"]) == {"to_q", "to_k", "to_v", "to_out.0"}
    assert info["genres"] == ["boom_bap", "chiptune", "gugak"]
    assert info["data_config"]["root"] == str(synthetic_root)
    assert info["backbone"] == "audioldm"
    unet = info["sites"]["unet"]
    assert (unet["rank"], unet["alpha"], unet["targets"]) == (4, 4.0, "attention")
    assert unet["target_modules"] == info["target_modules"]
    assert unet["trainable_parameters"] == info["trainable_parameters"] > 0


class RecordStart(Callback):
    """Records the global step and LoRA weights when training (re)starts."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.step = trainer.global_step
        self.weights = {k: v.clone() for k, v in pl_module.unet.state_dict().items() if "lora_" in k}


def test_resume_continues_steps_and_weights(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                            tiny_checkpoint_at_10: Path) -> None:
    """The checkpoint holds the trainable state only; a resume (here with a CheckpointIO the user names, which the
    CLI keeps) starts at its step with its weights. Exact equality with an uninterrupted run: tests/test_resume.py."""
    state = torch.load(tiny_checkpoint_at_10, map_location="cpu", weights_only=True)
    assert state["global_step"] == 10
    assert state["state_dict"] and all("lora_" in k for k in state["state_dict"])  # trainable state only
    model_bytes = sum(f.stat().st_size for f in tiny_model_dir.rglob("*.safetensors"))
    assert tiny_checkpoint_at_10.stat().st_size < model_bytes / 3

    # run=False parses the subcommand's config without the subcommand itself; a CheckpointIO the user names is kept
    second = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--trainer.max_steps=11", *MID_EPOCH,
                                 "--trainer.plugins=lightning.pytorch.plugins.io.TorchCheckpointIO")[1:], run=False)
    assert type(second.trainer.strategy.checkpoint_io) is TorchCheckpointIO
    recorder = RecordStart()
    second.trainer.callbacks.append(recorder)
    second.trainer.fit(second.model, datamodule=second.datamodule, ckpt_path=str(tiny_checkpoint_at_10))
    assert recorder.step == 10
    assert second.trainer.global_step == 11
    for key, value in state["state_dict"].items():
        torch.testing.assert_close(recorder.weights[key.removeprefix("unet.")], value, atol=0, rtol=0)


def test_cli_resume_loads_the_checkpoint_weights_only(
    tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    tiny_checkpoint_at_10: Path,
) -> None:
    """`lightning fit --ckpt_path ...` loads with weights_only=True even where torch's default is False (< 2.6)."""
    seen: list[object] = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    resumed = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--trainer.max_steps=11",
                                  *MID_EPOCH, f"--ckpt_path={tiny_checkpoint_at_10}"))
    assert resumed.trainer.global_step == 11
    assert seen and all(flag is True for flag in seen)


def test_bf16_mixed_precision_on_cpu(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    cli = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--trainer.max_steps=2",
                              "--trainer.precision=bf16-mixed", "--trainer.log_every_n_steps=1",
                              "--model.init_args.frozen_dtype=bfloat16"))
    assert cli.trainer.global_step == 2
    assert cli.model.vae.dtype == torch.bfloat16
    trainable = [p for p in cli.model.unet.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    losses = logged_losses(tmp_path)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
