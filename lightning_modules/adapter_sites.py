"""The adapter-site seam: LoRA attaches to named sub-models of a backbone ("sites"), each with its own settings.

A site is a key of :meth:`lightning_modules.backbone.Backbone.adapter_sites` (``unet`` today; the text-encoder
issue adds ``text_encoder``). Per site an :class:`AdapterSiteConfig` gives targets (a preset of that site, from
:meth:`Backbone.lora_presets`, or module names), rank, alpha, dropout, init, DoRA and rsLoRA. Everything that acts
on adapters goes through this one site-aware path: attaching (:func:`attach_adapters`), the trainable parameters
and their report (:func:`adapter_parameters`, :func:`trainable_counts`), switching them off for the base model
(:func:`adapters_disabled`), health (:func:`site_layers`) and export (:func:`save_adapters`). Loading, mixing and
merging saved adapters is :mod:`lightning_modules.adapters`.

The adapter folder keeps its format: the UNet site is ``pytorch_lora_weights.safetensors`` at the folder's root
(diffusers' ``save_lora_adapter`` format, which plain ``unet.load_lora_adapter`` loads) plus ``adapter_info.json``.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from peft import LoraConfig
from peft.tuners.lora import LoraLayer

from lightning_modules.backbone import Backbone
from lightning_modules.lora import LoraConfigError, LoraInit, add_lora, check_lora_settings, lora_parameters, save_adapter

UNET_SITE = "unet"


@dataclass(frozen=True)
class AdapterSiteConfig:
    """LoRA settings of one site (what the LightningModule's flat ``lora_*`` arguments describe for the UNet)."""

    site: str = UNET_SITE
    targets: str | list[str] = "paper"
    rank: int = 2
    alpha: float = 4.0
    dropout: float = 0.0
    init: LoraInit = "gaussian"
    use_rslora: bool = False
    use_dora: bool = False

    def check(self) -> None:
        """Fail fast, before any model is loaded, on settings no model accepts (naming the site)."""
        try:
            check_lora_settings(self.rank, self.alpha, self.dropout)
        except LoraConfigError as error:
            raise LoraConfigError(f"{self.site} adapter: {error}") from error

    def describe(self) -> dict[str, Any]:
        """The settings as ``adapter_info.json`` records them."""
        return {key: value for key, value in asdict(self).items() if key != "site"}


def _site_module(backbone: Backbone, site: str) -> torch.nn.Module:
    sites = backbone.adapter_sites()
    if site not in sites:
        raise LoraConfigError(
            f"The {backbone.kind} backbone has no adapter site {site!r}; its sites are {sorted(sites)}."
        )
    return sites[site]


def attach_adapters(backbone: Backbone, configs: list[AdapterSiteConfig]) -> dict[str, LoraConfig]:
    """Freeze each configured site and inject its trainable LoRA adapter; returns the peft config per site.

    Raises:
        LoraConfigError: an unknown site, a site configured twice, bad settings or unknown targets.
    """
    if not configs:
        raise LoraConfigError("No adapter site is configured: set the UNet's lora_targets (e.g. paper).")
    seen = [config.site for config in configs]
    if len(set(seen)) != len(seen):
        raise LoraConfigError(f"An adapter site is configured twice: {seen}.")
    attached = {}
    for config in configs:
        config.check()
        module = _site_module(backbone, config.site)
        attached[config.site] = add_lora(
            module, config.rank, config.alpha, config.targets, config.dropout, config.init, config.use_rslora,
            config.use_dora, presets=backbone.lora_presets(config.site), site=config.site,
        )
    return attached


def adapted_sites(backbone: Backbone) -> dict[str, torch.nn.Module]:
    """The sites that carry a LoRA adapter, in the backbone's site order."""
    return {name: module for name, module in backbone.adapter_sites().items() if getattr(module, "peft_config", None)}


def adapter_parameters(backbone: Backbone) -> list[torch.nn.Parameter]:
    """Every trainable LoRA parameter of every adapted site (the only parameters the optimizer sees)."""
    return [p for module in adapted_sites(backbone).values() for p in lora_parameters(module)]


def trainable_counts(backbone: Backbone) -> dict[str, int]:
    """Trainable LoRA parameters per adapted site."""
    return {name: sum(p.numel() for p in lora_parameters(module)) for name, module in adapted_sites(backbone).items()}


def site_layers(backbone: Backbone) -> Iterator[tuple[str, LoraLayer]]:
    """(name, LoRA layer) of every adapted layer; names of sites other than the UNet are prefixed ``site/``."""
    for site, module in adapted_sites(backbone).items():
        prefix = "" if site == UNET_SITE else f"{site}/"
        for name, layer in module.named_modules():
            if isinstance(layer, LoraLayer):
                yield prefix + name, layer


@contextlib.contextmanager
def adapters_disabled(backbone: Backbone) -> Iterator[None]:
    """Run the base model: every site's LoRA layers off inside the block, back on after it (even on error)."""
    sites = list(adapted_sites(backbone).values())
    for module in sites:
        module.disable_adapters()
    try:
        yield
    finally:
        for module in sites:
            module.enable_adapters()


def save_adapters(backbone: Backbone, directory: str | Path, info: dict[str, Any]) -> Path:
    """Write every adapted site into ``directory`` (see the module docstring for the layout) atomically per file.

    Raises:
        FloatingPointError: an adapter holds NaN or inf (nothing is written).
        LoraConfigError: a site this version cannot export.
    """
    sites = adapted_sites(backbone)
    unsupported = sorted(set(sites) - {UNET_SITE})
    if unsupported:
        raise LoraConfigError(f"Exporting adapters of the site(s) {unsupported} is not supported by this version.")
    return save_adapter(sites[UNET_SITE], directory, info)
