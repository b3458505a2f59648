"""Exact resume on every data path (folder with workers and balancing, manifest, Hugging Face dataset, latent
cache, streaming, WebDataset shards, prior preservation, an epoch's end): configs/tiny.yaml as shipped, callbacks on.

Apart from tests/test_resume.py so that `make test`'s two workers (whole files each) can run the two at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resume_helpers import MID_EPOCH, assert_same_training, checkpoint_at, fit, tiny_config


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
    overrides = [f"--set+=model.init_args.pretrained_model={model_dir}", f"--set+=data.init_args.root={data_root}"]
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
    config = tiny_config(tmp_path / "tiny.yaml", reference_dir=synthetic_root if "shards" in path else None,
                         checkpoint_every=4)
    # 8 steps against a resume from the same run's step-4 checkpoint (mid-epoch at 3 steps per epoch; an epoch's
    # end at 2), validating (and evaluating) every 4 steps: shorter than the fast-tier test, the same mechanisms.
    extra.append("--trainer.val_check_interval=4")
    straight = fit(tiny_model_dir, synthetic_root, tmp_path / "straight", 8, *extra, config=config)
    resumed = fit(tiny_model_dir, synthetic_root, tmp_path / "resumed", 8, *extra, config=config,
                  ckpt=checkpoint_at(tmp_path / "straight", 4))
    assert_same_training(straight, resumed, {"unet"})
