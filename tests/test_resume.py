"""Exact resume: N steps, a stop, a resume from ``last.ckpt`` and M more equal N + M steps straight (issue 30).

Every run here is configs/tiny.yaml as shipped (checkpoints, A/B sampling, evaluation, adapter health and waveform
writing on, validation at step 10) pointed at the test fixtures. Batch size 3 over 9 training files gives 3 steps
per epoch, so the resume at step 10 lands in the middle of an epoch, where the loader's position matters. Every data
path: tests/test_resume_data_paths.py. The slow tier's shorter runs resume from the uninterrupted run's own
step-4 checkpoint (what a pre-empted job resumes from; written at the loop point of a stop's last.ckpt).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cli_helpers import CONFIG
from tests.resume_helpers import MID_EPOCH, assert_same_training, checkpoint_at, fit, last_checkpoint, tiny_config

SITES = {"unet": [], "unet+text_encoder": ["--model.init_args.adapters.text_encoder.targets=WqWv"]}


@pytest.mark.parametrize("sites", ["unet", pytest.param("unet+text_encoder", marks=pytest.mark.slow)])
def test_mid_epoch_resume_with_the_shipped_callbacks(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                     sites: str, straight_tiny_run, tiny_checkpoint_at_10) -> None:
    """The README's promise as a user runs it: 20 steps straight equal 10, a resume from last.ckpt, 10 more."""
    extra = [*MID_EPOCH, *SITES[sites]]
    if SITES[sites]:
        # The data-path tests' shorter run: 8 steps against a resume from its step-4 checkpoint (mid-epoch),
        # validating every 4 steps.
        extra.append("--trainer.val_check_interval=4")
        config = tiny_config(tmp_path / "tiny.yaml", checkpoint_every=4)
        straight = fit(tiny_model_dir, synthetic_root, tmp_path / "straight", 8, *extra, config=config)
        checkpoint, at, total = checkpoint_at(tmp_path / "straight", 4), 4, 8
    else:
        straight, checkpoint, at, total, config = straight_tiny_run, tiny_checkpoint_at_10, 10, 20, CONFIG
    assert torch.load(checkpoint, weights_only=False)["global_step"] == at
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", total, *extra, ckpt=checkpoint, config=config)
    assert_same_training(straight, resumed, {"unet", "text_encoder"} if SITES[sites] else {"unet"})


def test_a_resumed_run_resumes_again(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                     straight_tiny_run, tiny_checkpoint_at_10: Path) -> None:
    """A resume of a resumed run: 10 steps, resume to 13 (mid-epoch), resume again to 20, equal 20 straight."""
    fit(tiny_model_dir, synthetic_root, tmp_path / "second", 13, *MID_EPOCH, ckpt=tiny_checkpoint_at_10)
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "third", 20, *MID_EPOCH,
                  ckpt=last_checkpoint(tmp_path / "second"))
    assert_same_training(straight_tiny_run, resumed, {"unet"})


def test_a_checkpoint_of_other_settings_is_refused(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                   tiny_checkpoint_at_10: Path, capsys: pytest.CaptureFixture) -> None:
    """Another rank, targets, data source or batch size: `lightning fit --ckpt_path` exits 2 naming every
    difference, before a step is trained; another learning rate resumes with a warning."""
    from audioldm_lora.lightning_cli import run_cli
    from tests.cli_helpers import tiny_args

    changed = ["--model.init_args.adapters.unet.rank=8", "--model.init_args.adapters.unet.targets=paper",
               "--data.init_args.batch_size=2", "--data.init_args.root=null",
               f"--data.init_args.manifest={synthetic_root}/manifest.csv"]
    args = tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "other", "--trainer.max_steps=12",
                     *MID_EPOCH, *changed, f"--ckpt_path={tiny_checkpoint_at_10}")
    assert run_cli(args) == 2
    message = capsys.readouterr().err
    for setting in ("model.init_args.adapters.unet.rank: 4 in the checkpoint, 8 now", "model.init_args.adapters.unet.targets",
                    "data.init_args.batch_size: 3 in the checkpoint, 2 now", "data.init_args.root",
                    "data.init_args.manifest"):
        assert setting in message
    assert "without --ckpt_path" in message and "Traceback" not in message
    assert not list((tmp_path / "other").rglob("*.ckpt"))

    with pytest.warns(UserWarning, match="learning_rate: 0.001 in the checkpoint, 0.0005 now"):
        resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "lr", 11, *MID_EPOCH,
                      "--model.init_args.learning_rate=5e-4", ckpt=tiny_checkpoint_at_10)
    assert resumed.trainer.global_step == 11
