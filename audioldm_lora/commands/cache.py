"""``audioldm-lora cache --config X.yaml``: run the frozen VAE encoder and text conditioning once over the data and
store posterior parameters and the backbone's text fields (AudioLDM: CLAP text embeddings) in a latent cache
(safetensors shards).

It reads the same YAML as ``lightning fit`` (``model.init_args.pretrained_model``, ``data.init_args.*``). Train from
the cache with ``data.init_args.latent_cache: DIR``; the VAE encoder and the text encoder then never run.
Running it again reuses every entry whose audio, crop, preprocessing and model are unchanged (a hit) and computes
the rest (a miss).

This is a thin tool on purpose: the model side (loading, encoding) lives here, the storage and the cached dataset
in :mod:`datamodules.latent_cache`, which receives the encoders as functions and imports no model code.
"""

from __future__ import annotations


from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.run_config import RunConfigError, read_run_config, section_init_args
from audioldm_lora.tool_convention import (
    ProgressReporter,
    add_device_argument,
    add_progress_argument,
    resolve_device,
    run_tool,
    tool_parser,
)

def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("cache", __doc__)
    parser.add_argument("--config", type=str, required=True, help="the training YAML (model and data sections)")
    parser.add_argument("--set", type=list[str], default=[], help="overrides, e.g. --set+=data.init_args.root=DIR")
    parser.add_argument("--cache-dir", type=str | None, default=None, help="default: data.init_args.latent_cache")
    parser.add_argument("--crops-per-file", type=int | None, default=None,
                        help="default: data.init_args.cache_crops_per_file (4)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per VAE call")
    add_device_argument(parser)
    add_progress_argument(parser, "the source's files")
    return parser


def run(args: Namespace) -> int:
    """Encode the data into the cache; 0 when the training split has items, 1 when it has none."""
    # The model and data code import torch, Lightning and diffusers: only after parsing.
    from audioldm_lora.cache_encoders import load_model, make_datamodule, make_encoders, model_identity
    from datamodules.latent_cache import build_latent_cache

    device = resolve_device(args.device)
    config = read_run_config(args.config, args.set)
    data_args = section_init_args(config, "data")
    cache_dir = args.cache_dir or data_args.get("latent_cache")
    if not cache_dir:
        raise RunConfigError("Give --cache-dir or set data.init_args.latent_cache in the config.")
    crops = args.crops_per_file or int(data_args.get("cache_crops_per_file", 4))
    datamodule = make_datamodule(config, crops)
    datamodule.prepare_data()
    datamodule.setup("fit")
    backbone = load_model(config, device)
    encoders = make_encoders(backbone, model_identity(config, backbone))
    with ProgressReporter("caching", "files", datamodule.split_record_count(), enabled=args.progress) as progress:
        report = build_latent_cache(
            cache_dir,
            datamodule.split_records(),
            encoders,
            duration=datamodule.hparams.duration,
            crops_per_file=crops,
            identity=datamodule.identity(),
            watch_files=datamodule.make_source().files_to_watch(),
            batch_size=args.batch_size,
            progress=progress,
        )
    for bad in report.bad[:20]:
        print(f"BAD {bad}")
    print(report.summary())
    print(f"Cache: {cache_dir}. Train from it with --data.init_args.latent_cache={cache_dir}")
    return 0 if report.items.get("train") else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 nothing to train on, 2 bad input)."""
    return run_tool("cache", build_parser(), argv, run)
