"""LoRA through peft directly, for any module: peft's ``save_pretrained`` format, and mixing and fusing of any site.

A site in peft's format (every site but a UNet with diffusers' adapter methods: the text encoder, any module without
``PeftAdapterMixin``) lives in ``<adapter>/<site>/``, which is what ``PeftModel.save_pretrained`` writes, so plain
peft code reads it with no project import::

    PeftModel.from_pretrained(ClapTextModelWithProjection.from_pretrained(base, subfolder="text_encoder"),
                              "<adapter>/text_encoder")

``adapter_config.json`` is the ``LoraConfig`` (naming the model class as ``PeftModel`` does, in ``auto_mapping``);
``adapter_model.safetensors`` is peft's state dict of the adapter with ``PeftModel``'s key prefix
(``base_model.model.<module>.lora_A.weight``). The project keeps every site a plain model with the adapter injected
(``inject_adapter_in_model``), so the prefix is added on writing and removed on loading.

Mixing and fusing act on peft's LoRA layers wherever they came from, so they serve every site in either format: they
are the functions diffusers' own ``set_adapters`` and ``fuse_lora`` call underneath.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from diffusers.loaders.lora_base import fuse_text_encoder_lora
from diffusers.utils.peft_utils import recurse_remove_peft_layers, set_weights_and_activate_adapters
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.utils import load_peft_weights
from safetensors.torch import save_file

from lightning_modules.adapter_files import PEFT_KEY_PREFIX, PEFT_WEIGHTS, AdapterError
from lightning_modules.lora import ADAPTER_NAME


def write_peft_adapter(module: torch.nn.Module, directory: Path, adapter_name: str = ADAPTER_NAME) -> None:
    """Write ``module``'s adapter ``adapter_name`` into ``directory`` as ``PeftModel.save_pretrained`` would."""
    directory.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(module, adapter_name=adapter_name)
    tensors = {PEFT_KEY_PREFIX + key: value.detach().contiguous() for key, value in state.items()}
    save_file(tensors, str(directory / PEFT_WEIGHTS), metadata={"format": "pt"})
    config = dataclasses.replace(module.peft_config[adapter_name], inference_mode=True)
    mapping = {"base_model_class": type(module).__name__, "parent_library": type(module).__module__}
    config.save_pretrained(str(directory), auto_mapping_dict=mapping)


def load_peft_adapter(module: torch.nn.Module, directory: Path, adapter_name: str) -> None:
    """Inject the adapter saved in ``directory`` into ``module`` under ``adapter_name`` and load its weights.

    Raises:
        AdapterError: a tensor of the file has no place in ``module`` (the adapter is for another model).
    """
    config = LoraConfig.from_pretrained(str(directory))
    config.inference_mode = True
    inject_adapter_in_model(config, module, adapter_name=adapter_name)
    state = {key.removeprefix(PEFT_KEY_PREFIX): value for key, value in load_peft_weights(str(directory)).items()}
    result = set_peft_model_state_dict(module, state, adapter_name=adapter_name)
    if result.unexpected_keys:
        raise AdapterError(
            f"Adapter {adapter_name!r} ({directory}): {len(result.unexpected_keys)} tensor(s) fit no layer of the "
            f"{type(module).__name__} (first: {result.unexpected_keys[0]})."
        )


def mix_adapters(module: torch.nn.Module, names: list[str], weights: list[float]) -> None:
    """Activate the adapters ``names`` of ``module`` together, each LoRA update scaled by its weight (what diffusers'
    ``set_adapters`` does for one float weight per adapter)."""
    set_weights_and_activate_adapters(module, names, weights)


def fuse_adapters_into(module: torch.nn.Module, names: list[str]) -> None:
    """Fold the adapters ``names`` (at their mixing weights) into ``module``'s weights and remove every LoRA layer,
    leaving the plain model that ``save_pretrained`` writes in its usual format (what ``fuse_lora`` then
    ``unload_lora`` do for a diffusers model)."""
    if names:
        fuse_text_encoder_lora(module, adapter_names=names)  # merges every peft LoRA layer; not text-specific
    recurse_remove_peft_layers(module)
    if getattr(module, "peft_config", None) is not None:
        del module.peft_config
    if getattr(module, "_hf_peft_config_loaded", None):
        module._hf_peft_config_loaded = None  # diffusers' flag that the model carries adapters
