"""LoRA on the AudioLDM UNet through peft, the diffusers way (``unet.add_adapter``), and adapter files.

Adapters are written with diffusers' ``save_lora_adapter`` so plain diffusers code reloads them with
``unet.load_lora_adapter(dir, prefix=None, weight_name="pytorch_lora_weights.safetensors")``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
from diffusers import UNet2DConditionModel
from diffusers.utils import logging as diffusers_logging
from peft import LoraConfig

ADAPTER_NAME = "default"
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"
ADAPTER_INFO = "adapter_info.json"

TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "paper": ("to_q", "to_v"),
    "attention": ("to_q", "to_k", "to_v", "to_out.0"),
    "attention_proj": ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out"),
    # AudioLDM's text enters the UNet only through ``class_embedding`` (added to the timestep embedding, which each
    # resnet reads through ``time_emb_proj``); self-attention never sees the prompt. Adapting that path too lets
    # the adapter act per prompt, so a new genre can be added while other prompts keep their output.
    "attention_conditioning": ("to_q", "to_k", "to_v", "to_out.0", "time_emb_proj", "class_embedding"),
}
ALL_LINEAR = "all_linear"
LoraInit = Literal["gaussian", "kaiming", "pissa", "olora", "zeros"]


class LoraConfigError(ValueError):
    """An invalid LoRA setting; the message names the setting and the allowed values."""


def _linear_names(unet: torch.nn.Module) -> list[str]:
    """Full names of the UNet's own nn.Linear layers (not peft's injected ones)."""
    return sorted(
        name
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and "lora_" not in name and not name.endswith("base_layer")
    )


def _short_name(module_name: str) -> str:
    """``...transformer_blocks.0.attn1.to_q`` -> ``to_q``; ``...attn1.to_out.0`` -> ``to_out.0``."""
    parts = module_name.split(".")
    if parts[-1].isdigit() and len(parts) > 1:
        return ".".join(parts[-2:])
    return parts[-1]


def resolve_target_modules(unet: torch.nn.Module, targets: str | list[str]) -> list[str]:
    """Turn a preset name or a list of module names into the list peft matches (suffix match on module names).

    Raises:
        LoraConfigError: an unknown preset, or a name that matches no module of this UNet.
    """
    if isinstance(targets, str):
        if targets == ALL_LINEAR:
            return _linear_names(unet)
        if targets not in TARGET_PRESETS:
            raise LoraConfigError(
                f"Unknown LoRA target preset {targets!r}; choose one of {sorted([*TARGET_PRESETS, ALL_LINEAR])} "
                "or give a list of module names such as [to_q, to_v]."
            )
        return list(TARGET_PRESETS[targets])
    names = [name for name, _ in unet.named_modules()]
    unknown = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unknown:
        examples = sorted({_short_name(n) for n in _linear_names(unet)} | {"proj_in", "proj_out"})
        raise LoraConfigError(
            f"LoRA target module(s) {unknown} match no module of this UNet. Linear layers it has: {examples}; "
            f"presets: {sorted([*TARGET_PRESETS, ALL_LINEAR])}."
        )
    return list(targets)


def check_lora_settings(rank: int, alpha: float, dropout: float) -> None:
    """Fail fast, before any model is loaded, on settings no UNet accepts."""
    if rank <= 0:
        raise LoraConfigError(f"LoRA rank must be a positive integer, got {rank}. The paper used rank 2.")
    if alpha <= 0:
        raise LoraConfigError(f"LoRA alpha must be positive, got {alpha}. The paper used alpha 2 or 4.")
    if not 0.0 <= dropout < 1.0:
        raise LoraConfigError(f"LoRA dropout must be in [0, 1), got {dropout}.")


def add_lora(
    unet: UNet2DConditionModel,
    rank: int,
    alpha: float,
    targets: str | list[str] = "paper",
    dropout: float = 0.0,
    init: LoraInit = "gaussian",
    use_rslora: bool = False,
    use_dora: bool = False,
) -> LoraConfig:
    """Freeze the UNet and inject a trainable LoRA adapter; returns the peft config used.

    Raises:
        LoraConfigError: rank <= 0, alpha <= 0, dropout outside [0, 1), or unknown targets.
    """
    check_lora_settings(rank, alpha, dropout)
    init_arg: bool | str = {"kaiming": True, "zeros": False}.get(init, init)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        init_lora_weights=init_arg,
        target_modules=resolve_target_modules(unet, targets),
        use_rslora=use_rslora,
        use_dora=use_dora,
    )
    unet.requires_grad_(False)
    unet.add_adapter(config, adapter_name=ADAPTER_NAME)
    for name, param in unet.named_parameters():
        param.requires_grad_("lora_" in name)
    return config


def lora_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable LoRA parameters (the only parameters the optimizer sees)."""
    return [p for name, p in unet.named_parameters() if "lora_" in name and p.requires_grad]


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


def _atomic_directory(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))


def _publish(staging: Path, final: Path) -> None:
    """Move each fully written file of ``staging`` into ``final`` with an atomic ``os.replace``.

    The adapter directory always exists with complete files: a kill leaves either the previous or the new version
    of each file, never a half-written one. (A directory cannot be swapped atomically with a plain rename.)
    """
    final.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir()):
        os.replace(path, final / path.name)
    staging.rmdir()


def save_adapter(unet: UNet2DConditionModel, directory: str | Path, info: dict[str, Any]) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` (diffusers format) and ``adapter_info.json`` atomically.

    Raises:
        FloatingPointError: the adapter holds NaN or inf (it is never written).
    """
    bad = [n for n, p in unet.named_parameters() if "lora_" in n and not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(f"Refusing to write an adapter with non-finite weights in {bad[:3]} ...")
    final = Path(directory)
    staging = _atomic_directory(final)
    try:
        with _quiet_diffusers():  # save_lora_adapter calls unet.to(dtype=None), which warns about nothing
            unet.save_lora_adapter(str(staging), adapter_name=ADAPTER_NAME, weight_name=ADAPTER_WEIGHTS)
        (staging / ADAPTER_INFO).write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


# Public names for the tools (generate, merge) that stage their output beside it and load adapters quietly, the
# same way as the adapter export above.
staging_directory = _atomic_directory
quiet_diffusers = _quiet_diffusers
