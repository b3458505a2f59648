"""Exact resume: N steps, a stop, a resume from ``last.ckpt`` and M more equal N + M steps straight (issue 30).

Every run here is configs/tiny.yaml as shipped (checkpoints, A/B sampling, evaluation, adapter health and waveform
writing on, validation at step 10) pointed at the test fixtures. Batch size 3 over 9 training files gives 3 steps
per epoch, so the resume at step 10 lands in the middle of an epoch, where the loader's position matters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audioldm_lora.lightning_cli import build_cli
from tests.cli_helpers import tiny_args

SITES = {"unet": [], "unet+text_encoder": ["--model.init_args.text_encoder_lora_targets=WqWv"]}
MID_EPOCH = ["--data.init_args.batch_size=3", "--model.init_args.caption_dropout=0.5",
             "--model.init_args.noise_offset=0.1"]


def fit(model_dir: Path, data_root: Path, run_dir: Path, max_steps: int, *extra: str, ckpt: Path | None = None):
    """One ``lightning fit`` with the shipped tiny config; ``ckpt`` resumes."""
    resume = [f"--ckpt_path={ckpt}"] if ckpt is not None else []
    return build_cli(tiny_args("fit", model_dir, data_root, run_dir, f"--trainer.max_steps={max_steps}", *extra,
                               *resume))


def last_checkpoint(run_dir: Path) -> Path:
    """The run's ``last.ckpt``."""
    (path,) = run_dir.glob("tiny/version_*/checkpoints/last.ckpt")
    return path


def lora_state(cli) -> dict[str, torch.Tensor]:
    """Every site's LoRA weights."""
    return {k: v.detach().clone() for k, v in cli.model.state_dict().items() if "lora_" in k}


def assert_same_training(straight, resumed, sites: set[str]) -> None:
    """LoRA weights and AdamW moments bit-identical (deterministic CPU kernels), after real training."""
    assert straight.trainer.global_step == resumed.trainer.global_step
    expected, actual = lora_state(straight), lora_state(resumed)
    assert expected.keys() == actual.keys()
    assert {key.split(".")[0] for key in expected} == sites
    assert any(v.abs().sum() > 0 for k, v in expected.items() if "lora_B" in k)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0, msg=key)
    straight_opt = straight.trainer.optimizers[0].state_dict()["state"]
    resumed_opt = resumed.trainer.optimizers[0].state_dict()["state"]
    assert straight_opt.keys() == resumed_opt.keys() and straight_opt
    for index in straight_opt:
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(resumed_opt[index][moment], straight_opt[index][moment], atol=0, rtol=0)


@pytest.mark.parametrize("sites", sorted(SITES))
def test_mid_epoch_resume_with_the_shipped_callbacks(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                     sites: str) -> None:
    """The README's promise as a user runs it: 20 steps straight equal 10, a resume from last.ckpt, 10 more."""
    extra = [*MID_EPOCH, *SITES[sites]]
    straight = fit(tiny_model_dir, synthetic_root, tmp_path / "straight", 20, *extra)
    fit(tiny_model_dir, synthetic_root, tmp_path / "first", 10, *extra)
    checkpoint = last_checkpoint(tmp_path / "first")
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 10
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 20, *extra, ckpt=checkpoint)
    assert_same_training(straight, resumed, {"unet", "text_encoder"} if SITES[sites] else {"unet"})


DATA_PATHS = {
    "folder, 2 workers, balanced": ["--data.init_args.num_workers=2", "--data.init_args.balance_genres=true"],
    "epoch boundary": ["--data.init_args.batch_size=4"],  # 2 steps per epoch: step 10 ends epoch 4
    "manifest": ["--data.init_args.root=null", "--data.init_args.manifest={root}/manifest.csv"],
}


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(DATA_PATHS))
def test_resume_on_every_data_path(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path, path: str) -> None:
    """The same equality on the other map-style paths, with workers and genre balancing, and at an epoch's end."""
    extra = [*MID_EPOCH, *(arg.format(root=synthetic_root) for arg in DATA_PATHS[path])]
    straight = fit(tiny_model_dir, synthetic_root, tmp_path / "straight", 20, *extra)
    fit(tiny_model_dir, synthetic_root, tmp_path / "first", 10, *extra)
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 20, *extra,
                  ckpt=last_checkpoint(tmp_path / "first"))
    assert_same_training(straight, resumed, {"unet"})
