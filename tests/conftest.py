"""Shared fixtures: one tiny AudioLDM and one synthetic genre dataset per test session, built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from audioldm_demo.synthetic import write_synthetic_dataset  # noqa: E402
from audioldm_demo.tiny import build_tiny_audioldm  # noqa: E402

# The longest modules, longest first (from `--durations` of a CI run): with two workers (`make test`) the toy demo
# (several minutes) then overlaps the many short tests instead of running alone at the end, and no long module is
# left to start last on one worker while the other idles. `make test` schedules whole files (`--dist loadfile`), so a
# module fixture (the toy demo's is the whole demo) runs on one worker only. `make test` passes
# `--no-loadscope-reorder`: xdist (3.5+) otherwise hands files out by test count, largest first, and this order is
# lost (a timeline of 2026-12-06 showed the demo module starting 110 s late and the workers ending 130 s apart).
LONGEST_FIRST = ("test_toy_learns.py", "test_resume_data_paths.py", "test_resume.py", "test_sweep.py", "test_ddp.py",
                 "test_chaos.py", "test_stop_checkpoint.py", "test_evaluation_ranks.py", "test_audioldm2_training.py",
                 "test_cli_commands.py", "test_app.py", "test_disk_full.py", "test_real_music.py", "test_cli_fit.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the longest modules first (the order is otherwise kept)."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The Chromium to drive (tests/browser_helpers.py); skips, or fails under REQUIRE_BROWSER=1, when it cannot."""
    from tests.browser_helpers import chromium_problem

    problem, executable = chromium_problem()
    if problem is not None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    return executable


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AudioLDM in diffusers layout (seed 0)."""
    return build_tiny_audioldm(tmp_path_factory.mktemp("models") / "tiny-audioldm", seed=0)


@pytest.fixture(scope="session")
def tiny_audioldm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AudioLDM2 in diffusers layout (seed 0)."""
    from audioldm_demo.tiny_audioldm2 import build_tiny_audioldm2

    return build_tiny_audioldm2(tmp_path_factory.mktemp("models") / "tiny-audioldm2", seed=0)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic genres, five 2-second clips each (per genre: 3 train, 1 val, 1 test file with the default
    fractions)."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "genres", genres=["boom_bap", "gugak", "chiptune"], clips_per_genre=5
    )


@pytest.fixture(scope="session")
def straight_tiny_run(tiny_model_dir: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """20 uninterrupted steps of configs/tiny.yaml (callbacks on) with 3 steps per epoch: the reference of the
    resume and stop tests."""
    from tests.resume_helpers import MID_EPOCH, fit

    return fit(tiny_model_dir, synthetic_root, tmp_path_factory.mktemp("straight"), 20, *MID_EPOCH)


@pytest.fixture(scope="session")
def tiny_checkpoint_at_10(tiny_model_dir: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.ckpt of 10 steps of the same run as :func:`straight_tiny_run` (the middle of epoch 3)."""
    from tests.resume_helpers import MID_EPOCH, fit, last_checkpoint

    run_dir = tmp_path_factory.mktemp("first10")
    fit(tiny_model_dir, synthetic_root, run_dir, 10, *MID_EPOCH)
    return last_checkpoint(run_dir)
