"""The method works end to end: LoRA teaches the toy AudioLDM the held-out genre F, and what it does to A..E.

`make demo` with fixed seeds: build the toy base on synthetic genres A..E (the demo's recipe), fine-tune a LoRA on
genre F through the real LightningCLI with configs/demo.yaml (callbacks on), then score base against LoRA on the
same prompts and seeds (audioldm_demo/toy_eval.py). Unlike the random tiny model's tests, this fails on a wrong
noise schedule, swapped conditioning or a mis-scaled latent: F would not improve.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from audioldm_lora.cli import main as cli_main
from audioldm_demo.commands.build_toy_base import main as build_main
from audioldm_demo.toy_base import read_recipe
from audioldm_demo.toy_eval import POOLED, ToyEvalResult, evaluate_adapter, result_markdown
from audioldm_demo.toy_settings import ToyEvalSettings, ToyRecipe

pytestmark = pytest.mark.slow

DEMO_THREADS = 2
DEMO_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
SETTINGS = ToyEvalSettings()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ToyEvalResult, str]]:
    """The demo's three steps in a temporary folder: build the base, fit the LoRA, evaluate both.

    With the two threads `make demo` uses on the 2-core machine: float sums in another order train another toy base
    (with one thread, as `make test`'s workers run, techno's KAD came out 16% worse and the verdict failed), and
    the README's table is what `make demo` prints.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    try:
        yield _run_demo(tmp_path_factory.mktemp("demo"))
    finally:
        torch.set_num_threads(threads)


def _run_demo(root: Path) -> tuple[ToyEvalResult, str]:
    base = root / "toy-audioldm"
    assert build_main([str(base)]) == 0
    assert read_recipe(base) == ToyRecipe()
    run = root / "run"
    assert cli_main([
        "fit", "--config", DEMO_CONFIG,
        f"--model.init_args.pretrained_model={base}",
        f"--data.init_args.synthetic_dir={root / 'genres'}",
        f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}",
        "--trainer.enable_progress_bar=false",
    ]) == 0
    adapter = run / "adapters" / "final"
    assert (adapter / "pytorch_lora_weights.safetensors").is_file()
    assert (run / "evaluation").is_dir()  # the evaluation callback ran during fit
    result = evaluate_adapter(base, adapter, SETTINGS)
    return result, result_markdown(result)


def test_lora_lowers_kad_on_the_held_out_genre_by_30_percent(demo: tuple[ToyEvalResult, str]) -> None:
    result, table = demo
    f = result.rows[SETTINGS.held_out]
    assert f["kad_lora"] <= 0.7 * f["kad_base"], table
    assert f["fad_lora"] < f["fad_base"], table


def test_base_genres_scored_together_stay_within_10_percent(demo: tuple[ToyEvalResult, str]) -> None:
    result, table = demo
    pooled = result.rows[POOLED]
    assert pooled["kad_lora"] <= pooled["kad_base"] + 0.1 * abs(pooled["kad_base"]), table


@pytest.mark.parametrize("genre", SETTINGS.base_genres)
def test_each_base_genre_stays_within_10_percent(demo: tuple[ToyEvalResult, str], genre: str) -> None:
    """The adapter adds genre F without breaking A..E: paired (same prompts and seeds), KAD at most 10% worse."""
    result, table = demo
    row = result.rows[genre]
    assert row["kad_lora"] <= row["kad_base"] + 0.1 * abs(row["kad_base"]), table


def test_the_report_verdict_passes(demo: tuple[ToyEvalResult, str]) -> None:
    result, table = demo
    assert result.passed, table
