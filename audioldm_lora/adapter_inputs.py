"""What the adapter tools (generate, merge, model-card) share: the arguments, the checks done before any model
is loaded, and loading base plus adapters. The error path, the device default and the progress display are every
tool's: :mod:`audioldm_lora.tool_convention`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jsonargparse import ArgumentParser

from audioldm_lora.tool_convention import ToolInputError
from datamodules.atomic_files import ensure_publishable
from lightning_modules.adapter_files import (
    AdapterFile,
    parse_adapter_specs,
    read_adapter,
)

if TYPE_CHECKING:
    from lightning_modules.backbone import Backbone


class CommandInputError(ToolInputError):
    """Bad input to a tool (empty prompts file, occupied --out ...); the message says what to fix."""


def add_model_arguments(parser: ArgumentParser) -> None:
    """``--base`` and the repeatable ``--adapter``."""
    parser.add_argument(
        "--base",
        type=str | None,
        default=None,
        help="base AudioLDM: hub id (cvssp/audioldm-s-full-v2) or local diffusers folder; default: the "
        "base_model recorded in the first adapter's adapter_info.json.",
    )
    parser.add_argument(
        "--adapter",
        type=str,
        action="append",
        default=[],
        metavar="[NAME=]PATH[=WEIGHT]",
        help="a LoRA adapter folder (or its .safetensors file), optionally named and weighted: "
        "runs/jazz/adapters/final=0.7 or jazz=runs/jazz/adapters/final=0.7. Repeat to mix several "
        "(diffusers set_adapters); the name defaults to the folder's name.",
    )


def read_adapters(arguments: list[str]) -> list[AdapterFile]:
    """Parse ``--adapter`` arguments and read their files (every file problem surfaces here, before any model)."""
    return [read_adapter(spec) for spec in parse_adapter_specs(arguments)]


def resolve_base(base: str | None, adapters: list[AdapterFile]) -> str:
    """``--base``, else the first adapter's recorded base model."""
    if base:
        return base
    recorded = next((a.info.get("base_model") for a in adapters if a.info.get("base_model")), None)
    if not recorded:
        raise CommandInputError("No --base given and no adapter records its base_model; pass --base ID|DIR.")
    return str(recorded)


def check_output_directory(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file or holds files unless ``--overwrite``, before any model is loaded (the
    folder is then replaced as a whole at the end: :func:`datamodules.atomic_files.staged_directory`)."""
    try:
        ensure_publishable(out, overwrite)
    except FileExistsError as error:
        raise CommandInputError(f"--out: {error} (--overwrite replaces it)") from error


def load_model(base: str, adapters: list[AdapterFile], device: str) -> Backbone:
    """Load the base model, then the adapters into its sites at their weights, on ``device``, in eval mode."""
    from lightning_modules.adapters import load_adapters
    from lightning_modules.backbone import load_backbone

    backbone = load_backbone(base)
    load_adapters(backbone, adapters, base)
    for module in backbone.named_modules().values():
        module.to(device).eval()
    return backbone
