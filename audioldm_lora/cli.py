"""The command line: LightningCLI for fit/validate/test/predict, plus the project's tools.

``audioldm-lora``, ``lightning`` and ``python -m audioldm_lora`` are the same entry point (DESIGN.md section 5:
lightning 2.5.1+ installs no ``lightning`` command, and lightning-sdk also claims ``bin/lightning``).
"""

from __future__ import annotations

import importlib
import sys
import warnings

from typing import Any

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO

from callbacks.adapter_export import AdapterExport
from callbacks.checkpoint_io import AtomicCheckpointIO

# Tool name -> module exposing ``main(argv: list[str]) -> int``; imported only when called (keeps start-up fast).
TOOLS: dict[str, str] = {
    "build-tiny": "audioldm_lora.commands.build_tiny",
    "build-toy-base": "audioldm_lora.commands.build_toy_base",
    "cache": "audioldm_lora.commands.cache",
    "prepare": "audioldm_lora.commands.prepare",
    "synth-data": "audioldm_lora.commands.synth_data",
    "evaluate": "audioldm_lora.commands.evaluate",
    "mos": "audioldm_lora.commands.mos",
    "generate": "audioldm_lora.commands.generate",
    "merge": "audioldm_lora.commands.merge",
    "model-card": "audioldm_lora.commands.model_card",
    "sweep": "audioldm_lora.commands.sweep",
    "sweep-report": "audioldm_lora.commands.sweep_report",
    "toy-report": "audioldm_lora.commands.toy_report",
}

DESCRIPTION = (
    "LoRA fine-tuning of AudioLDM. Subcommands fit, validate, test, predict take a config "
    "(e.g. `fit --config configs/genre.yaml`). Tools: " + ", ".join(sorted(TOOLS)) + " (`audioldm-lora TOOL --help`)."
)


class AudioLDMLoRACLI(LightningCLI):
    """LightningCLI with adapter export always present (``--adapter_export.every_n_steps``) and atomic checkpoint
    writes (:class:`callbacks.checkpoint_io.AtomicCheckpointIO`, unless ``trainer.plugins`` names a CheckpointIO)."""

    def add_arguments_to_parser(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_lightning_class_args(AdapterExport, "adapter_export")

    def before_instantiate_classes(self) -> None:
        # Checkpoints hold only tensors and plain types: load them with weights_only=True whatever torch's default
        # (False before torch 2.6), so an untrusted .ckpt cannot run code; `--weights_only=false` opts out.
        config = self.config.get(str(self.subcommand), self.config) if self.subcommand else self.config
        if "weights_only" in config and config["weights_only"] is None:
            config["weights_only"] = True

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        plugins = kwargs.pop("plugins", None) or self._get(self.config_init, "trainer", default={}).get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(AtomicCheckpointIO())
        return super().instantiate_trainer(plugins=plugins, **kwargs)


def build_cli(args: list[str] | None = None, run: bool = True) -> AudioLDMLoRACLI:
    """The LightningCLI over any LightningModule/DataModule subclass (``class_path`` in the config).

    ``args=None`` reads ``sys.argv``; a list is for calls from Python (tests, notebooks).
    """
    return AudioLDMLoRACLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"parser_mode": "omegaconf", "description": DESCRIPTION},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> int:
    """Run a tool or the LightningCLI; returns the process exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in TOOLS:
        return int(importlib.import_module(TOOLS[args[0]]).main(args[1:]) or 0)
    # The frozen VAE, text encoder and vocoder are in eval mode on purpose (AudioLDMLoRA.train).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # LightningCLI reads sys.argv itself; an explicit list is only for calls from Python.
    try:
        build_cli(None if argv is None else args)
    finally:
        _finish_wandb_run()
    return 0


def _finish_wandb_run() -> None:
    """Close the W&B run a subcommand opened: Lightning leaves it open, and the next WandbLogger in the same
    process (a notebook, a test session, a sweep agent) would silently log into it."""
    wandb = sys.modules.get("wandb")  # only when a logger imported it: no import cost otherwise
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
