"""Benchmark: does a few-step solver rank the base and two adapters like many-step DDIM does?

    python benchmarks/bench_eval_sampler.py [--base .cache/toy-audioldm] [--run runs/demo-synthetic] [--clips 48]
        [--no-doc]

The evaluation callbacks sample every evaluation clip at every validation, so their sampler sets the cost of
evaluating during training. This measures, on the toy base of ``make demo-synthetic`` and two adapters of different
quality (the demo run's adapter at step 200, half trained, and its final one), the per-genre KAD (mel-statistics
embedder, the demo's references and seeds: :mod:`audioldm_demo.toy_eval`) of base, half-trained and final adapter,
sampled with DDIM at 200 and 100 steps (the reference) and with DPM-Solver++ and UniPC at 10-25 steps. A sampler
"orders them alike" when, in every genre, it ranks the three models by KAD as DDIM at 200 steps does. Wall time is
what one model's set of clips (``--clips`` per genre, 6 genres) takes to generate and embed, with one thread.

Missing toy base or demo run: the script runs ``make demo-synthetic`` first (about 8.5 minutes). Prints a markdown table
and rewrites the ``bench_eval_sampler`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from contextlib import nullcontext
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioldm_demo.synthetic_mels import genre_caption
from audioldm_demo.toy_eval import reference_embeddings
from audioldm_demo.toy_settings import ToyEvalSettings
from benchmarks.report import machine, update_section
from lightning_modules.ab import generate_ab
from lightning_modules.adapter_files import parse_adapter_spec, read_adapter
from lightning_modules.adapter_sites import adapters_disabled
from lightning_modules.adapters import load_adapters
from lightning_modules.backbone import Backbone, load_backbone
from lightning_modules.sampling_settings import SamplingSettings
from metrics import MelStatisticsEmbedder
from metrics.evaluation import scores_of
from metrics.genre_scores import OVERALL, GenreScores, LabelledEmbeddings
from metrics.paired import paired_differences

REFERENCE = ("ddim", 200)
SAMPLERS: tuple[tuple[str, int], ...] = (
    REFERENCE, ("ddim", 100), ("ddim", 25),
    ("dpmsolver++", 25), ("dpmsolver++", 20), ("dpmsolver++", 10),
    ("unipc", 25), ("unipc", 20), ("unipc", 10),
)
MODELS = ("base", "step 200", "final")


def demo_artifacts(base: Path, run: Path) -> tuple[Path, Path]:
    """The synthetic demo's half-trained and final adapter folders, after running ``make demo-synthetic`` when they
    are missing."""
    half, final = run / "adapters" / "step-200", run / "adapters" / "final"
    if not (base / "model_index.json").is_file() or not half.is_dir() or not final.is_dir():
        print(f"No toy base in {base} or no demo adapters in {run}: running `make demo-synthetic` first.", flush=True)
        subprocess.run(["make", "demo-synthetic", f"SYNTHETIC_TOY_BASE={base}"], cwd=ROOT, check=True)
    for folder in (half, final):
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing after `make demo-synthetic`: check configs/demo_synthetic.yaml's "
                             "adapter_export (every_n_steps: 200) and trainer.default_root_dir (runs/demo-synthetic).")
    return half, final


def adapted(base: Path, adapter: Path) -> Backbone:
    """The toy base with ``adapter`` loaded and active."""
    backbone = load_backbone(str(base))
    load_adapters(backbone, [read_adapter(parse_adapter_spec(f"lora={adapter}"))], str(base))
    return backbone


def model_scores(backbone: Backbone, settings: ToyEvalSettings, reference: LabelledEmbeddings, base_arm: bool
                 ) -> tuple[GenreScores, float]:
    """One model's scores (per genre and overall, with intervals) on its evaluation set, and the seconds its clips
    took to generate and embed."""
    prompts, seeds, labels = [], [], []
    for genre in settings.genres:
        prompts += [genre_caption(genre, settings.caption_template)] * settings.clips_per_genre
        seeds += [settings.seed + i for i in range(settings.clips_per_genre)]
        labels += [genre] * settings.clips_per_genre
    sampling = SamplingSettings(settings.num_inference_steps, settings.guidance_scale, settings.scheduler,
                                settings.duration)
    embedder, rate = MelStatisticsEmbedder(), backbone.sampling_rate
    start = time.perf_counter()
    with adapters_disabled(backbone) if base_arm else nullcontext():
        embeddings, _ = generate_ab(backbone, prompts, seeds, sampling, batch_size=settings.batch_size,
                                    with_base=False, keep=lambda audio: embedder.embed_audio(list(audio), rate))
    seconds = time.perf_counter() - start
    return scores_of(LabelledEmbeddings(embeddings.numpy(), labels, "generated"), reference), seconds


def significant_gaps(scores: dict[str, GenreScores], genres: list[str]) -> dict[str, dict[str, bool | None]]:
    """Per genre, whether each neighbouring pair of models (base/step 200, step 200/final) differs in KAD
    significantly (paired 95% interval without 0, :mod:`metrics.paired`): an order within the noise is no order."""
    gaps: dict[str, dict[str, bool | None]] = {genre: {} for genre in genres}
    for worse, better in zip(MODELS, MODELS[1:]):
        paired = paired_differences(scores[worse], scores[better])
        for genre in genres:
            gaps[genre][f"{worse} vs {better}"] = paired[genre]["kad_delta_significant"]
    return gaps


def run(base: Path, run_dir: Path, clips: int) -> dict:
    """KAD[sampler][model][genre], seconds[sampler][model] and, per sampler, the significance of each gap."""
    half, final = demo_artifacts(base, run_dir)
    backbones = {"step 200": adapted(base, half), "final": adapted(base, final)}
    settings = ToyEvalSettings(clips_per_genre=clips)
    reference = reference_embeddings(settings, MelStatisticsEmbedder())
    genres = [*settings.genres, OVERALL]
    kad, seconds, gaps = {}, {}, {}
    for scheduler, steps in SAMPLERS:
        key = f"{scheduler} {steps}"
        sampler_settings = replace(settings, scheduler=scheduler, num_inference_steps=steps)
        scores, seconds[key] = {}, {}
        for model in MODELS:
            backbone = backbones["final" if model == "base" else model]
            scores[model], seconds[key][model] = model_scores(backbone, sampler_settings, reference, model == "base")
        rows = {model: score.compute()["rows"] for model, score in scores.items()}
        kad[key] = {model: {genre: rows[model][genre]["kad"] for genre in genres} for model in MODELS}
        gaps[key] = significant_gaps(scores, genres)
        for model in MODELS:
            print(f"{key:>16} {model:>9}: {seconds[key][model]:6.1f} s  "
                  + " ".join(f"{g}={v:.3f}" for g, v in kad[key][model].items()), flush=True)
    return {"kad": kad, "seconds": seconds, "gaps": gaps}


PAIRS = tuple(zip(MODELS, MODELS[1:]))


def chain(kad: dict, gaps: dict, key: str, genre: str) -> str:
    """KAD of base, step 200 and final in that order, with > or < between neighbours whose paired difference is
    significant and ~ between those whose is not."""
    cells = [f"{kad[key][MODELS[0]][genre]:.2f}"]
    for worse, better in PAIRS:
        a, b = kad[key][worse][genre], kad[key][better][genre]
        sign = "~" if not gaps[key][genre][f"{worse} vs {better}"] else (">" if a > b else "<")
        cells += [sign, f"{b:.2f}"]
    return " ".join(cells)


def agrees(kad: dict, gaps: dict, key: str, genre: str) -> bool:
    """Whether ``key`` puts every pair that the reference tells apart (significantly) in the reference's order."""
    reference = f"{REFERENCE[0]} {REFERENCE[1]}"
    for worse, better in PAIRS:
        if gaps[reference][genre][f"{worse} vs {better}"]:
            reference_sign = kad[reference][worse][genre] > kad[reference][better][genre]
            if (kad[key][worse][genre] > kad[key][better][genre]) != reference_sign:
                return False
    return True


def table(results: dict, held_out: str, base_genres: list[str]) -> str:
    """Per sampler: KAD of base, step 200 and final on the held-out genre and overall (what ``val/kad`` monitors),
    whether it orders them as the reference does where the reference tells them apart, the same for the base
    genres, and the seconds of one model's set of clips."""
    kad, gaps, seconds = results["kad"], results["gaps"], results["seconds"]
    reference = f"{REFERENCE[0]} {REFERENCE[1]}"
    head = ["sampler", f"{held_out}: KAD b, h, f", "all: KAD b, h, f", f"orders {held_out} / all alike",
            f"{held_out} pairs told apart", "base genres alike", "s per model's set", f"time vs {reference}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    reference_seconds = sum(seconds[reference].values()) / len(MODELS)
    for key in kad:
        alike = " / ".join("yes" if agrees(kad, gaps, key, g) else "**no**" for g in (held_out, OVERALL))
        base_alike = sum(agrees(kad, gaps, key, g) for g in base_genres)
        mean_seconds = sum(seconds[key].values()) / len(MODELS)
        told = sum(bool(gaps[key][held_out][f"{w} vs {b}"]) for w, b in PAIRS)
        lines.append(f"| {key} | {chain(kad, gaps, key, held_out)} | {chain(kad, gaps, key, OVERALL)} | {alike} | "
                     f"{told}/{len(PAIRS)} | {base_alike}/{len(base_genres)} | {mean_seconds:.1f} | "
                     f"{mean_seconds / reference_seconds:.2f}x |")
    return "\n".join(lines)


def as_good(results: dict, held_out: str) -> list[str]:
    """The samplers that order the held-out genre and the overall set as the reference does and tell apart every
    held-out pair that the reference tells apart: the ones an evaluation could use in its place."""
    kad, gaps = results["kad"], results["gaps"]
    reference = f"{REFERENCE[0]} {REFERENCE[1]}"
    return [key for key in kad if key != reference
            and all(agrees(kad, gaps, key, genre) for genre in (held_out, OVERALL))
            and all(gaps[key][held_out][pair] or not gaps[reference][held_out][pair] for pair in
                    (f"{w} vs {b}" for w, b in PAIRS))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=ROOT / ".cache" / "toy-audioldm")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "demo-synthetic")
    parser.add_argument("--clips", type=int, default=48, help="clips per genre and model")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    parser.add_argument("--results", type=Path, default=ROOT / ".cache" / "bench" / "eval_sampler.json",
                        help="where the measurements are written (JSON)")
    parser.add_argument("--reuse", action="store_true", help="rewrite the table from --results without sampling")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `make demo-synthetic` runs: one float summation order, and the timings of one core
    if args.reuse:
        results = json.loads(args.results.read_text())
    else:
        results = {"machine": machine(), "clips": args.clips, **run(args.base, args.run, args.clips)}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=1))
    settings = ToyEvalSettings()
    body = "\n".join([
        "## Evaluation sampler: few-step solvers against 200-step DDIM (toy base, CPU)",
        "",
        f"`python benchmarks/bench_eval_sampler.py --clips {results['clips']}` on {results['machine']}, one thread.",
        "",
        "The toy base of `make demo-synthetic` (b), the demo run's adapter at step 200 (h, half trained) and its "
        "final adapter "
        f"(f): {results['clips']} clips per genre and model (seeds 1000..), guidance 2.5, 1.28 s clips, KAD of the "
        f"mel-statistics embedder against the demo's fresh reference clips, on {settings.held_out} (the genre the "
        "adapters learned) and overall (`val/kad`). Between neighbours, `>` or `<` marks a significant paired "
        "difference (95% interval without 0), `~` one within the noise. A sampler orders a genre alike when every "
        f"pair that {REFERENCE[0]} at {REFERENCE[1]} steps tells apart is in the same order; 'base genres alike' "
        "counts the five genres the adapters must leave alone (there the three models are mostly within the noise, "
        "so few pairs are told apart). Seconds: generating and embedding one model's set, mean of the three.",
        "",
        table(results, settings.held_out, list(settings.base_genres)),
        "",
        f"Ordering {settings.held_out} and the overall set as {REFERENCE[0]} at {REFERENCE[1]} steps does, and telling "
        f"apart every {settings.held_out} pair it tells apart: "
        + (", ".join(as_good(results, settings.held_out)) or "no other sampler") + ".",
    ])
    print(body)
    if not args.no_doc:
        update_section("bench_eval_sampler", body)


if __name__ == "__main__":
    main()
