"""The adapter-site seam: LoRA attaches to named sub-models of a backbone ("sites"), each with its own settings.

A site is a key of :meth:`lightning_modules.backbone.Backbone.adapter_sites` (AudioLDM: ``unet`` and
``text_encoder``). Per site an :class:`AdapterSettings` (one entry of the module's ``adapters`` setting) gives
targets (a preset of that site, from :meth:`Backbone.lora_presets`, or module names), rank, alpha, dropout, init,
DoRA and rsLoRA. Everything that acts
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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
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
NO_TARGETS = ("none", "None", "null")
"""Targets values that turn a site off, besides ``None``. ``None`` and ``null`` as strings too: jsonargparse hands
``--model.init_args.adapters.unet.targets=null`` to a class given by ``class_path`` as the string ``'None'``, and no
preset or module can have either name (both are Python or YAML keywords)."""


@dataclass
class AdapterSettings:
    """LoRA settings of one adapter site: one entry of the LightningModule's ``adapters`` setting.

    A YAML config names each site it adapts, with the settings that differ from these defaults::

        adapters:
          unet: {targets: paper, rank: 2, alpha: 4.0}
          text_encoder: {targets: WqWv, rank: 4, alpha: 8.0}

    Attributes:
        targets: a preset of the site (the backbone's :meth:`~lightning_modules.backbone.Backbone.lora_presets`;
            AudioLDM's UNet: ``paper``, ``attention``, ``attention_proj``, ``attention_conditioning``; its text
            encoder: ``Wq``, ``Wv``, ``WqWv``; any site: ``all_linear``) or module names (peft matches them as
            suffixes); ``none`` or ``null`` leaves the site without an adapter.
        rank: LoRA rank r (the paper: 2).
        alpha: LoRA alpha; the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).
        dropout: dropout on the LoRA branch.
        init: LoRA A init; ``gaussian`` as the paper, ``kaiming`` is peft's default.
        use_rslora: rank-stabilised scaling alpha / sqrt(r).
        use_dora: weight-decomposed LoRA (DoRA).
        module_dropout: a frozen site's own dropout (CLAP's hidden and attention dropout, 0.1 in the public
            checkpoints) active in training; off by default, so the site computes what it computes at inference.
            The UNet trains in training mode anyway.
    """

    targets: None | str | list[str] = "paper"
    rank: int = 2
    alpha: float = 4.0
    dropout: float = 0.0
    init: LoraInit = "gaussian"
    use_rslora: bool = False
    use_dora: bool = False
    module_dropout: bool = False

    @property
    def enabled(self) -> bool:
        """Whether the site gets an adapter (targets neither ``None`` nor ``none``)."""
        return self.targets is not None and self.targets not in NO_TARGETS

    def check(self, site: str) -> None:
        """Fail fast, before any model is loaded, on settings no model accepts (naming the site's setting)."""
        try:
            check_lora_settings(self.rank, self.alpha, self.dropout)
        except LoraConfigError as error:
            raise LoraConfigError(f"model.init_args.adapters.{site}: {error}") from None

    def describe(self) -> dict[str, Any]:
        """The settings as ``adapter_info.json`` records them."""
        return asdict(self)


DEFAULT_ADAPTERS: dict[str, dict[str, Any]] = {UNET_SITE: {"targets": "paper", "rank": 2, "alpha": 4.0}}
"""The ``adapters`` setting when none is given: the paper's UNet adapter."""
OLD_KEYS = {
    "lora_targets": "unet.targets", "lora_rank": "unet.rank", "lora_alpha": "unet.alpha",
    "lora_dropout": "unet.dropout", "lora_init": "unet.init", "use_rslora": "unet.use_rslora",
    "use_dora": "unet.use_dora", "text_encoder_lora_targets": "text_encoder.targets",
    "text_encoder_lora_rank": "text_encoder.rank", "text_encoder_lora_alpha": "text_encoder.alpha",
    "text_encoder_lora_dropout": "text_encoder.dropout", "text_encoder_lora_init": "text_encoder.init",
    "text_encoder_use_rslora": "text_encoder.use_rslora", "text_encoder_use_dora": "text_encoder.use_dora",
    "text_encoder_dropout": "text_encoder.module_dropout",
}
"""The flat per-site constructor arguments the ``adapters`` setting replaced -> their place in it."""


def old_key_hint(key: str) -> str | None:
    """How an old flat key (``lora_rank``) is spelt now (``adapters: {unet: {rank: ...}}``), else None."""
    if key not in OLD_KEYS:
        return None
    site, field_name = OLD_KEYS[key].split(".")
    return (f"{key} is now adapters: {{{site}: {{{field_name}: ...}}}} in YAML, or "
            f"--model.init_args.adapters.{site}.{field_name}=... on the command line (docs/adapters.md)")


def site_settings(adapters: Mapping[str, AdapterSettings | Mapping[str, Any]] | None
                  ) -> dict[str, AdapterSettings]:
    """The ``adapters`` setting as :class:`AdapterSettings` per site, the sites that are switched on only, each
    checked; at least one must be on.

    Raises:
        LoraConfigError: no site is on, an entry is not a mapping of known settings, or a site's values are invalid.
    """
    given = DEFAULT_ADAPTERS if adapters is None else adapters
    settings: dict[str, AdapterSettings] = {}
    for site, entry in given.items():
        if isinstance(entry, AdapterSettings):
            settings[str(site)] = entry
            continue
        if not isinstance(entry, Mapping):
            raise LoraConfigError(f"model.init_args.adapters.{site} must be a mapping of settings such as "
                                  f"{{targets: paper, rank: 2}}, not {entry!r}.")
        unknown = sorted(set(entry) - {f.name for f in fields(AdapterSettings)})
        if unknown:
            raise LoraConfigError(f"model.init_args.adapters.{site}: unknown setting(s) {unknown}; settings are "
                                  f"{[f.name for f in fields(AdapterSettings)]}.")
        settings[str(site)] = AdapterSettings(**entry)
    idle = [site for site, value in settings.items() if value.module_dropout and not value.enabled]
    if idle:
        raise LoraConfigError(f"model.init_args.adapters.{idle[0]}.module_dropout needs the site switched on (give it "
                              "targets, e.g. WqWv for the text encoder) or drop module_dropout.")
    enabled = {site: value for site, value in settings.items() if value.enabled}
    if not enabled:
        listed = ", ".join(f"{site}: targets {value.targets}" for site, value in settings.items()) or "no site"
        raise LoraConfigError(
            f"No adapter site is switched on (model.init_args.adapters has {listed}). Give at least one site "
            "targets, e.g. adapters: {unet: {targets: paper}} or adapters: {text_encoder: {targets: WqWv}}."
        )
    for site, value in enabled.items():
        value.check(site)
    return enabled


def _site_module(backbone: Backbone, site: str) -> torch.nn.Module:
    sites = backbone.adapter_sites()
    if site not in sites:
        raise LoraConfigError(
            f"The {backbone.kind} backbone has no adapter site {site!r}; its sites are {sorted(sites)}."
        )
    return sites[site]


def attach_adapters(backbone: Backbone, settings: Mapping[str, AdapterSettings]) -> dict[str, LoraConfig]:
    """Freeze every site and inject a trainable LoRA adapter into each configured one; returns the peft config per
    site (a site without settings stays frozen, so its outputs are the base model's).

    Raises:
        LoraConfigError: no site, an unknown site, bad settings or unknown targets.
    """
    if not settings:
        raise LoraConfigError("No adapter site is configured: give model.init_args.adapters at least one site, e.g. "
                              "{unet: {targets: paper}}.")
    for module in backbone.adapter_sites().values():
        module.requires_grad_(False)
    attached = {}
    for site, config in settings.items():
        config.check(site)
        module = _site_module(backbone, site)
        try:
            attached[site] = add_lora(
                module, config.rank, config.alpha, config.targets, config.dropout, config.init, config.use_rslora,
                config.use_dora, presets=backbone.lora_presets(site), site=site,
            )
        except LoraConfigError as error:
            # ``from None``: the CLI reports an error's innermost cause, which must be the message naming the setting
            raise LoraConfigError(f"model.init_args.adapters.{site}.targets: {error}") from None
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


def trainable_by_group(backbone: Backbone, site: str) -> dict[str, int]:
    """Trainable LoRA parameters of an adapted ``site`` per layer group (:meth:`Backbone.layer_group`: for AudioLDM2's
    UNet, which stream each attention reads); empty when the backbone does not group the site's layers."""
    counts: dict[str, int] = {}
    for name, layer in adapted_sites(backbone)[site].named_modules():
        if isinstance(layer, LoraLayer):
            group = backbone.layer_group(site, name)
            if group is None:
                return {}
            counts[group] = counts.get(group, 0) + sum(p.numel() for p in layer.parameters() if p.requires_grad)
    return counts


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


def describe_sites(backbone: Backbone, settings: Mapping[str, AdapterSettings],
                   lora_configs: dict[str, LoraConfig]) -> dict[str, dict[str, Any]]:
    """``adapter_info.json``'s ``sites``: per adapted site its settings, target modules, trainable parameters, the
    format it is stored in and its label (what model cards read)."""
    counts = trainable_counts(backbone)
    described = {}
    for site, config in settings.items():
        described[site] = {
            **config.describe(),
            "target_modules": sorted(lora_configs[site].target_modules),
            "trainable_parameters": counts.get(site, 0),
            "format": backbone.adapter_format(site),
            "label": backbone.site_label(site),
        }
        if groups := trainable_by_group(backbone, site):
            described[site]["trainable_by_group"] = groups
    return described


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
    """Write every adapted site of ``backbone`` in its format, plus ``info`` with the backbone and pipeline the
    adapter is for (:func:`write_adapter_folder`)."""
    sites = {name: (module, backbone.adapter_format(name)) for name, module in adapted_sites(backbone).items()}
    info = {**info, "backbone": backbone.kind, "pipeline": backbone.pipeline_class}
    return write_adapter_folder(sites, directory, info)
