"""Chaos: a tiny fit killed with SIGKILL at random moments and inside checkpoint writes, resumed from last.ckpt
each time, ends with the adapter of an uninterrupted run, bit for bit (issue 30; figures in docs/reliability.md).

Like a requeued cluster job, every attempt runs the same command in the same run folder (one logger version),
adding ``--ckpt_path last.ckpt`` once a checkpoint exists. The checkpoint schedule is configs/tiny.yaml's (every 10
steps, and the final step), so most kills throw away steps that the next attempt trains again.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lightning_modules.lora import ADAPTER_WEIGHTS
from tests.cli_helpers import tiny_args
from tests.resume_helpers import MID_EPOCH

REPO = Path(__file__).resolve().parents[1]
# When each attempt is killed: at a random moment, inside a checkpoint write, or shortly after one completed.
PLAN = ("anywhere", "inside a write", "after a write", "inside a write", "anywhere", "after a write")


def command(model_dir: Path, data_root: Path, run_dir: Path, *extra: str) -> list[str]:
    args = tiny_args("fit", model_dir, data_root, run_dir, "--trainer.max_steps=20", *MID_EPOCH,
                     "--trainer.logger.init_args.version=0", *extra)
    return [sys.executable, "-m", "audioldm_lora", *args]


def wait_before_the_next_write(process: subprocess.Popen, seconds: float, marker: Path) -> None:
    """Wait up to ``seconds``, less if the process ends or a checkpoint write starts (``marker`` appears). A kill then
    lands before the next write completes, so an attempt with steps left is always killed. A fixed sleep let a fast
    machine finish the run first: an unloaded CI run resumed at step 10 and completed within the sleep (4 kills)."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline and not marker.exists():
        time.sleep(0.005)


def final_adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "tiny" / "version_0" / "adapters" / "final" / ADAPTER_WEIGHTS)


@pytest.mark.slow
def test_kill_9_at_random_moments_and_resume_gives_the_uninterrupted_adapter(
    tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    straight = subprocess.run(command(tiny_model_dir, synthetic_root, tmp_path / "straight"), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900)
    assert straight.returncode == 0, straight.stderr[-3000:]

    rng = random.Random(30)
    run_dir = tmp_path / "chaos"
    checkpoints = run_dir / "tiny" / "version_0" / "checkpoints"
    last, marker = checkpoints / "last.ckpt", checkpoints / ".writing"
    kills = during_writes = resumed = 0
    for moment in PLAN:
        resume = [f"--ckpt_path={last}"] if last.exists() else []
        resumed += bool(resume)
        before = torch.load(last, map_location="cpu", weights_only=True)["global_step"] if last.exists() else None
        written_before = last.stat().st_mtime_ns if last.exists() else None
        process = subprocess.Popen(
            command(tiny_model_dir, synthetic_root, run_dir, "--trainer.plugins=tests.probes.SlowCheckpointIO",
                    *resume),
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if moment == "anywhere":  # start-up, a training step, sampling, evaluation, the start of a write
            wait_before_the_next_write(process, rng.uniform(4.0, 20.0), marker)
        else:  # wait for a checkpoint write: its bytes are written, not yet synced and renamed into place
            while process.poll() is None and not marker.exists():
                time.sleep(0.005)
            if moment == "inside a write":
                time.sleep(rng.uniform(0.05, 0.3))
                during_writes += process.poll() is None and marker.exists()
            else:  # "after a write": last.ckpt is replaced by a new one, and the next steps run on from it
                while process.poll() is None and (marker.exists() or not last.exists()
                                                  or last.stat().st_mtime_ns == written_before):
                    time.sleep(0.005)
                wait_before_the_next_write(process, rng.uniform(0.0, 2.0), marker)
        if process.poll() is None:
            process.kill()
            kills += 1
        _, stderr = process.communicate(timeout=120)
        if last.exists():  # whatever the moment, last.ckpt is a whole checkpoint that loads
            step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
            if moment == "inside a write" and before is not None:
                assert step == before, stderr[-2000:]  # the write that was killed left the previous one
    final = subprocess.run(command(tiny_model_dir, synthetic_root, run_dir, f"--ckpt_path={checkpoints / 'last.ckpt'}"),
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]

    print(f"chaos: {kills} kills, {during_writes} inside checkpoint writes, {resumed} resumed attempts")
    assert kills >= 5 and during_writes >= 2 and resumed >= 2, (kills, during_writes, resumed)
    expected, actual = final_adapter(tmp_path / "straight"), final_adapter(run_dir)
    assert expected.keys() == actual.keys() and expected
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0, msg=key)
