"""AudioLDM (v1) behind the backbone seam: its six components, CLAP ``class_labels`` conditioning and geometry.

docs/model-facts.md, 'AudioLDM conditioning': the prompt's L2-normalised CLAP ``text_embeds`` enter the UNet as
``class_labels`` (with ``encoder_hidden_states=None``); the unconditional input is the embedding of ``""``; 16 kHz
audio, 100 mel frames per second, 64 mel bins; the decoder is the VAE then the HiFi-GAN vocoder. Every component
loads through its library's ``from_pretrained``, one code path for hub ids and local directories.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, SchedulerMixin, UNet2DConditionModel
from transformers import ClapTextModelWithProjection, PreTrainedTokenizerBase, RobertaTokenizerFast, SpeechT5HifiGan

from datamodules.latent_cache import fingerprint_module
from lightning_modules.backbone import Backbone, Conditioning
from lightning_modules.components import check_component_folders, load_components, write_components
from lightning_modules.mel_geometry import MelVocoderGeometry

COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "vocoder", "scheduler")

# Vocoder classes other than SpeechT5HifiGan that a local model_index.json may name, by class name -> module. Only
# these classes are ever imported (a name in a file never imports arbitrary code). The demo's toy AudioLDM names
# its Griffin-Lim vocoder the diffusers way: "vocoder": [library, class].
PROJECT_VOCODERS = {"GriffinLimVocoder": "audioldm_demo.griffin_lim_vocoder"}

# UNet presets. AudioLDM's attn1 and attn2 are both self-attention (the prompt is never attended to).
UNET_PRESETS: dict[str, tuple[str, ...]] = {
    "paper": ("to_q", "to_v"),
    "attention": ("to_q", "to_k", "to_v", "to_out.0"),
    "attention_proj": ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out"),
    # The text enters the UNet only through ``class_embedding`` (concatenated with the timestep embedding, which each
    # resnet reads through ``time_emb_proj``; docs/model-facts.md). Adapting that path too lets the adapter act per
    # prompt, so a new genre can be added while other prompts keep their output.
    "attention_conditioning": ("to_q", "to_k", "to_v", "to_out.0", "time_emb_proj", "class_embedding"),
}

# CLAP text-encoder presets, named as the paper's authors named them (docs/paper-recipe.md, 'Text-encoder presets'):
# the self-attention query (Wq), value (Wv) or both of every layer,
# ``text_model.encoder.layer.{0..11}.attention.self.query``. peft matches targets as name suffixes, so one suffix
# covers all layers of any depth (12 in AudioLDM, 2 in the tiny model).
TEXT_ENCODER_PRESETS: dict[str, tuple[str, ...]] = {
    "Wq": ("attention.self.query",),
    "Wv": ("attention.self.value",),
    "WqWv": ("attention.self.query", "attention.self.value"),
}
SITE_PRESETS = {"unet": UNET_PRESETS, "text_encoder": TEXT_ENCODER_PRESETS}
SITE_LABELS = {"unet": "UNet", "text_encoder": "CLAP text encoder"}


def vocoder_class(index: dict[str, Any]) -> type:
    """The vocoder class of a model: a class from :data:`PROJECT_VOCODERS` when its ``model_index.json`` names
    one, else ``SpeechT5HifiGan`` (every real AudioLDM checkpoint)."""
    entry = index.get("vocoder")
    name = entry[-1] if isinstance(entry, list) and entry else None
    if name in PROJECT_VOCODERS:
        return getattr(importlib.import_module(PROJECT_VOCODERS[name]), name)
    return SpeechT5HifiGan


def tokenize(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> dict[str, torch.Tensor]:
    """Tokenise padding only to the longest prompt.

    AudioLDMPipeline pads to 512 tokens; with the attention mask the text embedding is the same (8e-9 on the
    full-size encoder, docs/model-facts.md, 'Prompt padding') at a twentieth of the cost.
    """
    batch = tokenizer(
        prompts, padding="longest", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def encode_text(
    text_encoder: ClapTextModelWithProjection, tokenizer: PreTrainedTokenizerBase, prompts: list[str]
) -> torch.Tensor:
    """L2-normalised CLAP ``text_embeds`` [B, D], AudioLDM's ``class_labels`` conditioning.

    Gradients flow only where the encoder has trainable (LoRA) parameters and grad mode is on: a frozen encoder
    never builds a graph, an adapted one passes the loss's gradient into its adapter.
    """
    trains = torch.is_grad_enabled() and any(p.requires_grad for p in text_encoder.parameters())
    tokens = tokenize(tokenizer, prompts)
    device = text_encoder.device
    with torch.set_grad_enabled(trains):
        output = text_encoder(
            input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
        )
    return F.normalize(output.text_embeds.float(), dim=-1)


@dataclass
class AudioLDMBackbone(MelVocoderGeometry, Backbone):
    """The parts of an AudioLDM checkpoint, as diffusers' AudioLDMPipeline holds them, behind the backbone seam."""

    vae: AutoencoderKL
    text_encoder: ClapTextModelWithProjection
    tokenizer: PreTrainedTokenizerBase
    unet: UNet2DConditionModel
    vocoder: torch.nn.Module
    scheduler: SchedulerMixin
    channels_last: bool = False

    kind: ClassVar[str] = "audioldm"
    pipeline_class: ClassVar[str] = "AudioLDMPipeline"
    conditioning_sites: ClassVar[tuple[str, ...]] = ("text_encoder",)
    cache_fields: ClassVar[tuple[str, ...]] = ("text_embeds",)
    unet_class: ClassVar[type] = UNet2DConditionModel
    """The diffusers class the ``unet`` folder loads as (a family member with another UNet names its own)."""

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, source: str, revision: str | None = None, local: Path | None = None,
             index: dict[str, Any] | None = None) -> "AudioLDMBackbone":
        """Load the six components (see :func:`lightning_modules.backbone.load_backbone`)."""
        if local is not None:
            check_component_folders(local, COMPONENTS, cls.pipeline_class, "cvssp/audioldm-s-full-v2")
        vocoder = vocoder_class(index or {})
        loaders = {
            "vae": lambda src, rev: AutoencoderKL.from_pretrained(src, subfolder="vae", revision=rev),
            "text_encoder": lambda src, rev: ClapTextModelWithProjection.from_pretrained(
                src, subfolder="text_encoder", revision=rev
            ),
            "tokenizer": lambda src, rev: RobertaTokenizerFast.from_pretrained(
                src, subfolder="tokenizer", revision=rev
            ),
            "unet": lambda src, rev: cls.unet_class.from_pretrained(src, subfolder="unet", revision=rev),
            "vocoder": lambda src, rev: vocoder.from_pretrained(src, subfolder="vocoder", revision=rev),
            "scheduler": lambda src, rev: DDIMScheduler.from_pretrained(src, subfolder="scheduler", revision=rev),
        }
        return cls(**load_components(source, revision, loaders, cls.pipeline_class))

    def named_modules(self) -> dict[str, torch.nn.Module]:
        return {"vae": self.vae, "text_encoder": self.text_encoder, "unet": self.unet, "vocoder": self.vocoder}

    def adapter_sites(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "text_encoder": self.text_encoder}

    def lora_presets(self, site: str) -> dict[str, tuple[str, ...]]:
        if site not in SITE_PRESETS:
            raise ValueError(f"AudioLDM has no adapter site {site!r}; sites: {sorted(self.adapter_sites())}.")
        return dict(SITE_PRESETS[site])

    def site_label(self, site: str) -> str:
        return SITE_LABELS[site]

    def identity(self) -> dict[str, Any]:
        vocabulary = json.dumps(sorted(self.tokenizer.get_vocab().items())).encode()
        return {
            "audio_id": fingerprint_module(self.vae),
            "text_id": fingerprint_module(self.text_encoder) + hashlib.blake2b(vocabulary, digest_size=8).hexdigest(),
            "scaling_factor": self.scaling_factor,
        }

    def save_pretrained(self, directory: Path) -> None:
        """Save every component as ``AudioLDMPipeline.save_pretrained`` lays them out (the pipeline class is
        deprecated in diffusers, so the project writes the layout itself)."""
        write_components(Path(directory), self.pipeline_class, {name: getattr(self, name) for name in COMPONENTS})

    # ------------------------------------------------------------------------------------------- conditioning
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        embeds = encode_text(self.text_encoder, self.tokenizer, prompts)
        return {"class_labels": embeds.to(self.unet.device)}

    def conditioning_from_cache(self, batch: dict[str, Any]) -> Conditioning:
        return {"class_labels": batch["text_embeds"].float()}

    def conditioning_for_cache(self, cond: Conditioning) -> dict[str, torch.Tensor]:
        return {"text_embeds": cond["class_labels"].float().cpu()}

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        if self.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        dtype = self.unet.dtype
        return self.unet(
            noisy.to(dtype), timesteps, encoder_hidden_states=None, class_labels=cond["class_labels"].to(dtype)
        ).sample
