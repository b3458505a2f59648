"""``audioldm-lora generate``: text to 16 kHz wav files with a base model of the AudioLDM family and any mix of LoRA
adapters.

    audioldm-lora generate --base ID|DIR --adapter PATH[=WEIGHT] ... (--prompt TEXT ... | --prompts FILE)
        [--seed S] [--per-prompt K] [--steps N] [--guidance W] [--duration SEC] [--batch-size B] --out DIR

Each clip gets ``<index>_<prompt>_seed<seed>.wav`` and a ``.json`` sidecar (prompt, seed, adapters and weights,
steps, guidance, scheduler, base), like ``lightning predict``; ``generation.json`` lists the run. Clip ``i`` uses
seed ``S + i`` with its own generator, so a clip does not depend on the batch it was generated in.

Writes are all or nothing: clips go to a staging folder beside ``--out`` that is renamed to ``--out`` only when every
clip is written, so an error or Ctrl-C never leaves a half-filled ``--out`` (a partial set of clips would silently
skew an evaluation run on it). Exit status 0 on success, 2 for bad input (nothing written).
"""

from __future__ import annotations

import math
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.adapter_inputs import (
    CommandInputError,
    add_model_arguments,
    check_output_directory,
    load_model,
    read_adapters,
    resolve_base,
)
from audioldm_lora.tool_convention import (
    ProgressReporter,
    add_device_argument,
    add_progress_argument,
    resolve_device,
    run_tool,
    tool_parser,
)
from datamodules.atomic_files import atomic_write_json, staged_directory
from datamodules.clip_folder import clip_stem, write_sidecar
from lightning_modules.sampling_settings import SCHEDULER_NAMES

if TYPE_CHECKING:
    import torch

    from lightning_modules.backbone import Backbone

MANIFEST = "generation.json"


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("generate", __doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--prompt", type=str, action="append", default=[], help="a prompt; repeat for several.")
    parser.add_argument("--prompts", type=str | None, default=None, help="text file, one prompt per line.")
    parser.add_argument("--negative-prompt", type=str | None, default=None, help="guidance's negative prompt.")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first clip; clip i uses seed + i.")
    parser.add_argument("--per-prompt", type=int, default=1, help="clips per prompt (consecutive seeds).")
    parser.add_argument("--steps", type=int, default=50, help="sampler steps (the paper: 200).")
    parser.add_argument("--guidance", type=float, default=2.5, help="classifier-free guidance weight (1: off).")
    parser.add_argument("--scheduler", type=Literal[tuple(sorted(SCHEDULER_NAMES))], default="ddim", help="sampler.")
    parser.add_argument("--duration", type=float, default=10.24, help="seconds per clip.")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per sampler batch.")
    add_device_argument(parser)
    parser.add_argument("--out", type=str, required=True, help="output folder (new or empty).")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out that already holds files.")
    add_progress_argument(parser, "the clips")
    return parser


def read_prompts(prompts: list[str], prompts_file: str | None) -> list[str]:
    """The prompts from ``--prompt`` or from ``--prompts FILE`` (one per line, blank lines skipped)."""
    if bool(prompts) == bool(prompts_file):
        raise CommandInputError("Give --prompt TEXT (repeatable) or --prompts FILE, not both and not neither.")
    if not prompts_file:
        if not all(p.strip() for p in prompts):
            raise CommandInputError("--prompt must not be empty.")
        return list(prompts)
    path = Path(prompts_file)
    if not path.is_file():
        raise CommandInputError(f"--prompts {path} does not exist.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise CommandInputError(f"--prompts {path} is not UTF-8 text ({error}).") from error
    found = [line.strip() for line in lines if line.strip()]
    if not found:
        raise CommandInputError(f"--prompts {path} holds no prompt; write one prompt per line.")
    return found


def _check_settings(args: Namespace) -> None:
    for name in ("steps", "batch_size", "per_prompt"):
        if getattr(args, name) < 1:
            raise CommandInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if not math.isfinite(args.guidance):
        raise CommandInputError(f"--guidance must be a finite number, got {args.guidance}.")


def sample_clips(
    backbone: "Backbone",
    prompts: list[str],
    seeds: list[int],
    duration: float,
    steps: int,
    guidance: float,
    scheduler: str,
    negative_prompt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> "torch.Tensor":
    """Waveforms ``[len(prompts), samples]`` on the CPU, clip ``i`` from its own generator seeded ``seeds[i]``: what
    this command and the app (:mod:`audioldm_lora.app`) sample with. ``progress`` gets each finished step's index."""
    from lightning_modules.sampler import generate, seeded_generators

    return generate(
        backbone,
        prompts,
        duration,
        num_inference_steps=steps,
        guidance_scale=guidance,
        negative_prompt=negative_prompt,
        generator=seeded_generators(seeds, backbone.unet.device),
        scheduler=scheduler,
        progress=progress,
    ).cpu()


def sidecar_settings(backbone: "Backbone", base: str, adapters: list[dict[str, Any]], negative_prompt: str | None,
                     steps: int, guidance: float, scheduler: str, duration: float) -> dict[str, Any]:
    """What every clip's sidecar (and ``generation.json``) records besides its prompt, seed and file: sampling,
    base model and adapters (each :meth:`~lightning_modules.adapter_files.AdapterSpec.describe`)."""
    return {
        "negative_prompt": negative_prompt,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "scheduler": scheduler,
        "duration": duration,
        "sample_rate": backbone.sampling_rate,
        "base_model": base,
        "adapters": adapters,
    }


def _write_clips(
    args: Namespace,
    backbone: "Backbone",
    clips: list[tuple[str, int]],
    settings: dict[str, Any],
    staging: Path,
) -> list[dict[str, Any]]:
    """Generate ``clips`` (prompt, seed) batch by batch into ``staging``; returns the manifest's clip entries."""
    from datamodules.audio import save_audio

    written = []
    with ProgressReporter("generating", "clips", len(clips), enabled=args.progress) as progress:

        def step(index: int) -> None:
            progress.describe(f"generating, step {index + 1}/{args.steps}")

        for start in range(0, len(clips), args.batch_size):
            batch = clips[start : start + args.batch_size]
            waveforms = sample_clips(backbone, [prompt for prompt, _ in batch], [seed for _, seed in batch],
                                     args.duration, args.steps, args.guidance, args.scheduler, args.negative_prompt,
                                     step)
            for offset, ((prompt, seed), waveform) in enumerate(zip(batch, waveforms)):
                index = start + offset
                wav = staging / f"{clip_stem(index, prompt, seed)}.wav"
                save_audio(wav, waveform, backbone.sampling_rate)
                write_sidecar(wav, {"index": index, "prompt": prompt, "seed": seed, "file": wav.name, **settings})
                written.append({"index": index, "prompt": prompt, "seed": seed, "file": wav.name})
            progress.advance(len(batch))
    return written


def run(args: Namespace) -> int:
    """Generate every clip into a staging folder, then publish it as ``--out``."""
    prompts = read_prompts(args.prompt, args.prompts)
    _check_settings(args)
    adapters = read_adapters(args.adapter)
    base = resolve_base(args.base, adapters)
    out = Path(args.out).expanduser()
    check_output_directory(out, args.overwrite)
    backbone = load_model(base, adapters, resolve_device(args.device), args.allow_other_base)
    try:
        backbone.check_duration(args.duration)
    except ValueError as error:
        raise CommandInputError(f"--duration: {error}") from error
    settings = sidecar_settings(backbone, base, [a.spec.describe() for a in adapters], args.negative_prompt,
                                args.steps, args.guidance, args.scheduler, args.duration)
    clips = [(prompt, args.seed + i) for i, prompt in enumerate(p for p in prompts for _ in range(args.per_prompt))]
    with staged_directory(out, mode="folder", overwrite=args.overwrite) as staging:
        written = _write_clips(args, backbone, clips, settings, staging)
        manifest = {**settings, "clips": written}
        atomic_write_json(staging / MANIFEST, manifest)
    print(f"{len(written)} clip(s) written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    return run_tool("generate", build_parser(), argv, run)
