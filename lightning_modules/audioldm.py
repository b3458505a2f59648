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
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import diffusers
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, SchedulerMixin, UNet2DConditionModel
from transformers import ClapTextModelWithProjection, PreTrainedTokenizerBase, RobertaTokenizerFast, SpeechT5HifiGan

from datamodules.latent_cache import fingerprint_module
from lightning_modules.backbone import Backbone, Conditioning, ModelLoadError

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


def _check_local_directory(path: Path) -> None:
    missing = [name for name in COMPONENTS if not (path / name).is_dir()]
    if missing:
        raise ModelLoadError(
            f"Base model directory {path} lacks the component folder(s) {', '.join(missing)}. An AudioLDM directory "
            f"holds {', '.join(COMPONENTS)} (as AudioLDMPipeline.save_pretrained writes them). Point "
            "`model.pretrained_model` at a complete directory or at a hub id such as cvssp/audioldm-s-full-v2."
        )


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
class AudioLDMBackbone(Backbone):
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
            _check_local_directory(local)
        vocoder = vocoder_class(index or {})
        loaders = {
            "vae": lambda: AutoencoderKL.from_pretrained(source, subfolder="vae", revision=revision),
            "text_encoder": lambda: ClapTextModelWithProjection.from_pretrained(
                source, subfolder="text_encoder", revision=revision
            ),
            "tokenizer": lambda: RobertaTokenizerFast.from_pretrained(source, subfolder="tokenizer", revision=revision),
            "unet": lambda: cls.unet_class.from_pretrained(source, subfolder="unet", revision=revision),
            "vocoder": lambda: vocoder.from_pretrained(source, subfolder="vocoder", revision=revision),
            "scheduler": lambda: DDIMScheduler.from_pretrained(source, subfolder="scheduler", revision=revision),
        }
        parts = {}
        for name, load in loaders.items():
            try:
                parts[name] = load()
            except Exception as error:  # hub and file errors come in many types; each is re-raised with context
                raise ModelLoadError(
                    f"Cannot load the {name} of {source!r}: {error}. For a hub id, check the name and the network "
                    "(or set HF_HUB_OFFLINE=1 with the model already in the cache); for a directory, check "
                    f"{name}/ holds its config and weights."
                ) from error
        return cls(**parts)

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

    def model_index(self) -> dict[str, object]:
        """``model_index.json``: for each component, the library and class that ``from_pretrained`` instantiates."""
        index: dict[str, object] = {"_class_name": self.pipeline_class, "_diffusers_version": diffusers.__version__}
        for name in COMPONENTS:
            component = type(getattr(self, name))
            index[name] = [component.__module__.split(".")[0], component.__name__]
        return index

    def save_pretrained(self, directory: Path) -> None:
        """Save every component as ``AudioLDMPipeline.save_pretrained`` lays them out (the pipeline class is
        deprecated in diffusers, so the project writes the layout itself)."""
        directory = Path(directory)
        for name in COMPONENTS:
            getattr(self, name).save_pretrained(directory / name)
        (directory / "model_index.json").write_text(json.dumps(self.model_index(), indent=2) + "\n")

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

    # ------------------------------------------------------------------------------------------------ geometry
    @property
    def sampling_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def seconds_per_frame(self) -> float:
        """Mel hop in seconds, as the pipeline derives it: ``prod(upsample_rates) / sampling_rate``."""
        return math.prod(self.vocoder.config.upsample_rates) / self.sampling_rate

    def mel_frames(self, duration: float) -> int:
        frames = int(duration / self.seconds_per_frame)
        return int(math.ceil(frames / self.vae_scale_factor)) * self.vae_scale_factor

    def latent_shape(self, batch_size: int, duration: float) -> tuple[int, int, int, int]:
        factor = self.vae_scale_factor
        return (
            batch_size,
            int(self.unet.config.in_channels),
            self.mel_frames(duration) // factor,
            int(self.vocoder.config.model_in_dim) // factor,
        )

    def _produced_samples(self, duration: float) -> int:
        """Samples the decoder returns for ``duration`` before the cut (the pipeline's frame rounding)."""
        hop = round(self.seconds_per_frame * self.sampling_rate)
        return self.mel_frames(duration) * hop

    def _is_exact(self, duration: float) -> bool:
        return int(duration * self.sampling_rate) <= self._produced_samples(duration)

    def check_duration(self, duration: float) -> None:
        """Durations must be finite and at least one VAE latent row (``vae_scale_factor`` mel frames: 40 ms for
        every AudioLDM). AudioLDMPipeline also floors ``duration / hop`` to whole frames, so some durations (4.01 s,
        2.01 s, 0.29 s ...) would silently come out a few milliseconds short; they are refused with the nearest
        exact ones."""
        min_duration = self.seconds_per_frame * self.vae_scale_factor
        if not math.isfinite(duration) or duration <= 0:
            raise ValueError(f"duration must be a positive number of seconds, got {duration}.")
        if duration < min_duration:
            raise ValueError(f"duration {duration} s is shorter than the model's minimum of {min_duration} s.")
        wanted = int(duration * self.sampling_rate)
        produced = self._produced_samples(duration)
        if wanted > produced:
            below = produced / self.sampling_rate
            while below > min_duration and not self._is_exact(below):
                below -= min_duration
            above = produced / self.sampling_rate + min_duration
            while not self._is_exact(above):
                above += min_duration
            raise ValueError(
                f"duration {duration} s cannot be produced exactly: the model generates whole latent rows of "
                f"{self.vae_scale_factor} mel frames and the frame count is rounded down, which gives "
                f"{produced} of the {wanted} samples asked for. Use {below:g} s or {above:g} s."
            )

    # --------------------------------------------------------------------------------------------------- audio
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Latents -> log-mel (VAE) -> waveform (vocoder), cut to ``num_samples``; float32 [B, samples]."""
        mel = self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample
        waveform = self.vocoder(mel.squeeze(1).to(self.vocoder.dtype))
        return waveform.float()[:, :num_samples]
