"""Load one or several LoRA adapters into a backbone's adapter sites, mix them with weights, and fuse them.

Every saved adapter folder holds its UNet site at the root (``pytorch_lora_weights.safetensors``); this is the one
path by which ``generate``, ``merge``, the evaluation tools and the demo put adapters on a backbone.

All through diffusers' peft integration (``load_lora_adapter``, ``set_adapters``, ``fuse_lora``, ``unload_lora``),
so what the project does with adapters is what plain diffusers code does with them. Before anything is loaded,
every adapter's tensor shapes are checked against the UNet: an adapter trained for another base fails with a
message that names it, instead of peft's page of ``size mismatch`` lines (or, for unknown layer names, a warning and
an adapter that silently does nothing).
"""

from __future__ import annotations

import warnings

import torch

from lightning_modules.adapter_files import AdapterError, AdapterFile
from lightning_modules.backbone import Backbone
from lightning_modules.lora import quiet_diffusers

_LORA_MATRICES = (".lora_A.", ".lora_B.")


def _mismatches(unet: torch.nn.Module, adapter: AdapterFile) -> list[str]:
    """Human-readable problems of ``adapter`` against ``unet``: missing layers and wrong feature counts."""
    modules = dict(unet.named_modules())
    problems: list[str] = []
    for key, shape in adapter.shapes.items():
        marker = next((m for m in _LORA_MATRICES if m in key), None)
        if marker is None:
            continue
        layer_name = key.split(marker)[0]
        layer = modules.get(layer_name)
        if layer is None:
            problems.append(f"{layer_name}: no such layer in the base UNet")
            continue
        weight = getattr(getattr(layer, "base_layer", layer), "weight", None)
        if weight is None:
            problems.append(f"{layer_name}: not a layer with weights in the base UNet")
            continue
        if marker == ".lora_A.":
            got, expected, kind = shape[1], weight.shape[1], "input"
        else:
            got, expected, kind = shape[0], weight.shape[0], "output"
        if got != expected:
            problems.append(f"{layer_name}: {got} {kind} features in the adapter, {expected} in the base")
    return problems


def check_adapter_fits(unet: torch.nn.Module, adapter: AdapterFile, base: str) -> None:
    """Raise unless every LoRA matrix of ``adapter`` matches a layer of ``unet`` in name and size.

    Raises:
        AdapterError: naming the adapter, the base ``base``, the first mismatches and the base it was trained on.
    """
    problems = _mismatches(unet, adapter)
    if not problems:
        return
    trained_on = adapter.info.get("base_model")
    origin = f" It was trained on {trained_on!r} (adapter_info.json)." if trained_on else ""
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    raise AdapterError(
        f"Adapter {adapter.spec.name!r} ({adapter.spec.directory}) does not fit the base model {base!r}: "
        f"{len(problems)} LoRA tensor(s) mismatch ({shown}).{origin} Use the base model the adapter was trained "
        "with (--base)."
    )


def load_adapters(backbone: Backbone, adapters: list[AdapterFile], base: str) -> None:
    """Load adapters (read by ``adapter_files.read_adapter``) into the backbone under their names, at their weights.

    All adapters are checked against the UNet before the first one is loaded, so a bad adapter leaves the model as
    it was. The weights mix adapters as ``set_adapters(names, weights)`` does: each LoRA update is scaled by its
    weight (1.0: as trained; 0.0: off).

    Raises:
        AdapterError: an adapter for another base, a name already loaded, or a load that diffusers refuses.
    """
    if not adapters:
        return
    unet = backbone.unet
    loaded = set(getattr(unet, "peft_config", {}) or {})
    for adapter in adapters:
        if adapter.spec.name in loaded:
            raise AdapterError(f"An adapter named {adapter.spec.name!r} is already loaded; name it NAME=PATH=WEIGHT.")
        check_adapter_fits(unet, adapter, base)
    for adapter in adapters:
        spec = adapter.spec
        try:
            with quiet_diffusers(), warnings.catch_warnings():
                # peft warns on every adapter after the first that several adapters now share the model: intended.
                warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
                unet.load_lora_adapter(
                    str(spec.directory),
                    prefix=None,
                    weight_name=spec.weight_name,
                    use_safetensors=True,
                    adapter_name=spec.name,
                )
        except Exception as error:  # peft and diffusers raise ValueError, RuntimeError or KeyError here
            raise AdapterError(f"Adapter {spec.name!r} ({spec.weights_file}) failed to load: {error}") from error
    unet.set_adapters([a.spec.name for a in adapters], weights=[a.spec.weight for a in adapters])


def fuse_adapters(backbone: Backbone, names: list[str]) -> None:
    """Fold the active adapters ``names`` (at their ``set_adapters`` weights) into the sites' own weights.

    Afterwards the UNet is a plain ``UNet2DConditionModel`` again (no peft layers), so ``save_pretrained`` writes a
    standard diffusers UNet that loads without peft.
    """
    unet = backbone.unet
    if names:
        unet.fuse_lora(adapter_names=names)
    if getattr(unet, "peft_config", None):
        unet.unload_lora()
