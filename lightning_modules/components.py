"""Loading the six AudioLDM components and the few facts derived from them (text conditioning, geometry).

One code path for hub ids and local directories: every component goes through its library's ``from_pretrained``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, SchedulerMixin, UNet2DConditionModel
from transformers import ClapTextModelWithProjection, PreTrainedTokenizerBase, RobertaTokenizerFast, SpeechT5HifiGan

log = logging.getLogger(__name__)

COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "vocoder", "scheduler")


class ModelLoadError(RuntimeError):
    """The base model cannot be loaded; the message says which component and what to do."""


@dataclass
class AudioLDMComponents:
    """The parts of an AudioLDM checkpoint, as diffusers' AudioLDMPipeline holds them."""

    vae: AutoencoderKL
    text_encoder: ClapTextModelWithProjection
    tokenizer: PreTrainedTokenizerBase
    unet: UNet2DConditionModel
    vocoder: SpeechT5HifiGan
    scheduler: SchedulerMixin

    @property
    def vae_scale_factor(self) -> int:
        """Spatial down-sampling of the VAE: ``2 ** (len(block_out_channels) - 1)``."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def sampling_rate(self) -> int:
        """Output sample rate of the vocoder (16 kHz for every AudioLDM checkpoint)."""
        return int(self.vocoder.config.sampling_rate)

    @property
    def seconds_per_frame(self) -> float:
        """Mel hop in seconds, as the pipeline derives it: ``prod(upsample_rates) / sampling_rate``."""
        return math.prod(self.vocoder.config.upsample_rates) / self.sampling_rate

    def mel_frames(self, duration: float) -> int:
        """Mel frames the model generates for ``duration`` seconds (rounded up to a multiple of the VAE factor)."""
        frames = int(duration / self.seconds_per_frame)
        return int(math.ceil(frames / self.vae_scale_factor)) * self.vae_scale_factor

    def latent_shape(self, batch_size: int, duration: float) -> tuple[int, int, int, int]:
        """Shape of the initial noise for ``batch_size`` clips of ``duration`` seconds."""
        factor = self.vae_scale_factor
        return (
            batch_size,
            int(self.unet.config.in_channels),
            self.mel_frames(duration) // factor,
            int(self.vocoder.config.model_in_dim) // factor,
        )


def _check_local_directory(path: Path) -> None:
    missing = [name for name in COMPONENTS if not (path / name).is_dir()]
    if missing:
        raise ModelLoadError(
            f"Base model directory {path} lacks the component folder(s) {', '.join(missing)}. An AudioLDM directory "
            f"holds {', '.join(COMPONENTS)} (as AudioLDMPipeline.save_pretrained writes them). Point "
            "`model.pretrained_model` at a complete directory or at a hub id such as cvssp/audioldm-s-full-v2."
        )


# Vocoder classes other than SpeechT5HifiGan that a local model_index.json may name, by class name -> module. Only
# these project classes are ever imported (a name in a file never imports arbitrary code). The toy AudioLDM
# (lightning_modules/toy_base.py) names its Griffin-Lim vocoder here the diffusers way: "vocoder": [library, class].
PROJECT_VOCODERS = {"GriffinLimVocoder": "lightning_modules.griffin_lim_vocoder"}


def vocoder_class(local: Path | None) -> type:
    """The vocoder class of a model: a project class from :data:`PROJECT_VOCODERS` when the local directory's
    ``model_index.json`` names one, else ``SpeechT5HifiGan`` (every real AudioLDM checkpoint)."""
    index = local / "model_index.json" if local is not None else None
    if index is None or not index.is_file():
        return SpeechT5HifiGan
    try:
        entry = json.loads(index.read_text(encoding="utf-8")).get("vocoder")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return SpeechT5HifiGan
    name = entry[-1] if isinstance(entry, list) and entry else None
    if name in PROJECT_VOCODERS:
        return getattr(importlib.import_module(PROJECT_VOCODERS[name]), name)
    return SpeechT5HifiGan


def load_components(pretrained_model: str, revision: str | None = None) -> AudioLDMComponents:
    """Load AudioLDM from a hub id (``cvssp/audioldm-s-full-v2``) or a local diffusers directory.

    Raises:
        ModelLoadError: a local directory lacks a component, or a component fails to load (offline, no cache).
    """
    local = Path(pretrained_model).expanduser()
    if local.exists():
        _check_local_directory(local)
        source = str(local)
    elif pretrained_model.startswith((".", "/", "~")) or pretrained_model.count("/") != 1:
        raise ModelLoadError(
            f"Base model {pretrained_model!r} is neither an existing directory nor a hub id of the form owner/name."
        )
    else:
        source = pretrained_model
    vocoder = vocoder_class(local if local.exists() else None)
    loaders = {
        "vae": lambda: AutoencoderKL.from_pretrained(source, subfolder="vae", revision=revision),
        "text_encoder": lambda: ClapTextModelWithProjection.from_pretrained(
            source, subfolder="text_encoder", revision=revision
        ),
        "tokenizer": lambda: RobertaTokenizerFast.from_pretrained(source, subfolder="tokenizer", revision=revision),
        "unet": lambda: UNet2DConditionModel.from_pretrained(source, subfolder="unet", revision=revision),
        "vocoder": lambda: vocoder.from_pretrained(source, subfolder="vocoder", revision=revision),
        "scheduler": lambda: DDIMScheduler.from_pretrained(source, subfolder="scheduler", revision=revision),
    }
    parts = {}
    for name, load in loaders.items():
        try:
            parts[name] = load()
        except Exception as error:  # hub and file errors come in many types; each is re-raised with context
            raise ModelLoadError(
                f"Cannot load the {name} of {pretrained_model!r}: {error}. For a hub id, check the name and the "
                "network (or set HF_HUB_OFFLINE=1 with the model already in the cache); for a directory, check "
                f"{name}/ holds its config and weights."
            ) from error
    return AudioLDMComponents(**parts)


def tokenize(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> dict[str, torch.Tensor]:
    """Tokenise padding only to the longest prompt.

    AudioLDMPipeline pads to 512 tokens; with the attention mask the text embedding is the same (8e-9 on the
    full-size encoder, DESIGN.md section 2) at a twentieth of the cost.
    """
    batch = tokenizer(
        prompts, padding="longest", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


@torch.no_grad()
def encode_text(
    text_encoder: ClapTextModelWithProjection, tokenizer: PreTrainedTokenizerBase, prompts: list[str]
) -> torch.Tensor:
    """L2-normalised CLAP ``text_embeds`` [B, D], AudioLDM's ``class_labels`` conditioning."""
    tokens = tokenize(tokenizer, prompts)
    device = text_encoder.device
    output = text_encoder(
        input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
    )
    return F.normalize(output.text_embeds.float(), dim=-1)
