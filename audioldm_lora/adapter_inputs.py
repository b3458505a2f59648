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
    """``--base``, the repeatable ``--adapter`` and ``--allow-other-base``."""
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
    parser.add_argument(
        "--allow-other-base",
        action="store_true",
        help="apply adapters whose adapter_info.json records a base with other weights than --base (warns).",
    )


def read_adapters(arguments: list[str]) -> list[AdapterFile]:
    """Parse ``--adapter`` arguments and read their files (every file problem surfaces here, before any model)."""
    return [read_adapter(spec) for spec in parse_adapter_specs(arguments)]


def resolve_base(base: str | None, adapters: list[AdapterFile]) -> str:
    """``--base``, else the first adapter's recorded base model (:func:`recorded_base`: the folder as given, or the
    absolute path recorded at training time when the tool runs from another folder)."""
    from lightning_modules.base_identity import recorded_base
    from lightning_modules.model_card import is_hub_id

    if base:
        return base
    adapter = next((a for a in adapters if a.info.get("base_model")), None)
    if adapter is None:
        raise CommandInputError("No --base given and no adapter records its base_model; pass --base ID|DIR.")
    found = str(recorded_base(adapter.info))
    if not Path(found).expanduser().is_dir() and not is_hub_id(found):
        raise CommandInputError(
            f"The base model {adapter.info['base_model']!r} recorded in {adapter.spec.directory}/adapter_info.json "
            f"is no folder from here (at training time: {adapter.info.get('base_model_path') or 'not recorded'}) "
            "and no hub id; pass --base ID|DIR."
        )
    return found


def check_output_directory(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file or holds files unless ``--overwrite``, before any model is loaded (the
    folder is then replaced as a whole at the end: :func:`datamodules.atomic_files.staged_directory`)."""
    try:
        ensure_publishable(out, overwrite)
    except FileExistsError as error:
        raise CommandInputError(f"--out: {error} (--overwrite replaces it)") from error


def load_model(base: str, adapters: list[AdapterFile], device: str, allow_other_base: bool = False) -> Backbone:
    """Load the base model, then the adapters into its sites at their weights, on ``device``, in eval mode."""
    from lightning_modules.adapters import load_adapters
    from lightning_modules.backbone import load_backbone

    backbone = load_backbone(base)
    load_adapters(backbone, adapters, base, allow_other_base)
    for module in backbone.named_modules().values():
        module.to(device).eval()
    return backbone
