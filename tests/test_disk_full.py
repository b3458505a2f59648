"""A full disk (here: a file-size limit, RLIMIT_FSIZE, which fails writes as a full disk does) during a checkpoint
or adapter write leaves the previous file intact, leaves no partial file, and stops with a message naming the path
(issue 30)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import tiny_args
from tests.resume_helpers import MID_EPOCH

REPO = Path(__file__).resolve().parents[1]
LIMIT = 150_000  # bytes: a tiny run's samples and adapters fit (< 90 kB), its checkpoints (~290 kB) do not

WRITER = r"""
import sys, torch
from callbacks.checkpoint_io import AtomicCheckpointIO
from datamodules.atomic_files import DiskFullError, staged_directory
target, folder = sys.argv[1], sys.argv[2]


def checkpoint():
    AtomicCheckpointIO().save_checkpoint({"version": 1, "w": torch.ones(500_000)}, target)


def adapter():
    with staged_directory(folder, mode="files") as staging:
        (staging / "w.bin").write_bytes(b"1" * 500_000)


for name, write in (("checkpoint", checkpoint), ("adapter", adapter)):
    try:
        write()
    except DiskFullError as error:
        print(name, "refused:", error)
"""


def limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_write_refused_for_space_keeps_the_previous_file(tmp_path: Path) -> None:
    from callbacks.checkpoint_io import AtomicCheckpointIO
    from datamodules.atomic_files import staged_directory

    target, folder = tmp_path / "last.ckpt", tmp_path / "adapter"
    AtomicCheckpointIO().save_checkpoint({"version": 0, "w": torch.zeros(10)}, target)
    with staged_directory(folder, mode="files") as staging:
        (staging / "w.bin").write_bytes(b"0" * 100)
    result = subprocess.run([sys.executable, "-c", WRITER, str(target), str(folder)], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=limited(LIMIT))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"checkpoint refused: could not write {target}: File too large")
    assert "previous version of last.ckpt is unchanged" in lines[0]
    assert lines[1].startswith(f"adapter refused: could not write {folder}: File too large")
    assert torch.load(target, weights_only=True)["version"] == 0
    assert (folder / "w.bin").read_bytes() == b"0" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "last.ckpt"]  # no temporary left behind


@pytest.mark.slow
def test_a_run_that_cannot_write_its_checkpoint_stops_naming_it(tiny_model_dir: Path, synthetic_root: Path,
                                                                tmp_path: Path) -> None:
    """10 steps, then a resume to 20 under the limit: the step-20 checkpoint fails, the run stops with exit 2 and
    one message naming the file, and last.ckpt still holds step 10."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def fit(steps: int, *extra: str, preexec=None) -> subprocess.CompletedProcess:
        args = tiny_args("fit", tiny_model_dir, synthetic_root, tmp_path, f"--trainer.max_steps={steps}", *MID_EPOCH,
                         "--trainer.logger.init_args.version=0", *extra)
        return subprocess.run([sys.executable, "-m", "audioldm_lora", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600, preexec_fn=preexec)

    assert fit(10).returncode == 0
    last = tmp_path / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    result = fit(20, f"--ckpt_path={last}", preexec=limited(LIMIT))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "audioldm-lora fit: error: could not write " in result.stderr and ".ckpt: File too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert torch.load(last, weights_only=True)["global_step"] == 10
    assert not list(last.parent.glob(".*.tmp"))
