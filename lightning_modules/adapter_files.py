"""Adapter references on the command line (``PATH[=WEIGHT]``, ``NAME=PATH=WEIGHT``) and the files they point at.

Everything here reads files only, so every missing, damaged or unparsable adapter is reported before a model is
loaded or an output folder is touched. Loading into a UNet is :mod:`lightning_modules.adapters`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from safetensors import safe_open

# The adapter folder's files (this module imports neither torch nor peft, so that tools check them quickly): the
# UNet site at the root in diffusers' LoRA format, the text-encoder site in its own folder in peft's
# ``save_pretrained`` format (``PeftModel.from_pretrained(text_encoder, <adapter>/text_encoder)`` loads it).
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"
ADAPTER_INFO = "adapter_info.json"
TEXT_ENCODER_FOLDER = "text_encoder"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_KEY_PREFIX = "base_model.model."
"""What peft's ``PeftModel.save_pretrained`` puts before every module name (the wrapper's path to the model)."""


_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class AdapterError(ValueError):
    """An adapter that cannot be used; the message names the adapter, its path and what to do."""


@dataclass(frozen=True)
class AdapterSpec:
    """One ``--adapter`` argument: the adapter's name (peft adapter name), its folder, its weight file and weight."""

    name: str
    directory: Path
    weight: float = 1.0
    weight_name: str = ADAPTER_WEIGHTS

    @property
    def weights_file(self) -> Path:
        """The safetensors file diffusers loads."""
        return self.directory / self.weight_name

    def describe(self) -> dict[str, Any]:
        """What sidecars and manifests record about the adapter (its absolute path)."""
        return {
            "name": self.name,
            "path": str(self.directory.resolve()),
            "weight_name": self.weight_name,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class AdapterFile:
    """An adapter whose files were read: tensor shapes per site and ``adapter_info.json`` (if any).

    ``shapes`` are the UNet site's tensors (empty for a text-encoder-only adapter), ``text_encoder_shapes`` those of
    ``text_encoder/adapter_model.safetensors`` with peft's key prefix removed (empty when there is none).
    """

    spec: AdapterSpec
    shapes: dict[str, tuple[int, ...]]
    info: dict[str, Any] = field(default_factory=dict)
    text_encoder_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        """The sites this adapter holds weights for (``unet``, ``text_encoder``)."""
        return [site for site, shapes in (("unet", self.shapes), ("text_encoder", self.text_encoder_shapes)) if shapes]

    @property
    def text_encoder_directory(self) -> Path:
        """The folder of the text-encoder site (peft format)."""
        return self.spec.directory / TEXT_ENCODER_FOLDER


def _weight(text: str, argument: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AdapterError(
            f"--adapter {argument!r}: {text!r} is not a number. Write PATH, PATH=WEIGHT or NAME=PATH=WEIGHT "
            "(e.g. runs/jazz/adapters/final=0.7)."
        ) from None
    if not math.isfinite(value):
        raise AdapterError(f"--adapter {argument!r}: the weight must be a finite number, got {text!r}.")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _safe_name(text: str) -> str:
    """A peft adapter name from a folder name (peft names may not contain dots)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "adapter"


def _split(argument: str) -> tuple[str | None, str, float]:
    """``(name or None, path, weight)`` of one ``--adapter`` argument."""
    parts = argument.split("=")
    if len(parts) == 1:
        return None, parts[0], 1.0
    if len(parts) == 2:
        if _is_number(parts[1]):
            return None, parts[0], _weight(parts[1], argument)
        return parts[0], parts[1], 1.0
    if len(parts) == 3:
        return parts[0], parts[1], _weight(parts[2], argument)
    raise AdapterError(f"--adapter {argument!r}: expected PATH, PATH=WEIGHT or NAME=PATH=WEIGHT.")


def parse_adapter_spec(argument: str) -> AdapterSpec:
    """Parse ``PATH``, ``PATH=WEIGHT``, ``NAME=PATH`` or ``NAME=PATH=WEIGHT``.

    PATH is an adapter folder (``pytorch_lora_weights.safetensors`` inside) or a ``.safetensors`` file. The name
    defaults to the folder's name; the weight to 1.0.

    Raises:
        AdapterError: an empty path, a weight that is not a finite number, or a name peft cannot use.
    """
    name, path, weight = _split(argument)
    if not path.strip():
        raise AdapterError(f"--adapter {argument!r}: the path is empty.")
    location = Path(path).expanduser()
    directory, weight_name = location, ADAPTER_WEIGHTS
    if location.suffix == ".safetensors":
        directory, weight_name = location.parent, location.name
    if name is None:
        name = _safe_name(directory.resolve().name)
    elif not _NAME.match(name):
        raise AdapterError(f"--adapter {argument!r}: the name {name!r} may hold only letters, digits, '_' and '-'.")
    return AdapterSpec(name=name, directory=directory, weight=weight, weight_name=weight_name)


def parse_adapter_specs(arguments: list[str]) -> list[AdapterSpec]:
    """Parse several ``--adapter`` arguments; default names that clash get ``_2``, ``_3`` ... appended.

    Training writes every run's adapters as ``adapters/final``, so two runs' final adapters both default to
    ``final``; an explicit ``NAME=`` that clashes is an error instead.

    Raises:
        AdapterError: a bad argument, or the same explicit name twice.
    """
    specs: list[AdapterSpec] = []
    taken: set[str] = set()
    for argument in arguments:
        spec = parse_adapter_spec(argument)
        if spec.name in taken:
            if _split(argument)[0] is not None:
                raise AdapterError(f"Two adapters are named {spec.name!r}; give each its own NAME=PATH=WEIGHT.")
            suffix = 2
            while f"{spec.name}_{suffix}" in taken:
                suffix += 1
            spec = replace(spec, name=f"{spec.name}_{suffix}")
        taken.add(spec.name)
        specs.append(spec)
    return specs


def read_adapter_info(spec: AdapterSpec) -> dict[str, Any]:
    """``adapter_info.json`` beside the weights (``{}`` when absent: plain diffusers adapters have none).

    Raises:
        AdapterError: the file exists but is not a JSON object.
    """
    path = spec.directory / ADAPTER_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterError(
            f"Adapter {spec.name!r}: {path} is not valid JSON ({error}). Restore it from the run or delete it "
            "(the weights load without it)."
        ) from error
    if not isinstance(info, dict):
        raise AdapterError(f"Adapter {spec.name!r}: {path} must hold a JSON object, not {type(info).__name__}.")
    return info


def _lora_shapes(spec: AdapterSpec, path: Path, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a safetensors file (``prefix`` removed from the keys); no tensor data is loaded.

    Raises:
        AdapterError: the file is not readable safetensors or holds no LoRA tensors.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key.removeprefix(prefix): tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # safetensors raises SafetensorError, OSError or ValueError depending on the damage
        raise AdapterError(
            f"Adapter {spec.name!r}: cannot read {path} as safetensors ({error}). The file is damaged or incomplete; "
            "export the adapter again."
        ) from error
    if not any("lora_" in key for key in shapes):
        raise AdapterError(f"Adapter {spec.name!r}: {path} holds no LoRA tensors (no lora_A / lora_B weights).")
    return shapes


def _text_encoder_shapes(spec: AdapterSpec) -> dict[str, tuple[int, ...]]:
    """Shapes of the text-encoder site (``{}`` when the adapter has none).

    Raises:
        AdapterError: ``text_encoder/`` exists but lacks its config or weights, or they do not parse.
    """
    folder = spec.directory / TEXT_ENCODER_FOLDER
    if not folder.is_dir():
        return {}
    missing = [name for name in (PEFT_CONFIG, PEFT_WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise AdapterError(
            f"Adapter {spec.name!r}: {folder} lacks {', '.join(missing)} (peft's save_pretrained writes both); "
            "export the adapter again."
        )
    try:
        config = json.loads((folder / PEFT_CONFIG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterError(f"Adapter {spec.name!r}: {folder / PEFT_CONFIG} is not valid JSON ({error}).") from error
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise AdapterError(f"Adapter {spec.name!r}: {folder / PEFT_CONFIG} is not a peft LoRA config.")
    return _lora_shapes(spec, folder / PEFT_WEIGHTS, PEFT_KEY_PREFIX)


def read_adapter(spec: AdapterSpec) -> AdapterFile:
    """Check that the adapter's files exist and parse, and read its tensor shapes per site (no tensor data).

    An adapter folder holds the UNet site (``pytorch_lora_weights.safetensors``), the text-encoder site
    (``text_encoder/``) or both.

    Raises:
        AdapterError: the folder is missing, holds neither site, a weight file is not a readable safetensors file or
            holds no LoRA tensors, or ``adapter_info.json`` does not parse.
    """
    if not spec.directory.is_dir():
        raise AdapterError(f"Adapter {spec.name!r}: {spec.directory} does not exist or is not a folder.")
    text_encoder = _text_encoder_shapes(spec)
    path = spec.weights_file
    if not path.is_file() and not text_encoder:
        present = sorted(p.name for p in spec.directory.iterdir())[:10]
        raise AdapterError(
            f"Adapter {spec.name!r}: {spec.directory} has no {spec.weight_name} nor a {TEXT_ENCODER_FOLDER}/ adapter "
            f"(it holds {present or 'nothing'}). Point --adapter at a folder that training wrote "
            "(<run>/adapters/final) or at the .safetensors file."
        )
    shapes = _lora_shapes(spec, path) if path.is_file() else {}
    return AdapterFile(spec=spec, shapes=shapes, info=read_adapter_info(spec), text_encoder_shapes=text_encoder)
