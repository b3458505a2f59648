"""The command line: the project's tools, and LightningCLI for fit/validate/test/predict.

``audioldm-lora``, ``lightning`` and ``python -m audioldm_lora`` are the same entry point (docs/environment.md,
'The `lightning` command': lightning 2.5.1+ installs no ``lightning`` command, and lightning-sdk also claims
``bin/lightning``). A tool is dispatched before Lightning, torch or diffusers is imported
(:mod:`audioldm_lora.lightning_cli` is imported only for the Lightning subcommands), so that
``audioldm-lora mos --help`` does not pay for them.
"""

from __future__ import annotations

import importlib
import sys
import warnings

# Tool name -> module exposing ``main(argv: list[str]) -> int``; imported only when called (keeps start-up fast).
TOOLS: dict[str, str] = {
    "app": "audioldm_lora.commands.app",
    "build-real-music": "audioldm_demo.commands.build_real_music",
    "build-tiny": "audioldm_demo.commands.build_tiny",
    "build-toy-base": "audioldm_demo.commands.build_toy_base",
    "cache": "audioldm_lora.commands.cache",
    "prepare": "audioldm_lora.commands.prepare",
    "synth-data": "audioldm_demo.commands.synth_data",
    "evaluate": "audioldm_lora.commands.evaluate",
    "mos": "audioldm_lora.commands.mos",
    "generate": "audioldm_lora.commands.generate",
    "merge": "audioldm_lora.commands.merge",
    "model-card": "audioldm_lora.commands.model_card",
    "sweep": "audioldm_lora.commands.sweep",
    "sweep-report": "audioldm_lora.commands.sweep_report",
    "toy-report": "audioldm_demo.commands.toy_report",
}

DESCRIPTION = (
    "LoRA fine-tuning of AudioLDM. Subcommands fit, validate, test, predict take a config "
    "(e.g. `fit --config configs/genre.yaml`). Tools: " + ", ".join(sorted(TOOLS)) + " (`audioldm-lora TOOL --help`)."
)


def main(argv: list[str] | None = None) -> int:
    """Run a tool or the LightningCLI; returns the process exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in TOOLS:
        return int(importlib.import_module(TOOLS[args[0]]).main(args[1:]) or 0)
    # The frozen VAE, text encoder and vocoder are in eval mode on purpose (AudioLDMLoRA.train).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # torchdata's StatefulDataLoader calls a torch API that newer torch deprecates; nothing for a user to act on.
    warnings.filterwarnings("ignore", message=r"'set_vital' is deprecated")
    # LightningCLI reads sys.argv itself; an explicit list is only for calls from Python.
    try:
        from audioldm_lora.lightning_cli import run_cli

        return run_cli(None if argv is None else args)
    finally:
        _finish_wandb_run()


def _finish_wandb_run() -> None:
    """Close the W&B run a subcommand opened: Lightning leaves it open, and the next WandbLogger in the same
    process (a notebook, a test session, a sweep agent) would silently log into it."""
    wandb = sys.modules.get("wandb")  # only when a logger imported it: no import cost otherwise
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
