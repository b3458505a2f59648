"""Benchmark: what the 95% intervals and paired differences add to an evaluation.

    python benchmarks/bench_intervals.py [--repeats 3] [--no-doc]

For evaluation sets of three sizes (the toy demo's, and two CLAP-sized ones), both arms (base and LoRA, same prompts
and seeds) are scored with :class:`metrics.genre_scores.GenreScores` without intervals (``resamples=0``) and with
them (1000 resamples, plus :func:`metrics.paired.paired_differences`). The baseline of the same run is the
generation those clips need: a full-size AudioLDM-s (random weights from its configs, ``--configs``, as
bench_sampler builds it) generating 10.24 s clips, timed at two step counts so that the cost of
one denoising step per clip is their difference; the evaluation's generation is that times configs/genre.yaml's
100 evaluation steps (plus the fixed part). The toy demo row is compared with its own 25-step toy sampling, timed
on the tiny model (the smallest AudioLDM there is, so that ratio is an upper bound). The result replaces the
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
from benchmarks.bench_sampler import FULL_CONFIGS, full_size_random  # noqa: E402
from benchmarks.report import machine, update_section  # noqa: E402
from lightning_modules.backbone import load_backbone  # noqa: E402
from lightning_modules.sampler import generate  # noqa: E402
from metrics.genre_scores import GenreScores, LabelledEmbeddings  # noqa: E402
from metrics.paired import paired_differences  # noqa: E402

EVALUATION_STEPS = 100  # configs/genre.yaml's GenreEvaluation num_inference_steps
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


def _seconds_per_clip(backbone, clips: int, duration: float, steps: int, repeats: int) -> float:
    """Best of ``repeats`` timed generations of ``clips`` clips (after a warm-up), per clip."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        generate(backbone, ["gugak music"] * clips, duration, steps, 2.5, generator=torch.Generator().manual_seed(0),
                 scheduler="ddim")
        times.append(time.perf_counter() - start)
    return min(times[1:]) / clips  # the first run warms up


def toy_seconds_per_clip(repeats: int) -> float:
    """Tiny AudioLDM at the toy demo's sampling settings."""
    settings = ToyEvalSettings()
    with tempfile.TemporaryDirectory() as tmp:
        backbone = load_backbone(str(build_tiny_audioldm(Path(tmp) / "tiny")))
        return _seconds_per_clip(backbone, settings.batch_size, settings.duration, settings.num_inference_steps,
                                 repeats)


def full_size_seconds_per_clip(configs: Path, steps: int, repeats: int) -> float:
    """Full-size AudioLDM-s, one 10.24 s clip at ``steps`` DDIM steps: fixed part plus ``steps`` denoising steps,
    from two timed step counts (2 and 4)."""
    backbone = full_size_random(configs)
    two, four = (_seconds_per_clip(backbone, 1, 10.24, n, repeats) for n in (2, 4))
    per_step = (four - two) / 2
    return two - 2 * per_step + steps * per_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement (fastest is reported)")
    parser.add_argument("--configs", type=Path, default=FULL_CONFIGS, help="AudioLDM-s configuration folder")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    context = f"{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"Intervals, {args.repeats} runs each; {context}", flush=True)
    toy_clip = toy_seconds_per_clip(args.repeats)
    full_clip = full_size_seconds_per_clip(args.configs, EVALUATION_STEPS, args.repeats)
    print(f"generation per clip: tiny at the toy settings {toy_clip:.3f} s; AudioLDM-s, 10.24 s at "
          f"{EVALUATION_STEPS} steps {full_clip:.1f} s", flush=True)
    lines = ["| evaluation | clips (both arms) | scoring, no intervals (s) | scoring with intervals (s) | "
             "generating the clips (s) | intervals / generation |", "|---|---:|---:|---:|---:|---:|"]
    for name, genres, clips, references, dim in SIZES:
        plain = min(time_scoring(genres, clips, references, dim, 0) for _ in range(args.repeats))
        full = min(time_scoring(genres, clips, references, dim, 1000) for _ in range(args.repeats))
        total_clips = 2 * genres * clips
        generation = total_clips * (toy_clip if name.startswith("toy") else full_clip)
        lines.append(f"| {name} | {total_clips} | {plain:.2f} | {full:.2f} | {generation:.0f} | "
                     f"{(full - plain) / generation:.4f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    if not args.no_doc:
        settings = ToyEvalSettings()
        body = (
            "## Intervals and paired differences: their cost\n\n"
            f"`python benchmarks/bench_intervals.py --repeats {args.repeats}`; {context}. Fastest of "
            f"{args.repeats} runs. Both arms are scored with `GenreScores` (overall and per genre: KAD, FAD and the "
            "CLAP score), without intervals and with them (1000 bootstrap resamples for KAD and CLAP, FAD's "
            "jackknife, and the paired differences of all three). Generation, same run: the toy row at the toy "
            f"demo's settings on the tiny random AudioLDM ({settings.num_inference_steps} {settings.scheduler} steps, "
            f"{settings.duration} s clips; {toy_clip:.3f} s per clip, an upper bound of the ratio since the toy base "
            "is larger); the CLAP rows with a full-size AudioLDM-s (random weights) making 10.24 s clips at "
            f"configs/genre.yaml's {EVALUATION_STEPS} evaluation steps, {full_clip:.1f} s per clip on this CPU "
            "(fixed part plus per-step cost, from runs at 2 and 4 steps). On a GPU both generation and scoring are "
            "faster; the intervals run on the CPU.\n\n" + table + "\n"
        )
        print(f"Updated {update_section('bench_intervals', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
