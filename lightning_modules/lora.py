"""LoRA on one sub-model through peft, and diffusers' LoRA file format.

A diffusers model with diffusers' adapter methods (``PeftAdapterMixin``: AudioLDM's UNet) gets its adapter the
diffusers way (``add_adapter``); any other module (a transformers text encoder, a diffusers model without those
methods such as AudioLDM2's UNet) through peft's ``inject_adapter_in_model``, which is what ``add_adapter`` calls
underneath (transformers' own ``add_adapter`` needs a newer peft than diffusers does). Which sub-models ("sites") get
an adapter, and with which presets, is :mod:`lightning_modules.adapter_sites`; this module attaches one adapter to
one module.

A site in diffusers' format is written with ``save_lora_adapter``, so plain diffusers code reloads it with
``unet.load_lora_adapter(dir, prefix=None, weight_name="pytorch_lora_weights.safetensors")``; peft's format is
:mod:`lightning_modules.peft_files`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Literal, Mapping

import torch
from diffusers.loaders import PeftAdapterMixin
from diffusers.utils import logging as diffusers_logging
from peft import LoraConfig, inject_adapter_in_model

from lightning_modules.adapter_files import ADAPTER_WEIGHTS
from lightning_modules.errors import SettingError

ADAPTER_NAME = "default"

ALL_LINEAR = "all_linear"
LoraInit = Literal["gaussian", "kaiming", "pissa", "olora", "zeros"]


class LoraConfigError(SettingError):
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


def resolve_target_modules(
    module: torch.nn.Module, targets: str | list[str], presets: Mapping[str, tuple[str, ...]], site: str = "unet"
) -> list[str]:
    """Turn a preset name (of ``presets``, or ``all_linear``) or module names into the list peft matches (suffix
    match on module names).

    Raises:
        LoraConfigError: an unknown preset, or a name that matches no module of ``module`` (the site ``site``).
    """
    choices = sorted([*presets, ALL_LINEAR])
    if isinstance(targets, str):
        if targets == ALL_LINEAR:
            return _linear_names(module)
        if targets not in presets:
            raise LoraConfigError(
                f"Unknown LoRA target preset {targets!r} for the {site}; choose one of {choices} or give a list of "
                "module names such as [to_q, to_v]."
            )
        return list(presets[targets])
    names = [name for name, _ in module.named_modules()]
    unknown = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if unknown:
        short_names = {_short_name(n) for n in names}
        examples = sorted({_short_name(n) for n in _linear_names(module)} | ({"proj_in", "proj_out"} & short_names))
        raise LoraConfigError(
            f"LoRA target module(s) {unknown} match no module of the {site}. Linear layers it has: {examples}; "
            f"presets: {choices}."
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
    module: torch.nn.Module,
    rank: int,
    alpha: float,
    targets: str | list[str],
    dropout: float = 0.0,
    init: LoraInit = "gaussian",
    use_rslora: bool = False,
    use_dora: bool = False,
    *,
    presets: Mapping[str, tuple[str, ...]],
    site: str = "unet",
) -> LoraConfig:
    """Freeze ``module`` and inject a trainable LoRA adapter (see the module docstring); returns the peft config.

    The LoRA weights are float32 even on a half-precision base, so that the optimizer updates them in full precision.

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
        target_modules=resolve_target_modules(module, targets, presets, site),
        use_rslora=use_rslora,
        use_dora=use_dora,
    )
    module.requires_grad_(False)
    if isinstance(module, PeftAdapterMixin):
        module.add_adapter(config, adapter_name=ADAPTER_NAME)
    else:
        inject_adapter_in_model(config, module, adapter_name=ADAPTER_NAME)
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)
        if "lora_" in name and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
    return config


def lora_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable LoRA parameters (the only parameters the optimizer sees)."""
    return [p for name, p in unet.named_parameters() if "lora_" in name and p.requires_grad]


@contextlib.contextmanager
def quiet_diffusers() -> Iterator[None]:
    """Silence diffusers' info and warning logs inside the block (the level is restored after it)."""
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


def check_finite(module: torch.nn.Module, site: str = "unet") -> None:
    """Raise ``FloatingPointError`` when a LoRA weight of ``module`` holds NaN or inf (it must never be written)."""
    bad = [n for n, p in module.named_parameters() if "lora_" in n and not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(f"Refusing to write an adapter with non-finite weights in the {site}: {bad[:3]} ...")


def write_diffusers_adapter(module: PeftAdapterMixin, directory: Path) -> None:
    """``pytorch_lora_weights.safetensors`` in diffusers' format (what ``module.load_lora_adapter`` reads)."""
    with quiet_diffusers():  # save_lora_adapter calls module.to(dtype=None), which warns about nothing
        module.save_lora_adapter(str(directory), adapter_name=ADAPTER_NAME, weight_name=ADAPTER_WEIGHTS)


def load_diffusers_adapter(module: PeftAdapterMixin, directory: Path, weight_name: str, adapter_name: str) -> None:
    """Load a diffusers-format LoRA file into ``module`` under ``adapter_name`` (keys without a prefix)."""
    with quiet_diffusers():
        module.load_lora_adapter(str(directory), prefix=None, weight_name=weight_name, use_safetensors=True,
                                 adapter_name=adapter_name)
