"""A third AudioLDM-family backbone that exists only for tests: the proof that a new family member is one class
plus one line in ``BACKBONES``, with nothing above the seam changed.

It differs from AudioLDM where AudioLDM2 does: the prompt reaches the UNet as a variable-length stream of token
states with its mask (the tiny CLAP text model's ``last_hidden_state`` and ``attention_mask``), read by real
cross-attention of diffusers' ``AudioLDM2UNet2DConditionModel``, which has no ``PeftAdapterMixin`` (its adapters go
through peft directly and are stored in peft's format). The VAE, vocoder, tokenizer and geometry are the tiny
AudioLDM's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

from lightning_modules.audioldm import AudioLDMBackbone, tokenize
from lightning_modules.backbone import Backbone, Conditioning

PIPELINE = "TinyStreamPipeline"
REGISTRATION = (PIPELINE, "tests.third_backbone.StreamBackbone")
"""The one line in ``BACKBONES`` (tests add it with ``monkeypatch.setitem``)."""


class StreamBackbone(AudioLDMBackbone):
    """Token states and their mask as the conditioning, cross-attended by a UNet without diffusers' adapter methods."""

    kind: ClassVar[str] = "stream"
    pipeline_class: ClassVar[str] = PIPELINE
    unet_class: ClassVar[type] = AudioLDM2UNet2DConditionModel
    stream_masks: ClassVar[dict[str, str]] = {"encoder_hidden_states": "encoder_attention_mask"}
    cache_fields: ClassVar[tuple[str, ...]] = ("encoder_hidden_states", "encoder_attention_mask")
    conditioning_for_cache = Backbone.conditioning_for_cache  # the conditioning's own fields, not AudioLDM's vector
    conditioning_from_cache = Backbone.conditioning_from_cache

    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """The text model's token states [B, L, 32] and mask [B, L], L the batch's longest prompt."""
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.text_encoder.parameters())
        tokens = tokenize(self.tokenizer, prompts)
        device = self.text_encoder.device
        with torch.set_grad_enabled(trains):
            states = self.text_encoder.text_model(
                input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
            ).last_hidden_state
        return {"encoder_hidden_states": states.float().to(self.unet.device),
                "encoder_attention_mask": tokens["attention_mask"].to(self.unet.device)}

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        dtype = self.unet.dtype
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=cond["encoder_hidden_states"].to(dtype),
                         encoder_attention_mask=cond["encoder_attention_mask"]).sample


def build_stream_model(tiny_audioldm: Path, out: Path, seed: int = 0) -> Path:
    """The tiny AudioLDM's folder with a tiny ``AudioLDM2UNet2DConditionModel`` whose cross-attention reads the
    32-wide token states, and a ``model_index.json`` naming :data:`PIPELINE`."""
    shutil.copytree(tiny_audioldm, out)
    shutil.rmtree(out / "unet")
    torch.manual_seed(seed)
    AudioLDM2UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=8, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    ).save_pretrained(out / "unet")
    index: dict[str, Any] = json.loads((out / "model_index.json").read_text())
    index.update(_class_name=PIPELINE, unet=["diffusers", "AudioLDM2UNet2DConditionModel"])
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out
