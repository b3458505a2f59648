"""The other LightningCLI subcommands, the `lightning` and `audioldm-lora` entry points (the third, `python -m
audioldm_lora`, starts every DDP and chaos run), --print_config, and bad-input messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from audioldm_lora.lightning_cli import build_cli
from datamodules.manifest import DataSourceError
from tests.cli_helpers import tiny_args

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def test_print_config_of_the_real_recipe_works_offline() -> None:
    """Through the `lightning` command. The other two entry points run the same function: `audioldm-lora` below,
    `python -m audioldm_lora` in every DDP, chaos and stop test (each start costs seconds of imports)."""
    result = run(str(BIN / "lightning"), "fit", "--config", "configs/genre.yaml", "--print_config")
    assert result.returncode == 0, result.stderr
    assert "pretrained_model: cvssp/audioldm-s-full-v2" in result.stdout
    assert "class_path: lightning_modules.AudioLDMLoRA" in result.stdout
    assert "targets: paper" in result.stdout and "adapters:" in result.stdout
    assert "every_n_steps: 1000" in result.stdout


def test_misspelt_config_key_is_named() -> None:
    """Through the `audioldm-lora` console script (the message itself: tests/test_cli_errors.py)."""
    result = run(str(BIN / "audioldm-lora"), "fit", "--config", "configs/genre.yaml", "--model.init_args.caption_dropuot=0.2",
                 "--print_config")
    assert result.returncode != 0
    assert "caption_dropuot" in result.stderr


def test_validate_test_and_predict(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                   tiny_checkpoint_at_10: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = build_cli(tiny_args("validate", tiny_model_dir, synthetic_root, tmp_path, "--ckpt_path=base"))
    assert cli.trainer.callback_metrics["val/loss"].isfinite()
    assert "lightning validate: the base model (--ckpt_path base" in capsys.readouterr().err
    ckpt = f"--ckpt_path={tiny_checkpoint_at_10}"
    cli = build_cli(tiny_args("validate", tiny_model_dir, synthetic_root, tmp_path, ckpt))
    val_loss = float(cli.trainer.callback_metrics["val/loss"])
    cli = build_cli(tiny_args("test", tiny_model_dir, synthetic_root, tmp_path, ckpt))
    test_loss = float(cli.trainer.callback_metrics["test/loss"])
    assert f"lightning test: the adapter of checkpoint {tiny_checkpoint_at_10}" in capsys.readouterr().err
    assert test_loss != val_loss  # the held-out test files, not a copy of validation (they were equal before)
    cli = build_cli(tiny_args("predict", tiny_model_dir, synthetic_root, tmp_path, ckpt,
                        "--model.init_args.num_inference_steps=3",
                        "--data.init_args.predict_prompts=[boom bap music, gugak music]",
                        "--data.init_args.predict_seeds_per_prompt=2", "--data.init_args.predict_seed=10"))
    out = Path(cli.trainer.log_dir) / "predictions"
    wavs = sorted(out.glob("*.wav"))
    assert [w.name for w in wavs] == [
        "00000_boom_bap_music_seed10.wav", "00001_boom_bap_music_seed11.wav",
        "00002_gugak_music_seed12.wav", "00003_gugak_music_seed13.wav",
    ]
    info = sf.info(str(wavs[0]))
    assert info.samplerate == 16000 and info.frames == 10240
    sidecar = json.loads(wavs[2].with_suffix(".json").read_text())
    assert sidecar["prompt"] == "gugak music" and sidecar["seed"] == 12 and sidecar["num_inference_steps"] == 3
    assert sidecar["checkpoint"] == str(tiny_checkpoint_at_10)  # which weights made the clip


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("--model.init_args.adapters.unet.rank=0", ValueError, "rank must be a positive integer"),
        ("--model.init_args.adapters.unet.targets=[to_qq]", ValueError, r"\['to_qq'\] match no module"),
        ("--model.init_args.caption_dropout=1.0", ValueError, "caption_dropout"),
    ],
)
def test_bad_model_settings_fail_before_training(tiny_model_dir, synthetic_root, tmp_path, override, error, message) -> None:
    with pytest.raises(error, match=message):
        build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, override))
    assert not list(tmp_path.rglob("*.ckpt"))


def test_base_directory_missing_a_component(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(ValueError, match="lacks the component folder.*unet"):
        build_cli(tiny_args("fit", broken, synthetic_root, tmp_path))


def test_data_root_without_audio(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty" / "jazz").mkdir(parents=True)
    with pytest.raises(DataSourceError, match=r"No audio files .* found under .*empty"):
        build_cli(tiny_args("fit", tiny_model_dir, tmp_path / "empty", tmp_path))
