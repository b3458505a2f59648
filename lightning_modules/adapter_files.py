"""Adapter references on the command line (``PATH[=WEIGHT]``, ``NAME=PATH=WEIGHT``) and the files they point at.

Everything here reads files only, so every missing, damaged or unparsable adapter is reported before a model is
loaded or an output folder is touched. Loading into a model is :mod:`lightning_modules.adapters`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from safetensors import safe_open

from datamodules.json_files import read_json_object

# The adapter folder's files (this module imports neither torch nor peft, so that tools check them quickly). Each
# adapted site of the backbone is stored in one of two formats (docs/adapters.md):
# - ``diffusers``: diffusers' LoRA format (``save_lora_adapter``), at the folder's root, for the UNet of a backbone
#   whose UNet has diffusers' adapter methods (``unet.load_lora_adapter`` reads it);
# - ``peft``: peft's ``save_pretrained`` format in a sub-folder named after the site, for every other site
#   (``PeftModel.from_pretrained(<module>, <adapter>/<site>)`` reads it).
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"
ADAPTER_INFO = "adapter_info.json"
DIFFUSERS_FORMAT = "diffusers"
PEFT_FORMAT = "peft"
ROOT_SITE = "unet"
"""The site a diffusers-format file at the folder's root adapts (diffusers' own convention for a UNet LoRA)."""
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
class SiteFile:
    """One adapted site of an adapter folder: its format, where its files are and its LoRA tensors' shapes.

    ``shapes`` are keyed by the module names of the site (peft's ``base_model.model.`` prefix removed), so they
    compare directly with the site's ``named_modules()``.
    """

    site: str
    format: str
    directory: Path
    shapes: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class AdapterFile:
    """An adapter whose files were read: each site it holds (:class:`SiteFile`) and ``adapter_info.json`` (if any)."""

    spec: AdapterSpec
    sites: dict[str, SiteFile]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def site_names(self) -> list[str]:
        """The sites this adapter holds weights for, the root site first (``unet``, ``text_encoder``)."""
        return list(self.sites)

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


def safe_adapter_name(text: str) -> str:
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
        name = safe_adapter_name(directory.resolve().name)
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
    return read_json_object(path, AdapterError, f"restore adapter {spec.name!r}'s info from the run or delete it (the "
                            "weights load without it).")


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


def _peft_site(spec: AdapterSpec, folder: Path) -> SiteFile:
    """The site stored in peft's format in ``folder`` (its name is the site's).

    Raises:
        AdapterError: the folder lacks its config or weights, or they do not parse.
    """
    missing = [name for name in (PEFT_CONFIG, PEFT_WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise AdapterError(
            f"Adapter {spec.name!r}: {folder} lacks {', '.join(missing)} (peft's save_pretrained writes both); "
            "export the adapter again."
        )
    config = read_json_object(folder / PEFT_CONFIG, AdapterError, f"export adapter {spec.name!r} again.")
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"Adapter {spec.name!r}: {folder / PEFT_CONFIG} is not a peft LoRA config.")
    return SiteFile(folder.name, PEFT_FORMAT, folder, _lora_shapes(spec, folder / PEFT_WEIGHTS, PEFT_KEY_PREFIX))


def _recorded_sites(info: dict[str, Any]) -> list[str]:
    """The sites ``adapter_info.json`` says were exported (none for adapters that predate per-site records)."""
    sites = info.get("sites")
    return [str(site) for site in sites] if isinstance(sites, dict) else []


def read_adapter(spec: AdapterSpec) -> AdapterFile:
    """Check that the adapter's files exist and parse, and read its tensor shapes per site (no tensor data).

    The root site is ``pytorch_lora_weights.safetensors`` (diffusers' format) at the folder's root; every sub-folder
    holding peft's files (or named as a site in ``adapter_info.json``) is the site of its name. Whether the sites
    fit a model is :func:`lightning_modules.adapters.load_adapters`' check, once the model is known.

    Raises:
        AdapterError: the folder is missing or holds no site, a site's files are missing, unreadable or hold no LoRA
            tensors, ``adapter_info.json`` does not parse, or a site it records is not in the folder.
    """
    if not spec.directory.is_dir():
        raise AdapterError(f"Adapter {spec.name!r}: {spec.directory} does not exist or is not a folder.")
    info = read_adapter_info(spec)
    recorded = _recorded_sites(info)
    sites: dict[str, SiteFile] = {}
    if spec.weights_file.is_file():
        sites[ROOT_SITE] = SiteFile(ROOT_SITE, DIFFUSERS_FORMAT, spec.directory, _lora_shapes(spec, spec.weights_file))
    for folder in sorted(p for p in spec.directory.iterdir() if p.is_dir()):
        holds_peft_files = (folder / PEFT_CONFIG).exists() or (folder / PEFT_WEIGHTS).exists()
        if holds_peft_files or folder.name in recorded:
            if folder.name in sites:
                raise AdapterError(f"Adapter {spec.name!r}: the {folder.name} site is stored twice, at the folder's "
                                   f"root and in {folder}; keep one.")
            sites[folder.name] = _peft_site(spec, folder)
    if not sites:
        present = sorted(p.name for p in spec.directory.iterdir())[:10]
        raise AdapterError(
            f"Adapter {spec.name!r}: {spec.directory} has no {spec.weight_name} nor a site sub-folder with "
            f"{PEFT_CONFIG} (it holds {present or 'nothing'}). Point --adapter at a folder that training wrote "
            "(<run>/adapters/final) or at the .safetensors file."
        )
    lacking = [site for site in recorded if site not in sites]
    if lacking:
        raise AdapterError(
            f"Adapter {spec.name!r}: {spec.directory / ADAPTER_INFO} records the site(s) {lacking}, but the folder "
            f"holds only {sorted(sites)}; copy the whole adapter folder, or export it again."
        )
    return AdapterFile(spec=spec, sites=sites, info=info)
