"""Benchmark on a CUDA GPU: the framework's fast LoRA training step against the authors' loop, and a VRAM table.

    python benchmarks/bench_gpu.py --compile --out "$OUT/bench_gpu.md"     # the GPU run (estimated 4-6 min on an H200)
    python benchmarks/bench_gpu.py --merge FILE                             # copy that section into docs/benchmarks.md
    python benchmarks/bench_gpu.py --device cpu --tiny --out /tmp/x.md --steps 1   # dry run of every code path

A GPU machine without this checkout's ``../shared`` needs ``--configs`` pointing at a copy of
``audioldm_configs/audioldm-s-full-v2`` inside the checkout (e.g. under the ignored ``.cache/``), and the packages
that its image lacks (diffusers, soundfile with cffi and pycparser, webdataset with braceexpand) on ``PYTHONPATH``.

Usage: ``python benchmarks/bench_gpu.py [--steps 5] [--warmup 2] [--compile] [--no-vram] [--peak-tflops X]
[--device cuda|cpu] [--tiny] [--out FILE] [--no-doc] [--configs DIR] [--merge FILE]``.

On the random-initialised full-size AudioLDM-s of ``benchmarks/bench_training.py`` (built once into
``.cache/bench/audioldm-s-random`` from ``--configs``, by default ``../shared/audioldm_configs/audioldm-s-full-v2``),
batch 8, 10.24 s clips, LoRA r=2 alpha 4 on to_q/to_v, AdamW, four variants run one after the other in this process:

- (a) ``authors``: the paper's loop in fp32 (VAE encoder and 512-token CLAP text encoder every step, peft
  ``get_peft_model``), as bench_training reimplements it;
- (b) ``framework_fp32``: ``AudioLDMLoRA`` on latent-cache batches, fp32, plain AdamW;
- (c) ``framework_bf16``: the same under ``torch.autocast(bfloat16)`` (LoRA weights fp32, frozen VAE/CLAP/vocoder
  bf16), diffusers' SDPA attention processor (asserted), channels-last UNet, fused AdamW;
- (d) ``framework_bf16_compile`` (with ``--compile``): (c) with ``torch.compile`` of the UNet.

Each reports samples/s (median step time over ``--steps`` timed steps after ``--warmup`` steps, synchronised), peak
memory of the steps (``torch.cuda.max_memory_allocated``, reset per variant), the FLOPs of one training step
(``torch.utils.flop_counter.FlopCounterMode``; (d) reuses (c)'s count, the same computation), MFU (achieved FLOP/s over
the device's dense bf16 peak, from a table of GPU names or ``--peak-tflops``) and the speed-up over (a). Then the
VRAM table of the fastest eager framework setting: batch {1, 2, 4, 8} x clip {4.0, 10.24, 30.72} s x gradient
checkpointing {off, on}, peak GiB per cell or ``OOM``. (d) runs last, so that a slow compile cannot cost the rest:
the section is rewritten after every phase.

Output: the markdown section ``bench_gpu`` (printed; written to docs/benchmarks.md, or to ``--out`` instead, which
also gets the raw numbers as ``FILE.json``; ``--no-doc`` prints only). Without a CUDA device the script prints one
line and exits 0 (``make bench`` on a CPU machine). ``--device cpu --tiny`` is a dry run on the offline tiny model
(built in a temporary directory): 1 warm-up and ``--steps`` steps at batch 8 of 0.64 s clips, a VRAM grid of batch
{1, 2} x 0.64 s x checkpointing {off, on}, CPU peak RSS instead of CUDA memory, bf16 autocast on the CPU, and MFU
against a nominal 1 TFLOP/s (or ``--peak-tflops``); it never writes docs/benchmarks.md, only ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_training import (  # noqa: E402
    authors_step_fn,
    ensure_full_size_model,
    fake_mels,
    framework_module,
    framework_step,
    latent_cache_batch,
)
from benchmarks.report import DOC, machine, read_section, update_section  # noqa: E402

if TYPE_CHECKING:
    from lightning_modules.module import AudioLDMLoRA

SECTION = "bench_gpu"
BATCH_SIZE = 8
DURATION = 10.24
TINY_DURATION = 0.64
VRAM_BATCHES = (1, 2, 4, 8)
VRAM_DURATIONS = (4.0, 10.24, 30.72)
TINY_VRAM_BATCHES = (1, 2)
TINY_VRAM_DURATIONS = (TINY_DURATION,)
VRAM_STEPS = 2  # the first step creates the optimizer state; the second is a steady one
SPEEDUP_TARGET = 3.0
COMPILE_WARMUP = 3  # the compiled variant's least warm-up: compiling forward and backward, and any recompilation
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, matched as substrings of the device name
# in this order (the more specific names first).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
CPU_PEAK_TFLOPS = 1.0  # nominal: MFU in the CPU dry run only exercises the code
NEEDS_GPU = ("bench_gpu: needs a CUDA GPU and found none; skipped (dry run on the CPU: "
             "python benchmarks/bench_gpu.py --device cpu --tiny --out FILE).")


@dataclass(frozen=True)
class Variant:
    """One row of the speed table: which loop, and which speed settings of the framework."""

    key: str
    label: str
    loop: str  # "authors" or "framework"
    bf16: bool = False  # autocast bf16, frozen parts bf16, channels-last UNet, fused AdamW (fused on CUDA only)
    compile: bool = False

    def module_options(self) -> dict[str, Any]:
        """``AudioLDMLoRA`` keyword arguments of this variant."""
        if not self.bf16:
            return {"frozen_dtype": "float32", "channels_last": False, "fused_optimizer": False}
        return {"frozen_dtype": "bfloat16", "channels_last": True, "fused_optimizer": None}

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.bf16 else None


AUTHORS = Variant("authors", "(a) authors' loop, fp32 (VAE + 512-token CLAP every step, get_peft_model)", "authors")
FRAMEWORK_FP32 = Variant("framework_fp32", "(b) framework fp32 (latent cache, LoRA-only gradients)", "framework")
FRAMEWORK_BF16 = Variant("framework_bf16", "(c) framework bf16 autocast + SDPA + channels_last + fused AdamW",
                         "framework", bf16=True)
FRAMEWORK_COMPILE = Variant("framework_bf16_compile", "(d) framework bf16, as (c) + torch.compile(UNet)", "framework",
                            bf16=True, compile=True)


@dataclass(frozen=True)
class Setup:
    """What one invocation measures, derived from the command line."""

    device: torch.device
    tiny: bool
    steps: int
    warmup: int
    compile: bool
    vram: bool
    peak_tflops: float | None
    peak_source: str
    command: str

    @property
    def duration(self) -> float:
        return TINY_DURATION if self.tiny else DURATION

    @property
    def vram_batches(self) -> tuple[int, ...]:
        return TINY_VRAM_BATCHES if self.tiny else VRAM_BATCHES

    @property
    def vram_durations(self) -> tuple[float, ...]:
        return TINY_VRAM_DURATIONS if self.tiny else VRAM_DURATIONS


# ------------------------------------------------------------------------------------------------ the device
def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    """Drop unreachable objects and hand cached CUDA blocks back, so the next measurement starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class PeakMemory:
    """Peak memory since the last ``reset``: CUDA's allocator peak, or on the CPU the process's peak resident set.

    On Linux the CPU peak (VmHWM) is reset through ``/proc/self/clear_refs``; where that fails it is the peak of the
    whole process so far (``getrusage``), which only ever overstates later variants.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.label = "peak CUDA memory (GiB)" if device.type == "cuda" else "peak RSS (GiB)"

    def reset(self) -> None:
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_gib(self) -> float:
        synchronize(self.device)
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """The device's dense bf16 peak in TFLOP/s and where the figure comes from (``None`` when unknown)."""
    if override is not None:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return CPU_PEAK_TFLOPS, "a nominal CPU figure; in the dry run the MFU only exercises the code"
    name = torch.cuda.get_device_name(device)
    known = peak_for_name(name)
    if known is None:
        return None, f"unknown for {name}: pass --peak-tflops"
    return known[1], f"dense bf16 peak of the {known[0]} (datasheet)"


def peak_for_name(name: str) -> tuple[str, float] | None:
    """(table key, dense bf16 TFLOP/s) of the first ``PEAK_BF16_TFLOPS`` entry whose key is in the device name."""
    return next(((key, tflops) for key, tflops in PEAK_BF16_TFLOPS if key.lower() in name.lower()), None)


def driver_version() -> str:
    """The NVIDIA driver version (NVML, else nvidia-smi, else /proc), or ``unknown``."""
    with contextlib.suppress(Exception):
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    with contextlib.suppress(Exception):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
        return out.stdout.strip().splitlines()[0]
    with contextlib.suppress(Exception):
        match = re.search(r"Kernel Module\s+(\S+)", Path("/proc/driver/nvidia/version").read_text())
        if match:
            return match.group(1)
    return "unknown"


def machine_line(device: torch.device) -> str:
    """GPU name, memory, driver, CUDA and library versions, then the host line of the other benchmarks."""
    import diffusers

    versions = f"torch {torch.__version__}, diffusers {diffusers.__version__}"
    if device.type != "cuda":
        return f"CPU dry run; {versions}, {torch.get_num_threads()} threads; {machine()}"
    props = torch.cuda.get_device_properties(device)
    return (f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs), driver "
            f"{driver_version()}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, {versions}; "
            f"host: {machine()}")


# ----------------------------------------------------------------------------------------------- measuring
def count_flops(step: Callable[[], float]) -> int:
    """FLOPs of one call of ``step`` (forward and backward as executed; elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def time_steps(step: Callable[[], float], device: torch.device, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls after ``warmup`` untimed ones, each synchronised on both ends."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def check_sdpa(unet: torch.nn.Module) -> str:
    """Assert that every attention layer of the UNet runs diffusers' SDPA processor (AttnProcessor2_0)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    processors = unet.attn_processors
    others = sorted({type(p).__name__ for p in processors.values() if not isinstance(p, AttnProcessor2_0)})
    if not processors or others:
        raise AssertionError(f"Expected AttnProcessor2_0 (SDPA) in every attention layer, found {others or 'none'}.")
    return "AttnProcessor2_0"


def build_step(variant: Variant, model_dir: Path, mels: torch.Tensor,
               device: torch.device) -> tuple[Callable[[], float], dict[str, Any]]:
    """The training-step closure of ``variant`` and what it runs with (attention processor, fused optimizer)."""
    if variant.loop == "authors":
        return authors_step_fn(model_dir, mels, device), {"attention": "diffusers default", "fused_adamw": False}
    module = framework_module(model_dir, device, **variant.module_options())
    attention = check_sdpa(module.unet)
    batch = latent_cache_batch(module, mels)
    module.unconditional()
    optimizer = module.configure_optimizers()["optimizer"]
    if variant.compile:
        module.unet.compile()
    info = {"attention": attention, "fused_adamw": bool(optimizer.defaults.get("fused")),
            "channels_last": bool(module.hparams.channels_last), "frozen_dtype": module.hparams.frozen_dtype}
    return framework_step(module, batch, optimizer, variant.autocast_dtype), info


def run_variant(variant: Variant, model_dir: Path, setup: Setup, flops: int | None = None) -> dict[str, Any]:
    """Build, count FLOPs (unless given), warm up and time one variant; its memory is released afterwards."""
    release(setup.device)
    memory = PeakMemory(setup.device)
    torch.manual_seed(0)
    started = time.perf_counter()
    step, info = build_step(variant, model_dir, fake_mels(BATCH_SIZE, setup.duration), setup.device)
    memory.reset()
    if flops is None:
        flops = count_flops(step)
    warmup = max(setup.warmup, COMPILE_WARMUP) if variant.compile else setup.warmup
    times = time_steps(step, setup.device, warmup, setup.steps)
    peak = memory.peak_gib()
    del step
    release(setup.device)
    median = statistics.median(times)
    return {"variant": variant.key, "label": variant.label, **info, "seconds": times, "median_s": median,
            "samples_per_s": BATCH_SIZE / median, "peak_gib": peak, "flops_per_step": flops,
            "wall_s": time.perf_counter() - started}


def vram_cell(module: AudioLDMLoRA, batch_size: int, duration: float, variant: Variant,
              memory: PeakMemory) -> float | None:
    """Peak GiB of ``VRAM_STEPS`` training steps at one batch size and clip length; ``None`` when CUDA runs out."""
    device = module.device
    try:
        mels = fake_mels(batch_size, duration)
        # One clip at a time: the one-off cache computation must not set the peak of a large cell.
        parts = [latent_cache_batch(module, mels[i:i + 1]) for i in range(batch_size)]
        batch = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
        del parts
        step = framework_step(module, batch, module.configure_optimizers()["optimizer"], variant.autocast_dtype)
        release(device)
        memory.reset()
        for _ in range(VRAM_STEPS):
            step()
        return memory.peak_gib()
    except torch.cuda.OutOfMemoryError:
        pass  # handled below, once the exception (and the tensors its frames hold) is gone
    finally:
        for parameter in module.parameters():
            parameter.grad = None
        release(device)
    return None


def vram_grid(model_dir: Path, variant: Variant, setup: Setup,
              progress: Callable[[str], None]) -> dict[str, float | None]:
    """Peak GiB for every (batch, clip, checkpointing) cell, keyed ``"batch|duration|ckpt"``; None for OOM."""
    grid: dict[str, float | None] = {}
    memory = PeakMemory(setup.device)
    for checkpointing in (False, True):
        release(setup.device)
        module = framework_module(model_dir, setup.device, gradient_checkpointing=checkpointing,
                                  **variant.module_options())
        module.unconditional()
        for duration in setup.vram_durations:
            for batch_size in setup.vram_batches:
                torch.manual_seed(0)
                peak = vram_cell(module, batch_size, duration, variant, memory)
                grid[cell_key(batch_size, duration, checkpointing)] = peak
                progress(f"VRAM batch {batch_size}, {duration} s, checkpointing {checkpointing}: "
                         f"{'OOM' if peak is None else f'{peak:.2f} GiB'}")
        del module
    release(setup.device)
    return grid


def cell_key(batch_size: int, duration: float, checkpointing: bool) -> str:
    return f"{batch_size}|{duration}|{int(checkpointing)}"


# ------------------------------------------------------------------------------------------------ reporting
def mfu(result: dict[str, Any], peak: float | None) -> float | None:
    """Model FLOP utilisation: the step's FLOPs per second over the peak (``None`` without a peak)."""
    if peak is None or not result.get("flops_per_step"):
        return None
    return result["flops_per_step"] / result["median_s"] / (peak * 1e12)


def variants_table(results: list[dict[str, Any]], setup: Setup, memory_label: str) -> str:
    """The speed table: one row per variant measured so far."""
    baseline = next((r for r in results if r["variant"] == AUTHORS.key), None)
    lines = [f"| variant | samples/s | s/step (median) | {memory_label} | GFLOP/step | MFU | vs (a) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        utilisation = mfu(r, setup.peak_tflops)
        ratio = r["samples_per_s"] / baseline["samples_per_s"] if baseline else None
        mfu_text = "n/a" if utilisation is None else f"{100 * utilisation:.1f}%"
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| {r['label']} | {r['samples_per_s']:.2f} | {r['median_s']:.4f} | {r['peak_gib']:.2f} | "
                     f"{r['flops_per_step'] / 1e9:.1f} | {mfu_text} | {ratio_text} |")
    return "\n".join(lines)


def speedup_line(results: list[dict[str, Any]]) -> str:
    """The best framework variant against the authors' loop, and whether it meets the target."""
    baseline = next((r for r in results if r["variant"] == AUTHORS.key), None)
    framework = [r for r in results if r["variant"] != AUTHORS.key]
    if baseline is None or not framework:
        return ""
    best = max(framework, key=lambda r: r["samples_per_s"])
    ratio = best["samples_per_s"] / baseline["samples_per_s"]
    verdict = "met" if ratio >= SPEEDUP_TARGET else "NOT met"
    return (f"Best framework setting {best['label'].split(' ', 1)[0]}: **{ratio:.2f}x** the authors' samples/s "
            f"(target >= {SPEEDUP_TARGET:.0f}x: {verdict}).")


def settings_line(results: list[dict[str, Any]]) -> str:
    """What each framework variant was seen to run with (so a row's label is checked, not assumed)."""
    seen = [f"{r['label'].split(' ', 1)[0]} attention {r['attention']}, fused AdamW {r['fused_adamw']}, "
            f"channels_last {r['channels_last']}, frozen parts {r['frozen_dtype']}"
            for r in results if r["variant"] != AUTHORS.key]
    return ("Checked at run time: " + "; ".join(seen) + ".") if seen else ""


def vram_table(grid: dict[str, float | None], setup: Setup) -> str:
    """Peak GiB by batch size and clip length, without and with gradient checkpointing."""
    lines = ["| batch | clip (s) | peak GiB, no checkpointing | peak GiB, gradient checkpointing |",
             "|---:|---:|---:|---:|"]

    def cell(value: float | None) -> str:
        return "OOM" if value is None else f"{value:.2f}"

    for duration in setup.vram_durations:
        for batch_size in setup.vram_batches:
            off, on = (grid.get(cell_key(batch_size, duration, ckpt), "-") for ckpt in (False, True))
            lines.append(f"| {batch_size} | {duration} | {off if off == '-' else cell(off)} | "
                         f"{on if on == '-' else cell(on)} |")
    return "\n".join(lines)


def render(setup: Setup, machine_text: str, results: list[dict[str, Any]], grid: dict[str, float | None] | None,
           grid_variant: Variant | None, pending: list[str]) -> str:
    """The whole ``bench_gpu`` section from what has been measured so far."""
    memory_label = PeakMemory(setup.device).label
    title = ("## GPU training step: framework vs the authors' loop, and VRAM" if not setup.tiny else
             "## GPU training step (dry run: tiny model on the CPU; exercises the code, the numbers mean nothing)")
    peak = "n/a" if setup.peak_tflops is None else f"{setup.peak_tflops:g} TFLOP/s"
    parts = [
        title, "",
        f"Command: `{setup.command}`  ",
        f"Machine: {machine_text}  ",
        f"Workload: batch {BATCH_SIZE}, {setup.duration} s clips, LoRA r=2 alpha 4 on to_q/to_v, AdamW; "
        f"{setup.warmup} warm-up and {setup.steps} timed step(s) per variant (median, synchronised). fp32 rows run "
        f"with PyTorch's defaults (TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN TF32 "
        f"{torch.backends.cudnn.allow_tf32}). MFU: FLOPs of one training step as executed "
        "(torch.utils.flop_counter; the authors' row includes its VAE and text encoder, (d) reuses (c)'s count "
        f"and warms up {COMPILE_WARMUP} steps at least) "
        f"over the median step time, against {peak} ({setup.peak_source}) for every row.",
        "",
        variants_table(results, setup, memory_label) if results else "(no variant finished)",
    ]
    line = speedup_line(results)
    if line:
        parts += ["", line]
    checked = settings_line(results)
    if checked:
        parts += ["", checked]
    if grid is not None and grid_variant is not None:
        heading = "VRAM" if setup.device.type == "cuda" else "Peak RSS (CPU dry run)"
        parts += ["", f"### {heading} of a training step by batch, clip length and gradient checkpointing", "",
                  f"Setting {grid_variant.label.split(' ', 1)[0]} (the fastest eager framework setting above), "
                  f"{VRAM_STEPS} steps per cell (the first creates the optimizer state); `OOM`: out of memory.", "",
                  vram_table(grid, setup)]
    if pending:
        parts += ["", f"Not run or not finished: {', '.join(pending)}."]
    return "\n".join(parts) + "\n"


def merge_section(source: Path, doc: Path = DOC) -> Path:
    """Copy the ``bench_gpu`` section of ``source`` (a file a GPU run wrote with ``--out``) into ``doc``."""
    body = read_section(SECTION, source)
    if body is None:
        raise SystemExit(f"{source} has no {SECTION} section.")
    return update_section(SECTION, body, doc)


# --------------------------------------------------------------------------------------------------- driver
@contextlib.contextmanager
def model_directory(tiny: bool, configs: Path | None) -> Iterator[Path]:
    """The tiny offline model in a temporary directory, or the full-size random AudioLDM-s (built once)."""
    if not tiny:
        yield ensure_full_size_model(configs)
        return
    from audioldm_demo.tiny import build_tiny_audioldm

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        yield build_tiny_audioldm(Path(tmp) / "tiny-audioldm")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (default 2 on CUDA, 1 on the CPU)")
    parser.add_argument("--compile", action="store_true", help="also run (d): (c) with torch.compile of the UNet")
    parser.add_argument("--no-vram", action="store_true", help="skip the VRAM table")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the offline tiny model instead of full-size AudioLDM-s")
    parser.add_argument("--out", type=Path, help="write the section (and FILE.json) here instead of docs/benchmarks.md")
    parser.add_argument("--no-doc", action="store_true", help="print only; write no file")
    parser.add_argument("--configs", type=Path, help="AudioLDM-s configuration folder (default ../shared/...)")
    parser.add_argument("--merge", type=Path, help="copy the bench_gpu section of this file into docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.device == "cpu" and not args.tiny:
        parser.error("--device cpu runs only the dry run on the tiny model: add --tiny.")
    return args


def make_setup(args: argparse.Namespace, device: torch.device, argv: list[str]) -> Setup:
    peak, source = peak_tflops(device, args.peak_tflops)
    warmup = args.warmup if args.warmup is not None else (2 if device.type == "cuda" else 1)
    command = shlex.join(["python", "benchmarks/bench_gpu.py", *argv])
    return Setup(device=device, tiny=args.tiny, steps=args.steps, warmup=warmup, compile=args.compile,
                 vram=not args.no_vram, peak_tflops=peak, peak_source=source, command=command)


def output_file(args: argparse.Namespace) -> Path | None:
    """Where the section goes: ``--out``, else docs/benchmarks.md for a full-size run; nowhere with ``--no-doc``."""
    if args.no_doc:
        return None
    if args.out is not None:
        return args.out
    return None if args.tiny else DOC


def quiet_libraries() -> None:
    """No progress bars or load-time warnings from diffusers and transformers: the GPU run's output stays short."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    warnings.filterwarnings("ignore", message=r"Dynamo detected a call to a `functools.lru_cache`")


def progress(message: str) -> None:
    print(f"[bench_gpu {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(setup: Setup, model_dir: Path, target: Path | None) -> str:
    """Measure every phase in turn, rewriting the section after each; returns the final section."""
    machine_text = machine_line(setup.device)
    variants = [AUTHORS, FRAMEWORK_FP32, FRAMEWORK_BF16]
    pending = [v.key for v in variants] + (["vram"] if setup.vram else []) + ([FRAMEWORK_COMPILE.key]
                                                                                if setup.compile else [])
    results: list[dict[str, Any]] = []
    grid: dict[str, float | None] | None = None
    grid_variant: Variant | None = None

    def publish() -> str:
        body = render(setup, machine_text, results, grid, grid_variant, pending)
        if target is not None:
            update_section(SECTION, body, target)
            if target != DOC:
                raw = {"setup": {k: str(v) for k, v in asdict(setup).items()}, "machine": machine_text,
                       "results": results, "vram": grid, "vram_variant": grid_variant and grid_variant.key}
                target.with_name(target.name + ".json").write_text(json.dumps(raw, indent=1))
        return body

    for variant in variants:
        progress(f"{variant.key} ...")
        results.append(run_variant(variant, model_dir, setup))
        pending.remove(variant.key)
        r = results[-1]
        progress(f"{variant.key}: {r['samples_per_s']:.2f} samples/s, {r['peak_gib']:.2f} GiB, "
                 f"{r['flops_per_step'] / 1e9:.1f} GFLOP/step, {r['wall_s']:.0f} s in all")
        publish()
    if setup.vram:
        eager = {r["variant"]: r for r in results}
        grid_variant = max((FRAMEWORK_FP32, FRAMEWORK_BF16), key=lambda v: eager[v.key]["samples_per_s"])
        progress(f"VRAM table with {grid_variant.key} ...")
        grid = vram_grid(model_dir, grid_variant, setup, progress)
        pending.remove("vram")
        publish()
    if setup.compile:
        progress(f"{FRAMEWORK_COMPILE.key} (compiling the UNet) ...")
        bf16 = next(r for r in results if r["variant"] == FRAMEWORK_BF16.key)
        results.append(run_variant(FRAMEWORK_COMPILE, model_dir, setup, flops=bf16["flops_per_step"]))
        pending.remove(FRAMEWORK_COMPILE.key)
        progress(f"{FRAMEWORK_COMPILE.key}: {results[-1]['samples_per_s']:.2f} samples/s, "
                 f"{results[-1]['wall_s']:.0f} s in all")
    return publish()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.merge is not None:
        print(f"bench_gpu: merged {args.merge} into {merge_section(args.merge)}")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NEEDS_GPU)
        return 0
    device = torch.device(args.device)
    setup = make_setup(args, device, argv)
    target = output_file(args)
    quiet_libraries()
    started = time.perf_counter()
    with model_directory(args.tiny, args.configs) as model_dir:
        progress(f"model ready in {time.perf_counter() - started:.0f} s: {model_dir}")
        body = run(setup, model_dir, target)
    print(body)
    progress(f"done in {time.perf_counter() - started:.0f} s" + (f"; wrote {target}" if target else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
