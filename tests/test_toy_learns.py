"""The method works end to end on real music: LoRA teaches the toy AudioLDM a tradition it never heard.

`make demo`'s four steps as the Makefile runs them (one thread, fixed seeds): build the real-music catalogue, train
the toy base on five of its traditions, fine-tune a LoRA on the held-out sixth (Han Chinese folk song on koto)
through the real LightningCLI with configs/demo.yaml (callbacks on), then `toy-report` scores base against LoRA on
the same prompts and seeds against clips of other pieces. Unlike the random tiny model's tests, this fails on a
wrong noise schedule, swapped conditioning or a mis-scaled latent: the held-out tradition would not improve.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from audioldm_demo.toy_eval import POOLED, significantly_worse
from audioldm_demo.toy_settings import ToyEvalSettings
from audioldm_lora.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
DEMO_THREADS = 1  # as `make demo` runs (Makefile): one thread trains the same toy base on any machine
TARGETS = ToyEvalSettings()  # the targets toy-report applies: F 30% lower, none of A..E significantly 10% worse


def demo_commands(catalogue: str, base: str, run: str) -> list[list[str]]:
    """`make demo`'s steps with its folders named: the Makefile's demo target must run exactly these."""
    return [
        ["audioldm-lora", "build-real-music", catalogue, "--clips-per-genre", "64", "--reference-clips", "64",
         "--duration", "1.28"],
        ["audioldm-lora", "build-toy-base", base, "--catalogue", catalogue, "--recipe.unet_steps", "1400"],
        ["lightning", "fit", "--config", "configs/demo.yaml", f"--model.init_args.pretrained_model={base}",
         f"--data.init_args.manifest={catalogue}/manifest.csv"],
        ["audioldm-lora", "toy-report", "--base", base, "--adapter", f"{run}/adapters/final"],
    ]


def makefile_recipe(target: str) -> list[list[str]]:
    """A Makefile target's commands, continuation lines joined, ``$(DEMO_ENV)`` and ``$(BIN)/`` dropped."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    block = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert block, f"no {target} target in the Makefile"
    lines = [line.replace("$(DEMO_ENV)", "").replace("$(BIN)/", "") for line in block.group(1).splitlines()]
    return [shlex.split(line) for line in lines]


def test_make_demo_runs_the_steps_this_test_runs() -> None:
    """What CI checks below is what a user's `make demo` runs (its folders are the Makefile's variables)."""
    assert makefile_recipe("demo") == demo_commands("$(REAL_MUSIC)", "$(TOY_BASE)", "runs/demo")
    config = (ROOT / "configs" / "demo.yaml").read_text()
    assert "default_root_dir: runs/demo\n" in config


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo's steps in a temporary folder; its toy report's report.json (with the markdown table as
    ``"table"``), plus the run folder as ``"run"``.

    With the one thread `make demo` uses: float sums in another order train another toy base, and the README's
    table is what `make demo` prints. One thread also keeps this module from competing with the other test worker
    for the two cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    try:
        yield _run_demo(tmp_path_factory.mktemp("demo"))
    finally:
        torch.set_num_threads(threads)


def _run_demo(root: Path) -> dict[str, Any]:
    run = root / "run"
    *steps, report = demo_commands(str(root / "real-music"), str(root / "toy-audioldm-real"), str(run))
    # The fit writes into the temporary folder instead of runs/demo; everything else is the Makefile's.
    steps[-1] = [*steps[-1], f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
                 "--trainer.enable_progress_bar=false"]
    for command in [*steps, report]:
        assert cli_main(command[1:]) == 0, command
    assert (run / "evaluation").is_dir()  # the evaluation callback ran during fit
    out = run / "toy-report"
    record = json.loads((out / "report.json").read_text())
    return {**record, "table": (out / "report.md").read_text(), "run": run}


@pytest.mark.slow
def test_lora_lowers_kad_on_the_held_out_tradition_by_30_percent_significantly(demo: dict[str, Any]) -> None:
    held_out = demo["settings"]["held_out"]
    assert held_out == "han_folk_song", demo["table"]
    row = demo["rows"][held_out]
    assert row["kad_lora"] <= (1 - TARGETS.f_improvement) * row["kad_base"], demo["table"]
    assert row["kad_delta_significant"] and row["kad_delta_ci"][1] < 0, demo["table"]
    assert not (row["fad_delta"] > 0 and row["fad_delta_significant"]), demo["table"]  # FAD not worse either


@pytest.mark.slow
def test_the_five_traditions_scored_together_are_not_significantly_worse(demo: dict[str, Any]) -> None:
    assert not significantly_worse(demo["rows"][POOLED], TARGETS.max_regression), demo["table"]


@pytest.mark.slow
@pytest.mark.parametrize("tradition", ["baroque_chorale", "renaissance_polyphony", "madrigal", "irish_fiddle_tune",
                                       "german_folk_song"])
def test_no_trained_tradition_is_significantly_more_than_10_percent_worse(demo: dict[str, Any],
                                                                          tradition: str) -> None:
    """The adapter adds the koto songs without breaking the five: paired (same prompts and seeds), no KAD rise of
    more than 10% that the paired interval shows to be real."""
    assert tradition in demo["settings"]["base_genres"], demo["table"]
    row = demo["rows"][tradition]
    assert row["kad_delta_ci"] is not None, demo["table"]
    assert not significantly_worse(row, TARGETS.max_regression), demo["table"]


@pytest.mark.slow
def test_the_report_verdict_passes_and_names_the_real_music_world(demo: dict[str, Any]) -> None:
    assert demo["passed"] and not demo["failures"], demo["table"]
    assert "Verdict: PASS" in demo["table"]
    assert demo["settings"]["catalogue"].endswith("real-music")
    wavs = demo["run"] / "toy-report" / "wavs"
    assert len(list((wavs / "lora").glob("han_folk_song_seed*.wav"))) == demo["settings"]["clips_per_genre"]
