"""Benchmark: the project's sampler (``lightning_modules.sampler.generate``) against ``AudioLDMPipeline.__call__``.

    python benchmarks/bench_sampler.py [--steps 5] [--duration 2.56] [--repeats 3] [--no-full] [--no-doc]

Two models, both offline: the tiny test model and a full-size AudioLDM-s (``cvssp/audioldm-s-full-v2``'s
configurations from ``../shared/audioldm_configs``, random weights, real tokenizer). Both samplers run on the same
component objects with the same prompts, seed, steps and guidance, in the same process; the runs alternate
(ours, pipeline, ours, ...) after one warm-up each, so a background load on the machine hits both alike. Reported:
the best wall-clock run of each and the ratio of median CPU times (both robust to other work on a shared machine),
and the largest difference between the two waveforms. Prints a markdown table and rewrites the ``bench_sampler``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, update_section
from lightning_modules.audioldm import AudioLDMBackbone
from lightning_modules.backbone import load_backbone
from lightning_modules.sampler import generate
from audioldm_demo.tiny import build_tiny_audioldm

FULL_CONFIGS = ROOT.parent / "shared" / "audioldm_configs" / "audioldm-s-full-v2"
PROMPTS = ["hip hop music, The subgenre of hip-hop is boom bap.", "gugak music, plucked pentatonic melody"]


def full_size_random(configs: Path, seed: int = 0) -> AudioLDMBackbone:
    """AudioLDM-s at full size from its configurations, with random weights (no download)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import (
        ClapTextConfig,
        ClapTextModelWithProjection,
        RobertaTokenizerFast,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # the vocoder config's model_type "hifigan" warns on every load
    torch.manual_seed(seed)
    return AudioLDMBackbone(
        vae=AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae")),
        text_encoder=ClapTextModelWithProjection(ClapTextConfig.from_pretrained(configs / "text_encoder")),
        tokenizer=RobertaTokenizerFast.from_pretrained(configs / "tokenizer"),
        unet=UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet")),
        vocoder=SpeechT5HifiGan(SpeechT5HifiGanConfig.from_pretrained(configs / "vocoder")),
        scheduler=DDIMScheduler.from_config(DDIMScheduler.load_config(configs / "scheduler")),
    )


def pipeline_of(backbone: AudioLDMBackbone):
    """AudioLDMPipeline over the very same module objects (so both samplers use identical weights)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AudioLDMPipeline

        pipe = AudioLDMPipeline(**{name: getattr(backbone, name) for name in
                                   ("vae", "text_encoder", "tokenizer", "unet", "vocoder", "scheduler")})
    pipe.set_progress_bar_config(disable=True)
    for module in (backbone.vae, backbone.text_encoder, backbone.unet, backbone.vocoder):
        module.eval()
    return pipe


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each callable, run in turn ``repeats`` times (after the caller's warm-up)."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            run()
            times[name]["wall"].append(time.perf_counter() - start_wall)
            times[name]["cpu"].append(time.process_time() - start_cpu)
    return times


def summary(times: dict[str, dict[str, list[float]]], difference: float | None, peak: float | None) -> dict:
    """Best runs (noise on a shared machine only ever adds time, so the minimum is the robust estimate)."""
    best = {name: min(t["wall"]) for name, t in times.items()}
    cpu = {name: min(t["cpu"]) for name, t in times.items()}
    return {
        "ours": best["ours"],
        "pipeline": best["pipeline"],
        "ratio": best["ours"] / best["pipeline"],
        "cpu_ratio": cpu["ours"] / cpu["pipeline"],
        "difference": difference,
        "relative": difference / peak if difference is not None and peak else None,
        "times": times,
    }


def compare_sampling(backbone: AudioLDMBackbone, prompts: list[str], steps: int, duration: float,
                     repeats: int) -> dict:
    """Whole text-to-waveform runs: ``generate`` against ``AudioLDMPipeline.__call__``."""
    pipe = pipeline_of(backbone)

    def ours() -> torch.Tensor:
        return generate(backbone, prompts, duration, num_inference_steps=steps, guidance_scale=2.5,
                        generator=torch.Generator().manual_seed(0))

    def theirs() -> torch.Tensor:
        return pipe(prompts, num_inference_steps=steps, audio_length_in_s=duration, guidance_scale=2.5,
                    generator=torch.Generator().manual_seed(0), output_type="pt").audios

    reference = theirs()  # the first runs are also the warm-up of both
    difference = float((ours() - reference).abs().max())
    return summary(interleaved({"ours": ours, "pipeline": theirs}, repeats), difference, float(reference.abs().max()))


def compare_conditioning(backbone: AudioLDMBackbone, prompts: list[str], repeats: int) -> dict:
    """The text conditioning alone (prompts and the empty negative prompts): where the two differ in work."""
    pipe = pipeline_of(backbone)

    def ours() -> torch.Tensor:
        with torch.no_grad():
            empty = backbone.unconditional(len(prompts))["class_labels"]
            return torch.cat([empty, backbone.encode_prompts(prompts)["class_labels"]])

    def theirs() -> torch.Tensor:
        with torch.no_grad():
            return pipe._encode_prompt(prompts, backbone.unet.device, 1, True, None)

    reference = theirs()
    difference = float((ours() - reference).abs().max())
    return summary(interleaved({"ours": ours, "pipeline": theirs}, repeats), difference, float(reference.abs().max()))


def table(rows: list[tuple[str, str, dict]]) -> str:
    lines = [
        (
            "| model | workload | ours (s) | AudioLDMPipeline (s) | ours / pipeline, wall | ours / pipeline, CPU time "
            "| max abs difference (relative to peak) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, workload, result in rows:
        lines.append(f"| {model} | {workload} | {result['ours']:.2f} | {result['pipeline']:.2f} | "
                     f"{result['ratio']:.2f} | {result['cpu_ratio']:.2f} | {result['difference']:.1e} "
                     f"({result['relative']:.1e}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="sampler steps (both models)")
    parser.add_argument("--duration", type=float, default=2.56, help="seconds of audio per prompt (full size)")
    parser.add_argument("--tiny-duration", type=float, default=5.12, help="seconds of audio per prompt (tiny)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each sampler, interleaved")
    parser.add_argument("--configs", type=Path, default=FULL_CONFIGS, help="AudioLDM-s configuration folder")
    parser.add_argument("--no-full", action="store_true", help="only the tiny model")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    context = machine()
    print(f"Sampler vs AudioLDMPipeline, torch {torch.__version__}, {torch.get_num_threads()} threads; {context}")
    sampling = f"{len(PROMPTS)} prompts, {args.steps} DDIM steps, {{}} s, guidance 2.5"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = load_backbone(str(build_tiny_audioldm(Path(tmp) / "tiny")))
        rows.append(("tiny (tests)", sampling.format(args.tiny_duration),
                     compare_sampling(tiny, PROMPTS, args.steps, args.tiny_duration, args.repeats)))
        print(table(rows[-1:]), flush=True)
    if not args.no_full:
        full = full_size_random(args.configs)
        name = "AudioLDM-s full size, random weights"
        rows.append((name, sampling.format(args.duration),
                     compare_sampling(full, PROMPTS, args.steps, args.duration, args.repeats)))
        rows.append((name, f"text conditioning only ({len(PROMPTS)} prompts + negatives)",
                     compare_conditioning(full, PROMPTS, args.repeats)))
    report = table(rows)
    print("\n" + report)
    for model, workload, result in rows:
        for clock in ("wall", "cpu"):
            values = {name: ", ".join(f"{t:.2f}" for t in times[clock]) for name, times in result["times"].items()}
            print(f"{model}, {workload}, {clock} s: ours {values['ours']}; pipeline {values['pipeline']}")
    if not args.no_doc:
        command = " ".join(["python benchmarks/bench_sampler.py", *sys.argv[1:]])
        setup = (
            f"`{command}`: {args.repeats} interleaved runs of each after a warm-up, in one process, on the same "
            "component objects, seed 0. Times are the best of the runs (other work on a shared machine only ever "
            "adds time); the CPU-time ratio compares the best CPU times of the process. Machine: "
            f"{context}; torch {torch.__version__}, {torch.get_num_threads()} threads."
        )
        notes = (
            "Ours pads prompts to the longest one instead of 512 tokens (the same embedding with the attention "
            "mask, [model-facts.md](model-facts.md), \"Prompt padding\"), which removes nearly all of the text "
            "encoder's work; the denoising loop, "
            "VAE and vocoder are the same computations. The last column is the largest absolute difference between "
            "the outputs and, in brackets, that difference over the pipeline's peak value (random full-size weights "
            "give near-silent audio, so the relative figure is the meaningful one there)."
        )
        body = "\n".join(["## Sampler vs AudioLDMPipeline", "", setup, "", report, "", notes])
        print(f"Updated {update_section('bench_sampler', body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
