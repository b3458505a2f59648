"""Adapters for the tiny model without training: random LoRA weights written the way training writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel

from lightning_modules.adapter_sites import (
    AdapterSettings,
    adapter_parameters,
    attach_adapters,
    describe_sites,
    save_adapters,
    write_adapter_folder,
)
from lightning_modules.audioldm import UNET_PRESETS
from lightning_modules.backbone import load_backbone
from lightning_modules.adapter_files import DIFFUSERS_FORMAT
from lightning_modules.lora import add_lora, lora_parameters
from audioldm_demo.tiny import TEXT_PROJECTION_DIM


def write_adapter(
    unet: UNet2DConditionModel, out: Path, seed: int, targets: str = "attention", info: dict[str, Any] | None = None
) -> Path:
    """Inject a rank-2 LoRA into ``unet`` with N(0, 0.2) weights from ``seed`` and save it with ``info``."""
    config = add_lora(unet, rank=2, alpha=4.0, targets=targets, presets=UNET_PRESETS)
    generator = torch.Generator().manual_seed(seed)
    for param in lora_parameters(unet):
        param.data = torch.randn(param.shape, generator=generator) * 0.2
    record = {"rank": 2, "alpha": 4.0, "target_modules": sorted(config.target_modules), "global_step": 10 * seed}
    return write_adapter_folder({"unet": (unet, DIFFUSERS_FORMAT)}, out, {**record, **(info or {})})


def tiny_adapter(model_dir: Path, out: Path, seed: int, targets: str = "attention", **info: Any) -> Path:
    """An adapter for the tiny model in ``model_dir``."""
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    return write_adapter(unet, out, seed, targets, {"base_model": str(model_dir), **info})


def site_adapter(
    model_dir: Path, out: Path, seed: int, unet_targets: str | None = "attention",
    text_encoder_targets: str | None = "WqWv",
) -> Path:
    """An adapter for the tiny model with a UNet site, a text-encoder site or both (N(0, 0.3) weights from ``seed``),
    written by the training export path (``save_adapters``)."""
    return sites_adapter(model_dir, out, seed, {"unet": unet_targets, "text_encoder": text_encoder_targets})


def sites_adapter(model_dir: Path, out: Path, seed: int, targets: dict[str, str | None]) -> Path:
    """An adapter for any backbone with the given sites' targets (site -> preset or None), rank 2, N(0, 0.3) weights
    from ``seed``, written by the training export path (``save_adapters``)."""
    backbone = load_backbone(str(model_dir))
    configs = {site: AdapterSettings(site_targets, rank=2, alpha=4.0 if site == "unet" else 8.0)
               for site, site_targets in targets.items()}
    configs = {site: config for site, config in configs.items() if config.enabled}
    lora_configs = attach_adapters(backbone, configs)
    generator = torch.Generator().manual_seed(seed)
    for param in adapter_parameters(backbone):
        param.data = torch.randn(param.shape, generator=generator) * 0.3
    info = {"base_model": str(model_dir), "global_step": 10 * seed,
            "sites": describe_sites(backbone, configs, lora_configs)}
    return save_adapters(backbone, out, info)


def other_base_adapter(out: Path) -> Path:
    """An adapter for a UNet with other widths (16/48 channels instead of 32/64): the wrong base for the tiny model."""
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=8,
        out_channels=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 48),
        layers_per_block=1,
        cross_attention_dim=(16, 48),
        attention_head_dim=8,
        norm_num_groups=8,
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=TEXT_PROJECTION_DIM,
        class_embeddings_concat=True,
    )
    return write_adapter(unet, out, seed=5, info={"base_model": "someone/other-audioldm"})


def make_adapters(tiny_model_dir: Path, root: Path) -> dict[str, Path]:
    """Two adapters for the tiny model (jazz: attention layers, lofi: to_q/to_v) and one for another base."""
    return {
        "jazz": tiny_adapter(tiny_model_dir, root / "jazz", seed=1, targets="attention", genres=["jazz"]),
        "lofi": tiny_adapter(tiny_model_dir, root / "lofi", seed=2, targets="paper", genres=["lofi"]),
        "other": other_base_adapter(root / "other"),
    }
