"""A checkpoint on every stop (issue 30): the last step off the checkpoint schedule, Ctrl-C, SIGTERM and SIGUSR1
each leave last.ckpt at the final optimizer step and the final adapter, and a resume continues exactly."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from tests.resume_helpers import MID_EPOCH, assert_same_training, fit, last_checkpoint


def checkpoint_step(path: Path) -> int:
    return int(torch.load(path, weights_only=False)["global_step"])


def final_adapter_step(run_dir: Path) -> int:
    (info,) = run_dir.glob("tiny/version_*/adapters/final/adapter_info.json")
    return int(json.loads(info.read_text())["global_step"])


def test_a_finished_run_continues_to_a_larger_max_steps(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                        straight_tiny_run) -> None:
    """13 steps (configs/tiny.yaml checkpoints every 10) leave last.ckpt at 13, mid-epoch; continuing that finished
    run to 20 with --ckpt_path equals 20 straight (constant schedule)."""
    fit(tiny_model_dir, synthetic_root, tmp_path / "first", 13, *MID_EPOCH)
    checkpoint = last_checkpoint(tmp_path / "first")
    assert checkpoint_step(checkpoint) == 13 and final_adapter_step(tmp_path / "first") == 13
    # Resuming a finished run trains nothing (Lightning skips on_train_end) and still writes its final adapter.
    fit(tiny_model_dir, synthetic_root, tmp_path / "again", 13, *MID_EPOCH, ckpt=checkpoint)
    assert final_adapter_step(tmp_path / "again") == 13
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 20, *MID_EPOCH, ckpt=checkpoint)
    assert_same_training(straight_tiny_run, resumed, {"unet"})


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", pytest.param("SIGUSR1", marks=pytest.mark.slow)])
def test_a_signal_stops_after_the_step_with_a_checkpoint(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                         name: str, straight_tiny_run) -> None:
    """The signal arrives as step 7 starts: the step finishes, last.ckpt and the final adapter hold step 8, the
    process's handlers are restored, and the resumed run equals the uninterrupted one."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}
    stop = ["--trainer.callbacks+=tests.probes.SendSignal", f"--trainer.callbacks.signal={name}",
            "--trainer.callbacks.at_step=7"]
    if name == "SIGTERM":  # Lightning's own handler: it ends fit by raising SIGTERMException (a SystemExit)
        with pytest.raises(SystemExit):
            fit(tiny_model_dir, synthetic_root, tmp_path / "first", 20, *MID_EPOCH, *stop)
    else:
        stopped = fit(tiny_model_dir, synthetic_root, tmp_path / "first", 20, *MID_EPOCH, *stop)
        assert stopped.trainer.global_step == 8
    assert {s: signal.getsignal(s) for s in before} == before
    checkpoint = last_checkpoint(tmp_path / "first")
    assert checkpoint_step(checkpoint) == 8 and final_adapter_step(tmp_path / "first") == 8
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 20, *MID_EPOCH, ckpt=checkpoint)
    assert_same_training(straight_tiny_run, resumed, {"unet"})
