"""The evaluation callback split over DDP ranks: the values of one process, every rank failing together, and the
checks that run before the first training step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st

from callbacks.rank_share import rank_share, share_indices
from tests.cli_helpers import CONFIG, tiny_args
from tests.resume_helpers import fit, last_checkpoint

REPO = Path(__file__).resolve().parents[1]


def config_with_clips(out: Path, clips_per_genre: int, embedder: str = "mel-stats", batch_size: int = 8,
                      num_inference_steps: int | None = None) -> Path:
    """configs/tiny.yaml with GenreEvaluation's clip count, embedder, generation batch and steps changed."""
    config = yaml.safe_load(Path(CONFIG).read_text())
    (evaluation,) = [c for c in config["trainer"]["callbacks"] if c["class_path"] == "callbacks.GenreEvaluation"]
    evaluation["init_args"].update(clips_per_genre=clips_per_genre, embedder=embedder, batch_size=batch_size,
                                   num_inference_steps=num_inference_steps)
    out.write_text(yaml.safe_dump(config))
    return out


def ddp(args: list[str]) -> subprocess.CompletedProcess:
    """``python -m audioldm_lora ARGS`` on 2 gloo processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "audioldm_lora", *args, "--trainer.accelerator=cpu",
                           "--trainer.devices=2", "--trainer.strategy=ddp"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@given(count=st.integers(0, 200), world_size=st.integers(1, 9))
def test_shares_cover_the_set_once_and_differ_by_at_most_one(count: int, world_size: int) -> None:
    shares = [list(share_indices(count, rank, world_size)) for rank in range(world_size)]
    assert sorted(index for share in shares for index in share) == list(range(count))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert rank_share(count, None) == list(range(count))  # one process: the whole set


def test_an_embedder_that_cannot_load_fails_before_the_first_step(tiny_model_dir: Path, synthetic_root: Path,
                                                                    tmp_path: Path) -> None:
    """What a new user meets with a CLAP model that is not on the machine: one message naming the setting, before
    step 1, instead of a traceback at the first validation."""
    from lightning_modules.errors import SettingError

    config = config_with_clips(tmp_path / "tiny.yaml", 2, embedder=f"clap:{tmp_path / 'nonexistent-clap'}")
    with pytest.raises(SettingError, match=r"GenreEvaluation's embedder 'clap:.*nonexistent-clap' cannot be loaded "
                                           r".*`mel-stats`, which needs no weights"):
        fit(tiny_model_dir, synthetic_root, tmp_path / "run", 10, config=config)
    assert not list((tmp_path / "run").glob("*/version_*/checkpoints/*.ckpt"))  # not one step was trained


@pytest.mark.slow
def test_two_ranks_give_one_processs_scores_and_fail_together(tiny_model_dir: Path, synthetic_root: Path,
                                                             tmp_path: Path) -> None:
    """9 evaluation clips (3 genres x 3 seeds: an uneven share) of a trained checkpoint, validated by 1 and by 2 gloo
    processes: KAD, FAD and the per-genre rows agree to 1e-6 relative; rank zero writes the report. Clips are
    generated one at a time and with one thread in both runs, so that the float summation order of batched kernels
    (which differs with the batch's size: 1.5e-6 relative on KAD with batches of 8 against 5) is not what is
    compared. Then one rank's embedder fails: both processes stop with its message, before training."""
    config = config_with_clips(tmp_path / "tiny.yaml", 3, batch_size=1, num_inference_steps=3)
    from audioldm_lora.lightning_cli import build_cli

    fit(tiny_model_dir, synthetic_root, tmp_path / "train", 2, "--trainer.limit_val_batches=0",
        "--adapter_export.every_n_steps=0", config=config)
    checkpoint = last_checkpoint(tmp_path / "train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each DDP process runs (OMP_NUM_THREADS=1): the same float summation order
    try:
        build_cli(tiny_args("validate", tiny_model_dir, synthetic_root, tmp_path / "one", f"--ckpt_path={checkpoint}",
                            config=config))
    finally:
        torch.set_num_threads(threads)
    result = ddp(tiny_args("validate", tiny_model_dir, synthetic_root, tmp_path / "two", f"--ckpt_path={checkpoint}",
                           config=config))
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(next((tmp_path / run).glob("*/version_*/evaluation/step-*.json")).read_text())
               for run in ("one", "two")]
    assert set(reports[0]["rows"]) == set(reports[1]["rows"]) == {"all", "boom_bap", "chiptune", "gugak"}
    for group, row in reports[0]["rows"].items():
        for key in ("kad_lora", "kad_base", "fad_lora", "fad_base"):
            other = reports[1]["rows"][group][key]
            assert (row[key] is None) == (other is None), (group, key)
            if row[key] is not None:
                assert row[key] == pytest.approx(other, rel=1e-6, abs=1e-9), (group, key)
    assert reports[0]["rows"]["all"]["fad_lora"] is not None
    assert reports[1]["rows"]["all"]["kad_lora"] != reports[1]["rows"]["all"]["kad_base"]  # a real adapter

    failing = ddp(tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path / "fails", "--trainer.max_steps=4",
                            "--trainer.callbacks+=tests.probes.EmbedderFailsOnRankOne", config=config))
    assert failing.returncode != 0
    assert failing.stderr.count("probe: this rank's CLAP weights are missing") >= 2, failing.stderr[-3000:]
    assert "GenreEvaluation's start checks failed on rank 1" in failing.stderr
    assert not list((tmp_path / "fails").glob("*/version_*/checkpoints/*.ckpt"))
