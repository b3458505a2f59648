"""``audioldm-lora cache --config X.yaml``: run the frozen VAE encoder and CLAP text encoder once over the data and
store posterior parameters and text embeddings in a latent cache (safetensors shards).

It reads the same YAML as ``lightning fit`` (``model.init_args.pretrained_model``, ``data.init_args.*``). Train from
the cache with ``data.init_args.latent_cache: DIR``; the VAE encoder and the text encoder then never run.
Running it again reuses every entry whose audio, crop, preprocessing and model are unchanged (a hit) and computes
the rest (a miss).

This is a thin tool on purpose: the model side (loading, encoding) lives here, the storage and the cached dataset
in :mod:`datamodules.latent_cache`, which receives the encoders as functions and imports no model code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import torch
from jsonargparse import ArgumentParser

from audioldm_lora.commands.run_config import (
    RunConfigError,
    read_run_config,
    section_init_args,
)
from datamodules.datamodule import GenreAudioDataModule
from datamodules.errors import DataSourceError
from datamodules.latent_cache import Encoders, build_latent_cache
from lightning_modules.backbone import Backbone
from lightning_modules.module import AudioLDMLoRA


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = ArgumentParser(prog="audioldm-lora cache", description=__doc__)
    parser.add_argument("--config", type=str, required=True, help="the training YAML (model and data sections)")
    parser.add_argument("--set", type=list[str], default=[], help="overrides, e.g. --set+=data.init_args.root=DIR")
    parser.add_argument("--cache_dir", type=str | None, default=None, help="default: data.init_args.latent_cache")
    parser.add_argument("--crops_per_file", type=int | None, default=None,
                        help="default: data.init_args.cache_crops_per_file (4)")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per VAE call")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


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

    def encode(captions: list[str]) -> torch.Tensor:
        # AudioLDM's conditioning is one tensor, stored as ``text_embeds`` (AudioLDM2's streams need more fields).
        return backbone.conditioning_for_cache(backbone.encode_prompts(captions))["text_embeds"]

    return Encoders(encode_audio, encode, identity)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = read_run_config(args.config, args.set)
        data_args = section_init_args(config, "data")
        cache_dir = args.cache_dir or data_args.get("latent_cache")
        if not cache_dir:
            raise RunConfigError("Give --cache_dir or set data.init_args.latent_cache in the config.")
        crops = args.crops_per_file or int(data_args.get("cache_crops_per_file", 4))
        datamodule = make_datamodule(config, crops)
        datamodule.prepare_data()
        datamodule.setup("fit")
        backbone = load_model(config, args.device)
        encoders = make_encoders(backbone, model_identity(config, backbone))
        report = build_latent_cache(
            cache_dir,
            datamodule.split_records(),
            encoders,
            duration=datamodule.hparams.duration,
            crops_per_file=crops,
            identity=datamodule.identity(),
            watch_files=datamodule.make_source().files_to_watch(),
            batch_size=args.batch_size,
        )
    except (RunConfigError, DataSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for bad in report.bad[:20]:
        print(f"BAD {bad}")
    print(report.summary())
    print(f"Cache: {cache_dir}. Train from it with --data.init_args.latent_cache={cache_dir}")
    return 0 if report.items.get("train") else 1
