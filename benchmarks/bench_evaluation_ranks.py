"""Benchmark: one validation's evaluation (GenreEvaluation) in 1 process against 2 DDP processes on the same cores.

    python benchmarks/bench_evaluation_ranks.py [--clips-per-genre 2] [--repeats 3] [--no-doc]

configs/tiny.yaml's settings on the tiny AudioLDM and the six synthetic genres (built into ``.cache/bench/``): a
2-step fit writes a checkpoint, then ``lightning validate`` runs it with one process (``OMP_NUM_THREADS`` = all
cores) and with two gloo processes (one thread each), GenreEvaluation replaced by :class:`TimedGenreEvaluation`,
which times its ``evaluate`` (generation, embedding, gathering and scoring of the LoRA and base arms: what a
validation adds) and writes the seconds beside its report; the two kinds take turns ``--repeats`` times and the
fastest of each is reported. The two reports' KAD and FAD are compared. Rewrites the
``bench_evaluation_ranks`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from lightning import LightningModule, Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, update_section  # noqa: E402
from callbacks.evaluation import GenreEvaluation  # noqa: E402
from callbacks.run_dir import run_directory  # noqa: E402

WORK = ROOT / ".cache" / "bench" / "evaluation-ranks"


class TimedGenreEvaluation(GenreEvaluation):
    """GenreEvaluation that writes the seconds each ``evaluate`` took to ``<run dir>/evaluation/seconds.json``."""

    def evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str) -> dict[str, Any]:
        start = time.perf_counter()
        report = super().evaluate(trainer, pl_module, split)
        seconds = time.perf_counter() - start
        folder = run_directory(trainer) / "evaluation"  # on every rank: trainer.log_dir broadcasts under DDP
        if trainer.is_global_zero:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "seconds.json").write_text(json.dumps({"seconds": seconds, "world_size": trainer.world_size}))
        return report


def bench_config(clips_per_genre: int) -> Path:
    """configs/tiny.yaml with the timed evaluation and ``clips_per_genre``."""
    config = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    (evaluation,) = [c for c in config["trainer"]["callbacks"] if c["class_path"] == "callbacks.GenreEvaluation"]
    evaluation["class_path"] = "benchmarks.bench_evaluation_ranks.TimedGenreEvaluation"
    evaluation["init_args"]["clips_per_genre"] = clips_per_genre
    path = WORK / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def command(subcommand: str, config: Path, run_name: str, *extra: str) -> list[str]:
    """``lightning SUBCOMMAND`` with the bench config, its model and data under :data:`WORK`, writing to
    ``WORK/run_name``."""
    return [sys.executable, "-m", "audioldm_lora", subcommand, "--config", str(config),
            f"--model.init_args.pretrained_model={WORK / 'tiny-audioldm'}",
            f"--data.init_args.synthetic_dir={WORK / 'synthetic-genres'}",
            f"--trainer.default_root_dir={WORK / run_name}", f"--trainer.logger.init_args.save_dir={WORK / run_name}",
            "--trainer.enable_progress_bar=false", *extra]


def run(args: list[str], threads: int) -> None:
    """Run a command with ``threads`` threads per process, offline."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def result(run_name: str) -> tuple[float, dict]:
    """(seconds of the evaluation, its report) of a run."""
    folder = next((WORK / run_name).glob("*/version_*/evaluation"))
    report = json.loads(next(p for p in sorted(folder.glob("step-*.json"))).read_text())
    return json.loads((folder / "seconds.json").read_text())["seconds"], report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips-per-genre", type=int, default=2, help="configs/tiny.yaml's is 2")
    parser.add_argument("--repeats", type=int, default=3, help="validations of each kind; the fastest is reported")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    for stale in WORK.glob("*"):
        if stale.name in ("train",) or stale.name.startswith(("one", "two")):
            shutil.rmtree(stale, ignore_errors=True)
    config = bench_config(args.clips_per_genre)
    cores = os.cpu_count() or 1
    started = machine()
    run(command("fit", config, "train", "--trainer.max_steps=2", "--trainer.limit_val_batches=0",
                "--adapter_export.every_n_steps=0"), cores)
    checkpoint = next((WORK / "train").glob("*/version_*/checkpoints/last.ckpt"))
    per_rank = max(1, cores // 2)
    timings: dict[str, list[float]] = {"one": [], "one-thin": [], "two": []}
    for repeat in range(args.repeats):  # the kinds take turns, so a busy moment of the machine hits all alike
        run(command("validate", config, f"one-{repeat}", f"--ckpt_path={checkpoint}"), cores)
        run(command("validate", config, f"one-thin-{repeat}", f"--ckpt_path={checkpoint}"), per_rank)
        run(command("validate", config, f"two-{repeat}", f"--ckpt_path={checkpoint}", "--trainer.accelerator=cpu",
                    "--trainer.devices=2", "--trainer.strategy=ddp"), per_rank)
        for name in timings:
            timings[name].append(result(f"{name}-{repeat}")[0])
    (_, report_one), (_, report_two) = result("one-0"), result("two-0")
    one, thin, two = min(timings["one"]), min(timings["one-thin"]), min(timings["two"])
    differences = [abs(report_one["rows"][group][key] - report_two["rows"][group][key])
                   / max(abs(report_one["rows"][group][key]), 1e-12)
                   for group in report_one["rows"] for key in ("kad_lora", "kad_base", "fad_lora", "fad_base")
                   if report_one["rows"][group][key] is not None]
    body = "\n".join([
        "| processes | threads each | seconds per evaluation (fastest) | 2 processes take |",
        "|---:|---:|---:|---:|",
        f"| 1 | {cores} (the whole machine) | {one:.2f} | {two / one:.2f}x of this |",
        f"| 1 | {per_rank} (one rank's share: a GPU's case) | {thin:.2f} | {two / thin:.2f}x of this |",
        f"| 2 (gloo) | {per_rank} | {two:.2f} | |",
        "",
        f"Each kind ran {args.repeats} times, taking turns; every time: " + ", ".join(
            f"{name} {[round(t, 2) for t in times]}" for name, times in timings.items()) + ". "
        "With one GPU per rank, each rank's device is its own, so the second row is the comparison that says what "
        "splitting the clips gains; on a shared CPU the first row also counts how well one process already uses "
        "both cores. "
        f"configs/tiny.yaml's evaluation (mel-stats, {args.clips_per_genre} clips per genre of 6 genres, LoRA and base "
        "arms, 10 DDIM steps, 1.28 s) of a 2-step checkpoint. Largest relative difference between the two runs' KAD "
        f"and FAD, overall and per genre: {max(differences):.1e} (batches of other sizes on each rank change the "
        "float summation order; tests/test_evaluation_ranks.py compares with one clip per batch, to 1e-6).",
    ])
    print(body)
    if not args.no_doc:
        update_section("bench_evaluation_ranks",
                       "## Evaluation split over ranks: 1 process vs 2 (CPU)\n\n"
                       f"Command: `python benchmarks/bench_evaluation_ranks.py --clips-per-genre {args.clips_per_genre} "
                       f"--repeats {args.repeats}`"
                       f"  \nMachine: {started}\n\n{body}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
