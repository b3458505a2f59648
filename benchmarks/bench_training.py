"""Benchmark: a full-size AudioLDM-s LoRA training step, this framework against the authors' training loop.

    python benchmarks/bench_training.py [--steps 4] [--duration 10.24] [--batch-size 2] [--no-doc]

Both variants train LoRA (rank 2, alpha 4, to_q/to_v) on the same random-initialised full-size AudioLDM-s
(``../shared/audioldm_configs/audioldm-s-full-v2``, saved once to ``.cache/bench/audioldm-s-random`` and loaded by
the project's own loader), batch 2, 10.24 s clips, fp32, AdamW:

- ``authors``: a reimplementation of the paper's loop: every step tokenises to 512 tokens, runs the CLAP text
  encoder and the VAE encoder, and trains a peft ``get_peft_model`` UNet (frozen parts under ``no_grad``, which
  only favours the baseline).
- ``framework``: ``AudioLDMLoRA`` on latent-cache batches (posterior parameters and text embeddings computed once,
  as ``audioldm-lora cache`` stores them): each step samples the posterior and runs the LoRA UNet only.

Each variant runs in its own process (so peak memory is its own), one warm-up step then ``--steps`` timed steps;
the table reports seconds per step, steps/s, the ratio, and peak resident memory. Rewrites the ``bench_training``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, update_section, variant_results  # noqa: E402

if TYPE_CHECKING:
    from lightning_modules.module import AudioLDMLoRA

FULL_DIR = ROOT / ".cache" / "bench" / "audioldm-s-random"
PROMPTS = ["hip hop music, The subgenre of hip-hop is boom bap.", "gugak music, plucked pentatonic melody"]


def ensure_full_size_model(configs: Path | None = None) -> Path:
    """Save the random full-size AudioLDM-s once (about 1.7 GB), so both variants load it like a real checkpoint.

    ``configs`` is the AudioLDM-s configuration folder (default ``../shared/audioldm_configs/audioldm-s-full-v2``;
    another copy where ``../shared`` is not beside the checkout, e.g. on a GPU machine).
    """
    if (FULL_DIR / "model_index.json").is_file():
        return FULL_DIR
    from benchmarks.bench_sampler import FULL_CONFIGS, full_size_random

    configs = FULL_CONFIGS if configs is None else Path(configs)
    parts = full_size_random(configs)
    from datamodules.atomic_files import staged_directory

    with staged_directory(FULL_DIR, mode="folder") as staging:
        parts.save_pretrained(staging)
    return FULL_DIR


def fake_mels(batch_size: int, duration: float) -> torch.Tensor:
    """Log-mel-like input [B, frames, 64] (the content does not change the cost)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, int(round(duration * 100)), 64, generator=generator) - 5.0


def authors_step_fn(model_dir: Path, mels: torch.Tensor, device: str | torch.device = "cpu") -> Callable[[], float]:
    """The paper's loop: text encoder (512 tokens) and VAE at every step, peft get_peft_model UNet, on ``device``."""
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from peft import LoraConfig, get_peft_model

    from lightning_modules.backbone import load_backbone

    device = torch.device(device)
    parts = load_backbone(str(model_dir))
    for frozen in (parts.vae, parts.text_encoder):
        frozen.requires_grad_(False)
        frozen.eval()
        frozen.to(device)
    unet = get_peft_model(parts.unet.to(device), LoraConfig(r=2, lora_alpha=4, init_lora_weights="gaussian",
                                                            target_modules=["to_q", "to_v"]))
    unet.train()
    mels = mels.to(device)
    noise_scheduler = DDPMScheduler.from_config(parts.scheduler.config)
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.01)
    captions = [PROMPTS[i % len(PROMPTS)] for i in range(mels.shape[0])]

    def step() -> float:
        with torch.no_grad():
            tokens = parts.tokenizer(captions, padding="max_length", max_length=512, truncation=True,
                                     return_tensors="pt").to(device)
            embeds = F.normalize(parts.text_encoder(**tokens).text_embeds, dim=-1)
            latents = parts.vae.encode(mels.unsqueeze(1)).latent_dist.sample() * parts.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=device)
        prediction = unet(noise_scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=None,
                          class_labels=embeds).sample
        loss = F.mse_loss(prediction, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def framework_module(model_dir: Path, device: str | torch.device = "cpu", **options: Any) -> "AudioLDMLoRA":
    """``AudioLDMLoRA`` (LoRA r=2, alpha 4, to_q/to_v) on ``device`` in training mode.

    ``options`` go to ``AudioLDMLoRA`` (``frozen_dtype``, ``channels_last``, ``gradient_checkpointing``,
    ``fused_optimizer``, ...), so the GPU benchmark measures the same module with its speed settings.
    """
    from lightning_modules.module import AudioLDMLoRA

    module = AudioLDMLoRA(pretrained_model=str(model_dir),
                          adapters={"unet": {"targets": "paper", "rank": 2, "alpha": 4.0}}, caption_dropout=0.1,
                          **options)
    module.to(device)
    module.train()
    return module


def latent_cache_batch(module: "AudioLDMLoRA", mels: torch.Tensor) -> dict[str, torch.Tensor]:
    """What ``audioldm-lora cache`` computes once per clip: the VAE posterior and the CLAP text embeddings."""
    captions = [PROMPTS[i % len(PROMPTS)] for i in range(mels.shape[0])]
    backbone = module.backbone
    with torch.inference_mode():
        posterior = backbone.posterior(mels)
        stored = backbone.conditioning_for_cache(backbone.encode_prompts(captions))
        return {"latent_mean": posterior.mean.clone(), "latent_logvar": posterior.logvar.clone(),
                **{name: value.to(module.device) for name, value in stored.items()}}


def framework_step(module: "AudioLDMLoRA", batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                   autocast_dtype: torch.dtype | None = None) -> Callable[[], float]:
    """One training step of ``module`` on a latent-cache batch; the forward under autocast when a dtype is given
    (as Lightning's ``bf16-mixed`` does: backward and optimizer step outside it, LoRA weights stay fp32)."""

    def forward_context():
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(module.device.type, dtype=autocast_dtype)

    def step() -> float:
        with forward_context():
            latents, cond = module.batch_latents_and_conditioning(batch)
            drop = torch.rand(latents.shape[0], device=latents.device) < module.hparams.caption_dropout
            loss = module.diffusion_loss(latents, cond, drop)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def framework_step_fn(model_dir: Path, mels: torch.Tensor, device: str | torch.device = "cpu",
                      autocast_dtype: torch.dtype | None = None, **options: Any) -> Callable[[], float]:
    """AudioLDMLoRA on a latent-cache batch: the UNet with LoRA-only gradients is all a step runs."""
    module = framework_module(model_dir, device, **options)
    batch = latent_cache_batch(module, mels)
    module.unconditional()
    optimizer = module.configure_optimizers()["optimizer"]
    return framework_step(module, batch, optimizer, autocast_dtype)


def run_variant(variant: str, steps: int, batch_size: int, duration: float) -> dict:
    """Time one variant in this process; returns seconds per step and peak RSS."""
    torch.manual_seed(0)
    mels = fake_mels(batch_size, duration)
    build = {"authors": authors_step_fn, "framework": framework_step_fn}[variant]
    step = build(ensure_full_size_model(), mels)
    step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "seconds": times, "median": statistics.median(times), "peak_mib": peak_mib}


def table(results: dict[str, dict], batch_size: int, duration: float) -> str:
    authors, framework = results["authors"], results["framework"]
    lines = [
        "| variant | s/step (median) | steps/s | peak RSS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("authors", "authors' loop (VAE + 512-token CLAP every step, get_peft_model)"),
                        ("framework", "this framework (latent cache, LoRA-only gradients)")):
        r = results[name]
        lines.append(f"| {label} | {r['median']:.2f} | {1 / r['median']:.3f} | {r['peak_mib']:.0f} |")
    ratio = authors["median"] / framework["median"]
    lines.append("")
    lines.append(f"Speed-up (steps/s ratio): **{ratio:.2f}x** (target >= 2.5x); batch {batch_size}, {duration} s clips, "
                 f"fp32, LoRA r=2 on to_q/to_v; per-step times: authors {[round(t, 2) for t in authors['seconds']]}, "
                 f"framework {[round(t, 2) for t in framework['seconds']]}.")
    return "\n".join(lines)


def step_bench_arguments(description: str, steps: int, variants: list[str]) -> argparse.Namespace:
    """The command line of a training-step benchmark: steps, clip duration, batch size, --no-doc, and the hidden
    --variant its per-variant processes run with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--duration", type=float, default=10.24)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--variant", choices=variants, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = step_bench_arguments(__doc__.split("\n")[0], 4, ["authors", "framework"])
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.steps, args.batch_size, args.duration)))
        return 0
    ensure_full_size_model()
    started = machine()
    results = variant_results(__file__, ("authors", "framework"), "--steps", str(args.steps), "--duration", str(args.duration),
                              "--batch-size", str(args.batch_size))
    body = table(results, args.batch_size, args.duration)
    print(body)
    if not args.no_doc:
        command = f"python benchmarks/bench_training.py --steps {args.steps} --duration {args.duration} --batch-size {args.batch_size}"
        update_section("bench_training", f"## Training step: framework vs the authors' loop (CPU)\n\n"
                       f"Command: `{command}`  \nMachine: {started}\n\n{body}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
