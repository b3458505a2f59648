"""Logs the size of the LoRA update, ||scale * B A|| per layer and in total, so a user sees the adapter act.

An adapter with no effect (a zero or vanishing update) is a common complaint about LoRA trainers; the norm makes it
visible from the first steps. The update comes from peft's own ``get_delta_weight``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from peft.tuners.lora import LoraLayer

from lightning_modules.adapter_files import ROOT_SITE
from lightning_modules.adapter_sites import site_layers
from lightning_modules.errors import SettingError


@torch.no_grad()
def lora_update_norms(layers: Iterable[tuple[str, LoraLayer]]) -> dict[str, float]:
    """Frobenius norm of every LoRA layer's weight update (scale included), by layer name."""
    norms = {}
    for name, layer in layers:
        for adapter in layer.active_adapters:
            if adapter in layer.lora_A:
                norms[name] = float(layer.get_delta_weight(adapter).float().norm())
    return norms


def site_totals(norms: dict[str, float]) -> dict[str, float]:
    """Total update norm per site (layer names of sites other than the UNet start with ``<site>/``:
    :func:`lightning_modules.adapter_sites.site_layers`)."""
    squares: dict[str, float] = {}
    for name, value in norms.items():
        site = name.split("/", 1)[0] if "/" in name else ROOT_SITE
        squares[site] = squares.get(site, 0.0) + value * value
    return {site: math.sqrt(total) for site, total in squares.items()}


class AdapterHealth(Callback):
    """Every ``every_n_steps`` steps: ``lora/update_norm_total``, ``_mean``, ``_max`` over every adapted layer, with
    two or more sites also ``lora/update_norm_total/<site>`` (``unet``, ``text_encoder``), and per layer if asked."""

    def __init__(self, every_n_steps: int = 50, per_layer: bool = False) -> None:
        """
        Args:
            every_n_steps: logging period in optimizer steps.
            per_layer: also log ``lora/update_norm/<layer>`` for every adapted layer of every site (many series).
        """
        if every_n_steps < 1:
            raise SettingError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.per_layer = per_layer
        self.last: dict[str, float] = {}

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        norms = lora_update_norms(site_layers(pl_module.backbone))
        if not norms:
            return
        values = list(norms.values())
        summary = {
            "lora/update_norm_total": math.sqrt(sum(v * v for v in values)),
            "lora/update_norm_mean": sum(values) / len(values),
            "lora/update_norm_max": max(values),
        }
        totals = site_totals(norms)
        if len(totals) > 1:
            summary.update({f"lora/update_norm_total/{site}": value for site, value in totals.items()})
        if self.per_layer:
            summary.update({f"lora/update_norm/{name}": value for name, value in norms.items()})
        self.last = summary
        for logger in trainer.loggers:
            logger.log_metrics(summary, step=trainer.global_step)
