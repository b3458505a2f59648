"""A run prints what its user needs: no product tips, loading bars, library deprecations or "Epoch 0/-2 v_num"."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from audioldm_lora.lightning_cli import build_cli
from callbacks.progress_bar import StepProgressBar
from tests.cli_helpers import tiny_args

NOISE = ("💡 Tip", "Loading weights", "LeafSpec", "v_num", "/-2", "anonymous setting")


def test_a_tiny_fit_prints_no_noise(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    args = [a for a in tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, "--trainer.max_steps=2",
                                 "--trainer.limit_val_batches=0") if a != "--trainer.enable_progress_bar=false"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = build_cli(args)
    printed = capsys.readouterr()
    text = printed.out + printed.err + caplog.text + "\n".join(str(w.message) for w in caught)
    assert cli.trainer.global_step == 2 and "Data: " in caplog.text  # the run did run, and said what it read
    assert [noise for noise in NOISE if noise in text] == []
    bars = [callback for callback in cli.trainer.callbacks if isinstance(callback, StepProgressBar)]
    assert len(bars) == 1 and bars[0]._get_train_description(0).strip() == "Epoch 0"
