"""The adapter-site seam: LoRA attaches to named sub-models of a backbone ("sites"), each with its own settings.

A site is a key of :meth:`lightning_modules.backbone.Backbone.adapter_sites` (AudioLDM: ``unet`` and
``text_encoder``). Per site an :class:`AdapterSiteConfig` gives targets (a preset of that site, from
:meth:`Backbone.lora_presets`, or module names), rank, alpha, dropout, init, DoRA and rsLoRA. Everything that acts
on adapters goes through this one site-aware path: attaching (:func:`attach_adapters`), the trainable parameters
and their report (:func:`adapter_parameters`, :func:`trainable_counts`), switching them off for the base model
(:func:`adapters_disabled`), health (:func:`site_layers`), ``adapter_info.json`` (:func:`describe_sites`) and export
(:func:`save_adapters`). Loading, mixing and merging saved adapters is :mod:`lightning_modules.adapters`.

The adapter folder holds every adapted site in the format the backbone gives it (:meth:`Backbone.adapter_format`):
a UNet with diffusers' adapter methods as ``pytorch_lora_weights.safetensors`` at the folder's root (diffusers'
``save_lora_adapter`` format, which plain ``unet.load_lora_adapter`` loads), every other site a sub-folder named
after it in peft's ``save_pretrained`` format (:mod:`lightning_modules.peft_files`), plus ``adapter_info.json``
(docs/adapters.md).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import torch
from diffusers.utils.peft_utils import set_adapter_layers
from peft import LoraConfig
from peft.tuners.lora import LoraLayer

from datamodules.atomic_files import staged_directory
from lightning_modules.adapter_files import ADAPTER_INFO, DIFFUSERS_FORMAT, ROOT_SITE
from lightning_modules.backbone import Backbone
from lightning_modules.lora import (
    LoraConfigError,
    LoraInit,
    add_lora,
    check_finite,
    check_lora_settings,
    lora_parameters,
    write_diffusers_adapter,
)
from lightning_modules.peft_files import write_peft_adapter

UNET_SITE = ROOT_SITE
TEXT_ENCODER_SITE = "text_encoder"
NO_TARGETS = "none"
"""The targets value that turns a site off (``lora_targets: none``; ``null`` does the same)."""


@dataclass(frozen=True)
class AdapterSiteConfig:
    """LoRA settings of one site (what the LightningModule's ``lora_*`` / ``text_encoder_lora_*`` arguments say).

    ``setting`` is the prefix of the site's arguments (``lora``, ``text_encoder_lora``): errors name the setting to
    change, ``model.init_args.<setting>_targets``.
    """

    site: str = UNET_SITE
    targets: str | list[str] | None = "paper"
    rank: int = 2
    alpha: float = 4.0
    dropout: float = 0.0
    init: LoraInit = "gaussian"
    use_rslora: bool = False
    use_dora: bool = False
    setting: str = "lora"

    @property
    def enabled(self) -> bool:
        """Whether the site gets an adapter (targets neither ``None`` nor ``none``)."""
        return self.targets is not None and self.targets != NO_TARGETS

    def check(self) -> None:
        """Fail fast, before any model is loaded, on settings no model accepts (naming the site)."""
        try:
            check_lora_settings(self.rank, self.alpha, self.dropout)
        except LoraConfigError as error:
            raise LoraConfigError(f"{self.site} adapter: {error} (model.init_args.{self.setting}_*)") from None

    def for_site(self, site: str, targets: str | list[str] | None, setting: str, **settings: Any) -> "AdapterSiteConfig":
        """The config of another site: ``settings`` given as ``None`` are this site's (the text encoder's rank,
        alpha, ... default to the UNet's)."""
        given = {key: value for key, value in settings.items() if value is not None}
        return replace(self, site=site, targets=targets, setting=setting, **given)

    def describe(self) -> dict[str, Any]:
        """The settings as ``adapter_info.json`` records them."""
        return {key: value for key, value in asdict(self).items() if key not in ("site", "setting")}


def enabled_configs(configs: list[AdapterSiteConfig]) -> list[AdapterSiteConfig]:
    """The configs of the sites that are switched on, each checked; at least one must be.

    Raises:
        LoraConfigError: no site is on (naming every site's targets setting), or a site's settings are invalid.
    """
    enabled = [config for config in configs if config.enabled]
    if not enabled:
        settings = " and ".join(f"model.init_args.{c.setting}_targets is {c.targets}" for c in configs)
        raise LoraConfigError(
            f"No adapter site is configured: {settings or 'no site is given'}. Set at least one, e.g. "
            "lora_targets: paper (the UNet) or text_encoder_lora_targets: WqWv (the text encoder)."
        )
    for config in enabled:
        config.check()
    return enabled


def _site_module(backbone: Backbone, site: str) -> torch.nn.Module:
    sites = backbone.adapter_sites()
    if site not in sites:
        raise LoraConfigError(
            f"The {backbone.kind} backbone has no adapter site {site!r}; its sites are {sorted(sites)}."
        )
    return sites[site]


def attach_adapters(backbone: Backbone, configs: list[AdapterSiteConfig]) -> dict[str, LoraConfig]:
    """Freeze every site and inject a trainable LoRA adapter into each configured one; returns the peft config per
    site (a site without a config stays frozen, so its outputs are the base model's).

    Raises:
        LoraConfigError: an unknown site, a site configured twice, bad settings or unknown targets.
    """
    if not configs:
        raise LoraConfigError("No adapter site is configured: set the UNet's lora_targets (e.g. paper) or the text "
                              "encoder's text_encoder_lora_targets (e.g. WqWv).")
    seen = [config.site for config in configs]
    if len(set(seen)) != len(seen):
        raise LoraConfigError(f"An adapter site is configured twice: {seen}.")
    for module in backbone.adapter_sites().values():
        module.requires_grad_(False)
    attached = {}
    for config in configs:
        config.check()
        module = _site_module(backbone, config.site)
        try:
            attached[config.site] = add_lora(
                module, config.rank, config.alpha, config.targets, config.dropout, config.init, config.use_rslora,
                config.use_dora, presets=backbone.lora_presets(config.site), site=config.site,
            )
        except LoraConfigError as error:
            # ``from None``: the CLI reports an error's innermost cause, which must be the message naming the setting
            raise LoraConfigError(f"model.init_args.{config.setting}_targets: {error}") from None
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
        prefix = "" if site == ROOT_SITE else f"{site}/"
        for name, layer in module.named_modules():
            if isinstance(layer, LoraLayer):
                yield prefix + name, layer


def conditioning_adapted(backbone: Backbone) -> bool:
    """Whether a site that computes the conditioning (the text encoder) carries an adapter: then the conditioning
    and the unconditional input change with the adapter and must be computed from the prompts every time."""
    return any(site in adapted_sites(backbone) for site in backbone.conditioning_sites)


def set_lora_dropout_mode(backbone: Backbone, training: bool) -> None:
    """Put the LoRA dropout of every adapted site in training or eval mode, whatever mode the site itself is in
    (a text encoder stays in eval mode, so its own dropout is off, while its adapter's dropout trains)."""
    for _, layer in site_layers(backbone):
        layer.lora_dropout.train(training)


@contextlib.contextmanager
def adapters_disabled(backbone: Backbone) -> Iterator[None]:
    """Run the base model: every site's LoRA layers off inside the block, back on after it (even on error)."""
    sites = list(adapted_sites(backbone).values())
    for module in sites:
        set_adapter_layers(module, enabled=False)
    try:
        yield
    finally:
        for module in sites:
            set_adapter_layers(module, enabled=True)


def describe_sites(backbone: Backbone, configs: list[AdapterSiteConfig],
                   lora_configs: dict[str, LoraConfig]) -> dict[str, dict[str, Any]]:
    """``adapter_info.json``'s ``sites``: per adapted site its settings, target modules, trainable parameters, the
    format it is stored in and its label (what model cards read)."""
    counts = trainable_counts(backbone)
    return {
        config.site: {
            **config.describe(),
            "target_modules": sorted(lora_configs[config.site].target_modules),
            "trainable_parameters": counts.get(config.site, 0),
            "format": backbone.adapter_format(config.site),
            "label": backbone.site_label(config.site),
        }
        for config in configs
    }


def write_adapter_folder(sites: dict[str, tuple[torch.nn.Module, str]], directory: str | Path,
                         info: dict[str, Any]) -> Path:
    """Write each site's adapter (``site -> (module, format)``) and ``adapter_info.json`` into ``directory`` (see
    the module docstring for the layout), file by file atomically: the folder of a running training never disappears
    and each of its files is old or new.

    Raises:
        FloatingPointError: an adapter holds NaN or inf (nothing is written).
        ValueError: a site other than the UNet in diffusers' format (only the root holds one).
    """
    for name, (module, site_format) in sites.items():
        check_finite(module, name)
        if site_format == DIFFUSERS_FORMAT and name != ROOT_SITE:
            raise ValueError(f"Only the {ROOT_SITE} site is stored in diffusers' format, not {name!r}.")
    final = Path(directory)
    with staged_directory(final, mode="files") as staging:
        for name, (module, site_format) in sites.items():
            if site_format == DIFFUSERS_FORMAT:
                write_diffusers_adapter(module, staging)
            else:
                write_peft_adapter(module, staging / name)
        (staging / ADAPTER_INFO).write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return final


def save_adapters(backbone: Backbone, directory: str | Path, info: dict[str, Any]) -> Path:
    """Write every adapted site of ``backbone`` in its format, plus ``info`` (:func:`write_adapter_folder`)."""
    sites = {name: (module, backbone.adapter_format(name)) for name, module in adapted_sites(backbone).items()}
    return write_adapter_folder(sites, directory, info)
