"""Load one or several LoRA adapters into a backbone's adapter sites, mix them with weights, and fuse them.

Every saved adapter folder holds its UNet site at the root (``pytorch_lora_weights.safetensors``) and its
text-encoder site, if any, in ``text_encoder/`` (peft's format); an adapter may hold either or both. This is the one
path by which ``generate``, ``merge``, the evaluation tools and the demo put adapters on a backbone.

The UNet goes through diffusers' peft integration (``load_lora_adapter``, ``set_adapters``, ``fuse_lora``,
``unload_lora``), the text encoder through peft and diffusers' text-encoder helpers
(:mod:`lightning_modules.peft_files`), so what the project does with adapters is what plain diffusers and peft code
does with them. Before anything is loaded, every adapter's tensor shapes are checked against its sites: an adapter
trained for another base fails with a message that names it, instead of peft's page of ``size mismatch`` lines (or,
for unknown layer names, a warning and an adapter that silently does nothing).
"""

from __future__ import annotations

import warnings

import torch
from lightning.pytorch.utilities import rank_zero_warn

from lightning_modules.adapter_files import AdapterError, AdapterFile
from lightning_modules.adapter_sites import TEXT_ENCODER_SITE
from lightning_modules.base_identity import base_fingerprint, fingerprint_mismatch
from lightning_modules.backbone import Backbone
from lightning_modules.lora import quiet_diffusers
from lightning_modules.peft_files import fuse_peft_adapters, load_peft_adapter, mix_peft_adapters

_LORA_MATRICES = (".lora_A.", ".lora_B.")


def _mismatches(model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], site: str = "UNet") -> list[str]:
    """Human-readable problems of an adapter's ``shapes`` against ``model``: missing layers and wrong feature counts."""
    modules = dict(model.named_modules())
    problems: list[str] = []
    for key, shape in shapes.items():
        marker = next((m for m in _LORA_MATRICES if m in key), None)
        if marker is None:
            continue
        layer_name = key.split(marker)[0]
        layer = modules.get(layer_name)
        if layer is None:
            problems.append(f"{layer_name}: no such layer in the base {site}")
            continue
        weight = getattr(getattr(layer, "base_layer", layer), "weight", None)
        if weight is None:
            problems.append(f"{layer_name}: not a layer with weights in the base {site}")
            continue
        if marker == ".lora_A.":
            got, expected, kind = shape[1], weight.shape[1], "input"
        else:
            got, expected, kind = shape[0], weight.shape[0], "output"
        if got != expected:
            problems.append(f"{layer_name}: {got} {kind} features in the adapter, {expected} in the base")
    return problems


def check_adapter_fits(backbone: Backbone, adapter: AdapterFile, base: str) -> None:
    """Raise unless every LoRA matrix of ``adapter`` matches a layer of its site in name and size.

    Raises:
        AdapterError: naming the adapter, the base ``base``, the first mismatches and the base it was trained on.
    """
    problems = _mismatches(backbone.unet, adapter.shapes)
    if adapter.text_encoder_shapes:
        text_encoder = backbone.adapter_sites()[TEXT_ENCODER_SITE]
        problems += _mismatches(text_encoder, adapter.text_encoder_shapes, "text encoder")
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


def check_same_base(backbone: Backbone, adapters: list[AdapterFile], base: str, allow_other_base: bool) -> None:
    """Refuse (or, with ``allow_other_base``, warn about) adapters whose recorded base fingerprint differs from the
    loaded base's: same architecture, other weights (:mod:`lightning_modules.base_identity`). Adapters that record
    no fingerprint (plain diffusers LoRAs, older runs) are not checked.

    Raises:
        AdapterError: naming the adapter, the base it records and the base loaded now.
    """
    recorded = [a for a in adapters if isinstance(a.info.get("base_fingerprint"), dict)]
    if not recorded:
        return
    current = base_fingerprint(backbone.adapter_sites())
    for adapter in recorded:
        if not fingerprint_mismatch(adapter.info, current):
            continue
        message = (
            f"Adapter {adapter.spec.name!r} ({adapter.spec.directory}) was trained on another base: its "
            f"adapter_info.json records {adapter.info.get('base_model')!r} (weights fingerprint "
            f"{adapter.info['base_fingerprint']['value'][:12]}), but {base!r} has fingerprint {current['value'][:12]}. "
            "The shapes match, so it would load, but its effect on this base was never measured."
        )
        if not allow_other_base:
            raise AdapterError(message + " Use the base it was trained on (--base), or pass --allow-other-base to "
                               "apply it anyway.")
        rank_zero_warn(message + " Applied anyway (--allow-other-base).")


def _load_unet_part(unet: torch.nn.Module, adapter: AdapterFile) -> None:
    spec = adapter.spec
    try:
        with quiet_diffusers(), warnings.catch_warnings():
            # peft warns on every adapter after the first that several adapters now share the model: intended.
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            unet.load_lora_adapter(
                str(spec.directory), prefix=None, weight_name=spec.weight_name, use_safetensors=True,
                adapter_name=spec.name,
            )
    except Exception as error:  # peft and diffusers raise ValueError, RuntimeError or KeyError here
        raise AdapterError(f"Adapter {spec.name!r} ({spec.weights_file}) failed to load: {error}") from error


def _load_text_encoder_part(text_encoder: torch.nn.Module, adapter: AdapterFile) -> None:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            load_peft_adapter(text_encoder, adapter.text_encoder_directory, adapter.spec.name)
    except AdapterError:
        raise
    except Exception as error:  # peft raises ValueError, RuntimeError or KeyError here
        raise AdapterError(
            f"Adapter {adapter.spec.name!r} ({adapter.text_encoder_directory}) failed to load: {error}"
        ) from error


def load_adapters(backbone: Backbone, adapters: list[AdapterFile], base: str, allow_other_base: bool = False) -> None:
    """Load adapters (read by ``adapter_files.read_adapter``) into the backbone under their names, at their weights.

    Each adapter goes into the sites it holds (the UNet, the text encoder or both). All adapters are checked
    against the model before the first one is loaded, so a bad adapter leaves the model as it was. The weights mix
    adapters per site as ``set_adapters(names, weights)`` does: each LoRA update is scaled by its weight (1.0: as
    trained; 0.0: off).

    Raises:
        AdapterError: an adapter for another base (other shapes; or other weights, unless ``allow_other_base``), a
            name already loaded, or a load that diffusers or peft refuses.
    """
    if not adapters:
        return
    sites = backbone.adapter_sites()
    unet, text_encoder = backbone.unet, sites.get(TEXT_ENCODER_SITE)
    loaded = set(getattr(unet, "peft_config", {}) or {}) | set(getattr(text_encoder, "peft_config", {}) or {})
    for adapter in adapters:
        if adapter.spec.name in loaded:
            raise AdapterError(f"An adapter named {adapter.spec.name!r} is already loaded; name it NAME=PATH=WEIGHT.")
        if adapter.text_encoder_shapes and text_encoder is None:
            raise AdapterError(f"Adapter {adapter.spec.name!r} has a text-encoder part, but the {backbone.kind} "
                               "backbone has no text-encoder site.")
        check_adapter_fits(backbone, adapter, base)
    check_same_base(backbone, adapters, base, allow_other_base)
    on_unet = [a for a in adapters if a.shapes]
    on_text_encoder = [a for a in adapters if a.text_encoder_shapes]
    for adapter in on_unet:
        _load_unet_part(unet, adapter)
    for adapter in on_text_encoder:
        _load_text_encoder_part(text_encoder, adapter)
    if on_unet:
        unet.set_adapters([a.spec.name for a in on_unet], weights=[a.spec.weight for a in on_unet])
    if on_text_encoder:
        mix_peft_adapters(text_encoder, [a.spec.name for a in on_text_encoder],
                          [a.spec.weight for a in on_text_encoder])


def fuse_adapters(backbone: Backbone, names: list[str]) -> None:
    """Fold the active adapters ``names`` (at their mixing weights) into every site's own weights.

    Afterwards the UNet is a plain ``UNet2DConditionModel`` and the text encoder a plain transformers model again
    (no peft layers), so ``save_pretrained`` writes standard diffusers components that load without peft.
    """
    unet = backbone.unet
    on_unet = [name for name in names if name in (getattr(unet, "peft_config", None) or {})]
    if on_unet:
        unet.fuse_lora(adapter_names=on_unet)
    if getattr(unet, "peft_config", None):
        unet.unload_lora()
    text_encoder = backbone.adapter_sites().get(TEXT_ENCODER_SITE)
    if text_encoder is not None and getattr(text_encoder, "peft_config", None):
        fuse_peft_adapters(text_encoder, [name for name in names if name in text_encoder.peft_config])
