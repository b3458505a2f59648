"""Load one or several saved LoRA adapters into a backbone's adapter sites, mix them with weights, and fuse them.

An adapter folder holds one or more sites (:func:`lightning_modules.adapter_files.read_adapter`), each in the format
the backbone stores that site in (:meth:`lightning_modules.backbone.Backbone.adapter_format`): a UNet with
diffusers' adapter methods through ``load_lora_adapter``, every other site through peft directly
(:mod:`lightning_modules.peft_files`). Mixing and fusing act on peft's layers and so serve every site alike. This is
the one path by which ``generate``, ``merge``, the evaluation tools and the demo put adapters on a backbone.

Before anything is loaded, every adapter is checked against the backbone: an adapter recorded for another backbone
(AudioLDM2's given to AudioLDM, or the reverse), a site the backbone does not have, a site
stored in another format than the backbone's, or tensor shapes that differ from the site's layers fail with a
message naming the adapter, its folder and the backbone, instead of peft's page of ``size mismatch`` lines (or, for
unknown layer names, a warning and an adapter that silently does nothing). Nothing is dropped without a word.
"""

from __future__ import annotations

import warnings

import torch
from lightning.pytorch.utilities import rank_zero_warn

from lightning_modules.adapter_files import DIFFUSERS_FORMAT, AdapterError, AdapterFile, SiteFile
from lightning_modules.base_identity import base_fingerprint, fingerprint_mismatch
from lightning_modules.backbone import Backbone
from lightning_modules.lora import load_diffusers_adapter
from lightning_modules.peft_files import fuse_adapters_into, load_peft_adapter, mix_adapters

_LORA_MATRICES = (".lora_A.", ".lora_B.")


def _mismatches(model: torch.nn.Module, shapes: dict[str, tuple[int, ...]], site: str) -> list[str]:
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


def check_sites_exist(backbone: Backbone, adapter: AdapterFile) -> None:
    """Raise unless the backbone has every site of ``adapter``, stored in the format the backbone uses for it.

    Raises:
        AdapterError: naming the adapter, the site's folder, the backbone and its sites.
    """
    recorded = adapter.info.get("backbone")
    if recorded and recorded != backbone.kind:
        pipeline = adapter.info.get("pipeline") or "its pipeline"
        trained_on = adapter.info.get("base_model")
        raise AdapterError(
            f"Adapter {adapter.spec.name!r} ({adapter.spec.directory}) was trained for the {recorded} backbone "
            f"({pipeline}, adapter_info.json), but the base model is {backbone.kind} ({backbone.pipeline_class}). "
            f"Use a {pipeline} base (--base)" + (f", e.g. the one it was trained on: {trained_on}." if trained_on
                                                 else ".")
        )
    sites = backbone.adapter_sites()
    for site in adapter.sites.values():
        if site.site not in sites:
            raise AdapterError(
                f"Adapter {adapter.spec.name!r}: {site.directory} adapts a site {site.site!r} that the "
                f"{backbone.kind} backbone does not have (its sites: {sorted(sites)}). Use the base model the adapter "
                "was trained with (--base)."
            )
        expected = backbone.adapter_format(site.site)
        if site.format != expected:
            where = f"{site.directory}/<files>" if site.format == DIFFUSERS_FORMAT else str(site.directory)
            raise AdapterError(
                f"Adapter {adapter.spec.name!r}: its {site.site} site is stored in {site.format}'s format ({where}), "
                f"but the {backbone.kind} backbone keeps that site in {expected}'s format (docs/adapters.md); the "
                "adapter was written for another backbone. Use the base model it was trained with (--base)."
            )


def check_adapter_fits(backbone: Backbone, adapter: AdapterFile, base: str) -> None:
    """Raise unless every site of ``adapter`` exists in the backbone and every LoRA matrix matches a layer of its
    site in name and size.

    Raises:
        AdapterError: naming the adapter, the base ``base``, the first mismatches and the base it was trained on.
    """
    check_sites_exist(backbone, adapter)
    sites = backbone.adapter_sites()
    problems = [problem for site in adapter.sites.values()
                for problem in _mismatches(sites[site.site], site.shapes, backbone.site_label(site.site))]
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


def _load_site(module: torch.nn.Module, adapter: AdapterFile, site: SiteFile) -> None:
    """Load one site of ``adapter`` into ``module`` under the adapter's name, by the site's format."""
    name = adapter.spec.name
    try:
        with warnings.catch_warnings():
            # peft warns on every adapter after the first that several adapters now share the model: intended.
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            if site.format == DIFFUSERS_FORMAT:
                load_diffusers_adapter(module, site.directory, adapter.spec.weight_name, name)
            else:
                load_peft_adapter(module, site.directory, name)
    except AdapterError:
        raise
    except Exception as error:  # peft and diffusers raise ValueError, RuntimeError or KeyError here
        where = adapter.spec.weights_file if site.format == DIFFUSERS_FORMAT else site.directory
        raise AdapterError(f"Adapter {name!r} ({where}) failed to load: {error}") from error


def load_adapters(backbone: Backbone, adapters: list[AdapterFile], base: str, allow_other_base: bool = False) -> None:
    """Load adapters (read by ``adapter_files.read_adapter``) into the backbone under their names, at their weights.

    Each adapter goes into the sites it holds. All adapters are checked against the model before the first one is
    loaded, so a bad adapter leaves the model as it was. The weights mix adapters per site as
    ``set_adapters(names, weights)`` does: each LoRA update is scaled by its weight (1.0: as trained; 0.0: off).

    Raises:
        AdapterError: an adapter for another base or backbone (a site it lacks, another format, other shapes; or
            other weights, unless ``allow_other_base``), a name already loaded, or a load that diffusers or peft
            refuses.
    """
    if not adapters:
        return
    sites = backbone.adapter_sites()
    loaded = {name for module in sites.values() for name in (getattr(module, "peft_config", None) or {})}
    for adapter in adapters:
        if hasattr(torch.nn.Module, adapter.spec.name):  # peft stores each adapter as a submodule of that name
            raise AdapterError(f"Adapter name {adapter.spec.name!r} ({adapter.spec.directory}) is a method of torch "
                               "modules, which peft cannot use as an adapter name; name it otherwise: "
                               "--adapter NAME=PATH=WEIGHT.")
        if adapter.spec.name in loaded:
            raise AdapterError(f"An adapter named {adapter.spec.name!r} is already loaded; name it NAME=PATH=WEIGHT.")
        check_adapter_fits(backbone, adapter, base)
    check_same_base(backbone, adapters, base, allow_other_base)
    for site_name, module in sites.items():
        on_site = [adapter for adapter in adapters if site_name in adapter.sites]
        for adapter in on_site:
            _load_site(module, adapter, adapter.sites[site_name])
        if on_site:
            mix_adapters(module, [a.spec.name for a in on_site], [a.spec.weight for a in on_site])


def fuse_adapters(backbone: Backbone, names: list[str]) -> None:
    """Fold the active adapters ``names`` (at their mixing weights) into every site's own weights.

    Afterwards every site is a plain model again (no peft layers), so ``save_pretrained`` writes standard diffusers
    and transformers components that load without peft.
    """
    for module in backbone.adapter_sites().values():
        config = getattr(module, "peft_config", None)
        if config:
            fuse_adapters_into(module, [name for name in names if name in config])
