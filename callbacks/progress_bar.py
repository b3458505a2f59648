"""Lightning's rich progress bar without two misleading fields of step-based runs.

For a run bounded by ``max_steps`` (``max_epochs: -1``, every recipe here) Lightning's bar reads "Epoch 2/-2" and
shows the logger's version as a metric ("v_num: 0.000"). This bar says "Epoch 2" there (the run's step count is
``trainer/global_step`` in the logs) and drops ``v_num`` (the way Lightning's documentation customises
``get_metrics``).
"""

from __future__ import annotations

from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """:class:`~lightning.pytorch.callbacks.RichProgressBar` without a negative epoch bound or ``v_num``."""

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the logger's version number is no metric
        return metrics

    def _get_train_description(self, current_epoch: int) -> str:
        """Lightning's hook for the bar's label (it prints ``max_epochs - 1``, i.e. -2 for an unbounded run)."""
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            label = f"Epoch {current_epoch}/{trainer.max_epochs - 1}"
        else:
            label = f"Epoch {current_epoch}"
        return f"{label:{len(self.validation_description)}}"
