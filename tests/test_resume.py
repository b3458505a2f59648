"""Resume equivalence: 2N steps straight equal N steps, a checkpoint, a resume and N more (issue: reliability)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audioldm_lora.lightning_cli import build_cli
from tests.cli_helpers import tiny_args


SITES = {"unet": [], "unet+text_encoder": ["--model.init_args.text_encoder_lora_targets=WqWv"]}


def lora_state(cli) -> dict[str, torch.Tensor]:
    """Every site's LoRA weights."""
    return {k: v.detach().clone() for k, v in cli.model.state_dict().items() if "lora_" in k}


@pytest.mark.parametrize("sites", sorted(SITES))
def test_resumed_training_equals_uninterrupted_training(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                        sites: str) -> None:
    # 9 training files at batch 4 (drop_last): 2 steps per epoch, so N = 2 ends an epoch.
    common = ["--trainer.val_check_interval=null", "--trainer.check_val_every_n_epoch=1",
              "--model.init_args.caption_dropout=0.5", "--model.init_args.noise_offset=0.1", *SITES[sites]]
    straight = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "a", "--trainer.max_steps=6", *common))

    first = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "b", "--trainer.max_steps=2", *common))
    checkpoint = tmp_path / "step2.ckpt"
    first.trainer.save_checkpoint(checkpoint)
    second = build_cli(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "c", "--trainer.max_steps=6",
                                 *common)[1:], run=False)
    second.trainer.fit(second.model, datamodule=second.datamodule, ckpt_path=str(checkpoint))

    assert straight.trainer.global_step == second.trainer.global_step == 6
    expected, resumed = lora_state(straight), lora_state(second)
    assert expected.keys() == resumed.keys()
    assert any(v.abs().sum() > 0 for k, v in expected.items() if "lora_B" in k)
    assert {k.split(".")[0] for k in expected} == {"unet", "text_encoder"} if SITES[sites] else {"unet"}
    for key in expected:  # deterministic CPU kernels: bit-identical
        torch.testing.assert_close(resumed[key], expected[key], atol=0, rtol=0, msg=key)
    straight_opt = straight.trainer.optimizers[0].state_dict()["state"]
    resumed_opt = second.trainer.optimizers[0].state_dict()["state"]
    for index in straight_opt:
        torch.testing.assert_close(resumed_opt[index]["exp_avg"], straight_opt[index]["exp_avg"], atol=0, rtol=0)
