"""Writes the LoRA adapter every N optimizer steps and when training ends or is stopped, from rank zero only.

Files: ``<run dir>/adapters/<step-N|final>/pytorch_lora_weights.safetensors`` (diffusers' format, loadable with
``unet.load_lora_adapter``) and ``adapter_info.json``.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks.run_dir import run_directory
from callbacks.wandb_logger import wandb_loggers
from lightning_modules.errors import SettingError

log = logging.getLogger(__name__)


def peak_memory_mib() -> float:
    """Peak GPU memory allocated by torch when on CUDA, else the process's peak resident memory (MiB)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AdapterExport(Callback):
    """Periodic and final adapter export."""

    def __init__(
        self,
        every_n_steps: int | None = None,
        dirname: str = "adapters",
        save_final: bool = True,
        log_artifact: bool = True,
    ) -> None:
        """
        Args:
            every_n_steps: write ``step-N`` every N optimizer steps (``None`` or 0: only the final adapter).
            dirname: sub-folder of the run directory that holds the adapters.
            save_final: write ``final`` when training ends.
            log_artifact: upload the final adapter as a W&B artifact (type ``lora-adapter``) when W&B logs the run.
        """
        if every_n_steps is not None and every_n_steps < 0:
            raise SettingError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.dirname = dirname
        self.save_final = save_final
        self.log_artifact = log_artifact
        self.last_written: Path | None = None
        self._last_step = -1
        self._train_started: float | None = None
        self._start_step = 0
        self._final_written = False

    def adapter_root(self, trainer: Trainer) -> Path:
        return run_directory(trainer) / self.dirname

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._train_started = time.perf_counter()
        self._start_step = trainer.global_step

    def _extra_info(self, trainer: Trainer) -> dict[str, Any]:
        datamodule = trainer.datamodule
        seconds = time.perf_counter() - self._train_started if self._train_started is not None else None
        extra: dict[str, Any] = {
            "genres": list(getattr(datamodule, "genres", []) or []),
            "train_seconds": seconds,
            "steps_per_second": (trainer.global_step - self._start_step) / seconds if seconds else None,
            "peak_memory_mib": peak_memory_mib(),
        }
        if datamodule is not None and getattr(datamodule, "hparams", None):
            extra["data_config"] = dict(datamodule.hparams)
        return extra

    def _write(self, trainer: Trainer, pl_module: LightningModule, name: str) -> None:
        # Every rank resolves the directory: trainer.log_dir broadcasts under DDP, so rank zero alone would hang.
        directory = self.adapter_root(trainer) / name
        if not trainer.is_global_zero:
            return
        path = pl_module.save_adapter(directory, trainer.global_step, self._extra_info(trainer))
        self.last_written = path
        rank_zero_info(f"Adapter written to {path}")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        # With gradient accumulation several batches end on the same optimizer step: write once per step.
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self._last_step = step
            self._write(trainer, pl_module, f"step-{step}")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """On SIGTERM Lightning ends the run by raising after a whole optimizer step (never inside one), so the
        weights are a finished step's: write ``final`` as at a normal end. Other exceptions may strike mid-step and
        leave the last periodic adapter as the newest."""
        if self.save_final and isinstance(exception, SIGTERMException):
            self._write(trainer, pl_module, "final")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._final_written = False

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A resume from a checkpoint of a finished run trains nothing and Lightning skips ``on_train_end``; a run
        killed between its last checkpoint and its final adapter still gets ``final`` this way."""
        if self.save_final and not self._final_written and trainer.global_step > 0:
            self._write(trainer, pl_module, "final")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.save_final:
            return
        self._write(trainer, pl_module, "final")
        self._final_written = True
        if self.log_artifact and trainer.is_global_zero and self.last_written is not None:
            for logger in wandb_loggers(trainer):
                import wandb

                artifact = wandb.Artifact(f"lora-adapter-{logger.experiment.id}", type="lora-adapter",
                                          metadata={"global_step": trainer.global_step})
                artifact.add_dir(str(self.last_written))
                logger.experiment.log_artifact(artifact, aliases=["final", f"step-{trainer.global_step}"])
