"""Exact resume: N steps, a stop, a resume from ``last.ckpt`` and M more equal N + M steps straight (issue 30).

Every run here is configs/tiny.yaml as shipped (checkpoints, A/B sampling, evaluation, adapter health and waveform
writing on, validation at step 10) pointed at the test fixtures. Batch size 3 over 9 training files gives 3 steps
per epoch, so the resume at step 10 lands in the middle of an epoch, where the loader's position matters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cli_helpers import CONFIG
from tests.resume_helpers import MID_EPOCH, assert_same_training, config_with_reference_dir, fit, last_checkpoint

SITES = {"unet": [], "unet+text_encoder": ["--model.init_args.adapters.text_encoder.targets=WqWv"]}


@pytest.mark.parametrize("sites", ["unet", pytest.param("unet+text_encoder", marks=pytest.mark.slow)])
def test_mid_epoch_resume_with_the_shipped_callbacks(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                                     sites: str, straight_tiny_run, tiny_checkpoint_at_10) -> None:
    """The README's promise as a user runs it: 20 steps straight equal 10, a resume from last.ckpt, 10 more."""
    extra = [*MID_EPOCH, *SITES[sites]]
    if SITES[sites]:
        straight = fit(tiny_model_dir, synthetic_root, tmp_path / "straight", 20, *extra)
        fit(tiny_model_dir, synthetic_root, tmp_path / "first", 10, *extra)
        checkpoint = last_checkpoint(tmp_path / "first")
    else:
        straight, checkpoint = straight_tiny_run, tiny_checkpoint_at_10
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 10
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 20, *extra, ckpt=checkpoint)
    assert_same_training(straight, resumed, {"unet", "text_encoder"} if SITES[sites] else {"unet"})


def test_a_resumed_run_resumes_again(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path,
                                     straight_tiny_run, tiny_checkpoint_at_10: Path) -> None:
    """A resume of a resumed run: 10 steps, resume to 13 (mid-epoch), resume again to 20, equal 20 straight."""
    fit(tiny_model_dir, synthetic_root, tmp_path / "second", 13, *MID_EPOCH, ckpt=tiny_checkpoint_at_10)
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "third", 20, *MID_EPOCH,
                  ckpt=last_checkpoint(tmp_path / "second"))
    assert_same_training(straight_tiny_run, resumed, {"unet"})


def hugging_face(model_dir: Path, data_root: Path, tmp_path: Path) -> list[str]:
    """A saved Hugging Face dataset with 9 training rows (3 steps per epoch at batch 3)."""
    from tests.data_helpers import write_hf_dataset

    saved = write_hf_dataset(tmp_path / "hf", train=9, validation=3)
    return ["--data.init_args.root=null", f"--data.init_args.hf_dataset={saved}"]


def latent_cache(model_dir: Path, data_root: Path, tmp_path: Path) -> list[str]:
    """A latent cache of the folder with 2 crops per file, built by `audioldm-lora cache`; crops are picked at
    random per sample."""
    from audioldm_lora.commands.cache import main
    from tests.cli_helpers import CONFIG

    cache = tmp_path / "cache"
    overrides = [f"--set+=model.init_args.pretrained_model={model_dir}", f"--set+=data.init_args.root={data_root}",
                 "--set+=data.init_args.duration=0.64"]
    assert main(["--config", CONFIG, *overrides, "--cache-dir", str(cache), "--crops-per-file", "2"]) == 0
    return [f"--data.init_args.latent_cache={cache}", "--data.init_args.cache_crops_per_file=2"]


def shards(model_dir: Path, data_root: Path, tmp_path: Path) -> list[str]:
    """Three WebDataset shards of 4 clips; the validation split is chosen by key."""
    from tests.data_helpers import write_shards

    write_shards(tmp_path / "shards", shards=3, per_shard=4)
    return ["--data.init_args.root=null", f"--data.init_args.shards={tmp_path}/shards/train-{{000..002}}.tar"]


DATA_PATHS = {
    "folder, 2 workers, balanced": lambda *_: ["--data.init_args.num_workers=2", "--data.init_args.balance_genres=true"],
    "epoch boundary": lambda *_: ["--data.init_args.batch_size=4"],  # 2 steps per epoch: step 4 ends epoch 1
    "manifest": lambda _, root, __: ["--data.init_args.root=null", f"--data.init_args.manifest={root}/manifest.csv"],
    "hugging face": hugging_face,
    "latent cache": latent_cache,
    "streaming folder": lambda *_: ["--data.init_args.streaming=true"],
    "streaming folder, 2 workers": lambda *_: ["--data.init_args.streaming=true", "--data.init_args.num_workers=2"],
    "streaming at an epoch boundary": lambda *_: ["--data.init_args.streaming=true", "--data.init_args.batch_size=4"],
    "webdataset shards, 2 workers": lambda *a: [*shards(*a), "--data.init_args.num_workers=2"],
    # Not a data path: prior preservation (configs/demo.yaml) adds the base model's samples to every step.
    "folder with prior preservation": lambda *_: ["--model.init_args.prior_prompts=[chiptune music]",
                                                  "--model.init_args.prior_samples_per_prompt=2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(DATA_PATHS))
def test_resume_on_every_data_path(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path, path: str) -> None:
    """The same equality on every data path, with workers and genre balancing, and at an epoch's end."""
    extra = [*MID_EPOCH, *DATA_PATHS[path](tiny_model_dir, synthetic_root, tmp_path)]
    # Shards have no indexed validation clips to evaluate against: their users point evaluation at a folder.
    config = config_with_reference_dir(synthetic_root, tmp_path / "tiny.yaml") if "shards" in path else CONFIG
    # 8 steps against 4 + 4 (mid-epoch at 3 steps per epoch; an epoch's end at 2), validating (and evaluating)
    # every 4 steps: shorter than the fast-tier test, the same mechanisms.
    extra.append("--trainer.val_check_interval=4")
    straight = fit(tiny_model_dir, synthetic_root, tmp_path / "straight", 8, *extra, config=config)
    fit(tiny_model_dir, synthetic_root, tmp_path / "first", 4, *extra, config=config)
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 8, *extra, config=config,
                  ckpt=last_checkpoint(tmp_path / "first"))
    assert_same_training(straight, resumed, {"unet"})


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
