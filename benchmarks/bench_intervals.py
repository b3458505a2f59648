"""Benchmark: what the 95% intervals and paired differences add to an evaluation.

    python benchmarks/bench_intervals.py [--repeats 3] [--no-doc]

For evaluation sets of three sizes (the toy demo's, and two CLAP-sized ones), both arms (base and LoRA, same prompts
and seeds) are scored with :class:`metrics.genre_scores.GenreScores` without intervals (``resamples=0``) and with
them (1000 resamples, plus :func:`metrics.paired.paired_differences`). The baseline of the same run is the
generation those clips need: clips per second of the tiny random AudioLDM (the smallest model there is; any real
AudioLDM is slower, so the ratio is an upper bound) at the toy demo's sampling settings. The result replaces the
``bench_intervals`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioldm_demo.tiny import build_tiny_audioldm  # noqa: E402 - after the path insert
from audioldm_demo.toy_settings import ToyEvalSettings  # noqa: E402
from benchmarks.report import machine, update_section  # noqa: E402
from lightning_modules.backbone import load_backbone  # noqa: E402
from lightning_modules.sampler import generate  # noqa: E402
from metrics.genre_scores import GenreScores, LabelledEmbeddings  # noqa: E402
from metrics.paired import paired_differences  # noqa: E402

SIZES = (  # name, genres, generated clips per genre and arm, reference clips per genre, embedding dimension
    ("toy demo (mel-stats)", 6, 48, 64, 128),
    ("CLAP, 8 genres x 100 clips", 8, 100, 100, 512),
    ("CLAP, 8 genres x 400 clips", 8, 400, 400, 512),
)


def _arms(genres: int, clips: int, references: int, dim: int, resamples: int) -> tuple[GenreScores, GenreScores]:
    """Both arms of one evaluation, scored (``compute`` is timed by the caller); seed 0 embeddings."""
    rng = np.random.default_rng(0)
    names = [f"genre{g}" for g in range(genres)]
    reference = LabelledEmbeddings(rng.normal(size=(genres * references, dim)).astype(np.float32),
                                   [n for n in names for _ in range(references)], "reference")
    labels = [n for n in names for _ in range(clips)]
    text = rng.normal(size=(genres * clips, dim)).astype(np.float32)
    shared = rng.normal(size=(genres * clips, dim)).astype(np.float32)
    arms = []
    for name, shift in (("base model", 0.0), ("LoRA", 0.1)):
        scores = GenreScores(reference, name, resamples=resamples, sync_on_compute=False)
        scores.update(shared + shift, labels, text)
        arms.append(scores)
    return arms[0], arms[1]


def time_scoring(genres: int, clips: int, references: int, dim: int, resamples: int) -> float:
    """Seconds to score both arms, with their paired differences when ``resamples`` is not 0."""
    base, lora = _arms(genres, clips, references, dim, resamples)
    start = time.perf_counter()
    base.compute(), lora.compute()
    if resamples:
        paired_differences(base, lora)
    return time.perf_counter() - start


def clips_per_second(repeats: int) -> float:
    """Generation speed of the tiny AudioLDM at the toy demo's sampling settings (best of ``repeats`` batches)."""
    settings = ToyEvalSettings()
    with tempfile.TemporaryDirectory() as tmp:
        backbone = load_backbone(str(build_tiny_audioldm(Path(tmp) / "tiny")))
        prompts = ["gugak music"] * settings.batch_size
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            generate(backbone, prompts, settings.duration, settings.num_inference_steps, settings.guidance_scale,
                     generator=torch.Generator().manual_seed(0), scheduler=settings.scheduler)
            times.append(time.perf_counter() - start)
        return len(prompts) / min(times[1:])  # the first batch warms up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (fastest is reported)")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    context = f"{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"Intervals, {args.repeats} runs each; {context}", flush=True)
    speed = clips_per_second(args.repeats)
    lines = ["| evaluation | clips (both arms) | scoring, no intervals (s) | scoring with intervals (s) | "
             "intervals' share of scoring | generating the clips, tiny model (s) | intervals / generation |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, genres, clips, references, dim in SIZES:
        plain = min(time_scoring(genres, clips, references, dim, 0) for _ in range(args.repeats))
        full = min(time_scoring(genres, clips, references, dim, 1000) for _ in range(args.repeats))
        total_clips = 2 * genres * clips
        generation = total_clips / speed
        lines.append(f"| {name} | {total_clips} | {plain:.2f} | {full:.2f} | {(full - plain) / full:.0%} | "
                     f"{generation:.1f} | {(full - plain) / generation:.3f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    if not args.no_doc:
        settings = ToyEvalSettings()
        body = (
            "## Intervals and paired differences: their cost\n\n"
            f"`python benchmarks/bench_intervals.py --repeats {args.repeats}`; {context}. Fastest of "
            f"{args.repeats} runs. Both arms are scored with `GenreScores` (overall and per genre: KAD, FAD and the "
            "CLAP score), without intervals and with them (1000 bootstrap resamples for KAD and CLAP, FAD's "
            "jackknife, and the paired differences of all three). Generation is the tiny random AudioLDM at the "
            f"toy demo's settings ({settings.num_inference_steps} {settings.scheduler} steps, "
            f"{settings.duration} s clips, guidance {settings.guidance_scale}), {speed:.1f} clips/s in this run; a "
            "real AudioLDM is many times slower per clip, so the last column is an upper bound of what the "
            "intervals add to an evaluation.\n\n" + table + "\n"
        )
        print(f"Updated {update_section('bench_intervals', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
