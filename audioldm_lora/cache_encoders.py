"""What ``audioldm-lora cache`` (and the data benchmark) needs from the model and data side: the config's data
module and model class, the encoders as the functions :mod:`datamodules.latent_cache` calls, and their identity.

Not a command: :mod:`audioldm_lora.commands.cache` imports it after parsing its arguments.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from audioldm_lora.run_config import RunConfigError, section_init_args
from datamodules.datamodule import GenreAudioDataModule
from datamodules.errors import DataSourceError
from datamodules.latent_cache import Encoders
from lightning_modules.backbone import Backbone
from lightning_modules.module import AudioLDMLoRA


def make_datamodule(config: dict[str, Any], crops: int) -> GenreAudioDataModule:
    """The config's data module, reading audio (not the cache it is about to fill)."""
    section = config.get("data") or {}
    class_path = section.get("class_path", "datamodules.GenreAudioDataModule") if isinstance(section, dict) else ""
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, GenreAudioDataModule)):
        raise RunConfigError(f"data.class_path {class_path} is not a GenreAudioDataModule; the cache reads only that.")
    args = section_init_args(config, "data")
    args.update(latent_cache=None, cache_crops_per_file=crops)
    return cls(**args)


def model_class(config: dict[str, Any]) -> type[AudioLDMLoRA]:
    """The config's LightningModule class (``model.class_path``), whose ``load_backbone`` loads the base model."""
    section = config.get("model") or {}
    class_path = section.get("class_path", "lightning_modules.AudioLDMLoRA") if isinstance(section, dict) else ""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise RunConfigError(f"model.class_path {class_path!r} cannot be imported: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, AudioLDMLoRA)):
        raise RunConfigError(f"model.class_path {class_path} is not an AudioLDMLoRA; the cache needs its backbone.")
    return cls


def model_identity(config: dict[str, Any], backbone: Backbone) -> dict[str, Any]:
    """Name, revision and weight fingerprints of the encoders (keys of the cached entries)."""
    model = section_init_args(config, "model")
    return {
        "name": model.get("pretrained_model", "cvssp/audioldm-s-full-v2"),
        "revision": model.get("revision"),
        **backbone.identity(),
        **backbone.cache_layout(),
    }


def load_model(config: dict[str, Any], device: str) -> Backbone:
    """The base model named by the config's model section, loaded as its LightningModule class loads it."""
    model = section_init_args(config, "model")
    name = model.get("pretrained_model", "cvssp/audioldm-s-full-v2")
    backbone = model_class(config).load_backbone(name, model.get("revision"))
    for module in backbone.frozen_modules():
        module.to(device).eval().requires_grad_(False)  # loaded in float32: the cache is computed in full precision
    return backbone


def make_encoders(backbone: Backbone, identity: dict[str, Any]) -> Encoders:
    """The VAE encoder and the text conditioning as the functions the cache calls."""

    def encode_audio(mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            posterior = backbone.posterior(mel)
        except ValueError as error:  # clip length the VAE cannot take: a data setting, named as such
            raise DataSourceError(f"{error} (data.init_args.duration)") from error
        return posterior.mean.cpu(), posterior.logvar.cpu()

    def encode(captions: list[str]) -> dict[str, torch.Tensor]:
        return backbone.conditioning_for_cache(backbone.encode_prompts(captions))

    return Encoders(encode_audio, encode, identity)
