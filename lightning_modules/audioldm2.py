"""AudioLDM2 behind the backbone seam: its eleven components, the CLAP + T5 -> projection -> GPT2 conditioning chain
and the two cross-attention streams.

docs/model-facts.md, 'AudioLDM2 conditioning': CLAP text features ``[B, 1, D]`` and the T5 encoder's last hidden
states with their mask go through the projection model (start and end embeddings around each stream, then
concatenated), and GPT2 feeds its own last hidden state back ``max_new_tokens`` times; the UNet reads those generated
states as ``encoder_hidden_states`` and the T5 states with their mask as ``encoder_hidden_states_1`` /
``encoder_attention_mask_1``. The unconditional input is ``""`` through the whole chain. Geometry and decoding are
AudioLDM's (:class:`~lightning_modules.mel_geometry.MelVocoderGeometry`).

One deliberate difference from ``AudioLDM2Pipeline.encode_prompt`` (docs/model-facts.md, 'AudioLDM2 padding'): the
pipeline gives GPT2 position ids that count padding, so a prompt's conditioning changes with the length of the
longest prompt in its batch, and its unconditional input with the prompt's length. Here GPT2's positions skip
padding, so every caption's conditioning is the one the pipeline computes for that caption alone, whatever it is
batched with: what per-caption latent caches and per-clip seeds rely on.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import AutoencoderKL, DDIMScheduler, SchedulerMixin
from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
from transformers import (
    ClapFeatureExtractor,
    ClapModel,
    GPT2Model,
    PreTrainedTokenizerBase,
    RobertaTokenizerFast,
    T5EncoderModel,
    T5TokenizerFast,
)

from datamodules.latent_cache import fingerprint_module
from lightning_modules.audioldm import tokenize, vocoder_class
from lightning_modules.audioldm2_presets import STREAM_LABELS, TEXT_ENCODER_2_PRESETS, cross_attention_streams, unet_presets
from lightning_modules.backbone import Backbone, Conditioning
from lightning_modules.components import check_component_folders, load_components, write_components
from lightning_modules.mel_geometry import MelVocoderGeometry

log = logging.getLogger(__name__)

COMPONENTS = ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "projection_model",
              "language_model", "unet", "vocoder", "scheduler", "feature_extractor")
LANGUAGE_MODEL_DECLARED = ("transformers", "GPT2LMHeadModel")
"""How a written folder declares the language model: the class AudioLDM2Pipeline generates with under transformers 5
(docs/model-facts.md, 'AudioLDM2 LoRA'). It is held as its base ``GPT2Model`` (the generation head is never used;
its weights are tied to the input embeddings, so the base's weights load as either class)."""
GPT2_STREAM, T5_STREAM, T5_MASK = "encoder_hidden_states", "encoder_hidden_states_1", "encoder_attention_mask_1"
SITE_LABELS = {"unet": "UNet", "text_encoder_2": "T5 text encoder"}


def generate_language_states(language_model: GPT2Model, embeds: torch.Tensor, mask: torch.Tensor, steps: int
                             ) -> torch.Tensor:
    """GPT2's ``steps`` generated hidden states ``[B, steps, width]`` for the projected sequence ``embeds`` [B, L, W]
    with its ``mask`` [B, L]: each step appends the last position's final hidden state as the next input.

    Position ids count only unmasked tokens (so padding anywhere in the sequence changes nothing), and the
    key/value cache makes each step one token's work; both differ from the pipeline's loop, which recomputes the
    whole sequence with padding-counting positions, only where padding is present.
    """
    # transformers renamed the cache argument and output field (past_key_values -> cache, 5.x); use whichever this
    # version's forward takes, without touching the deprecated name.
    cache_name = "cache" if "cache" in inspect.signature(language_model.forward).parameters else "past_key_values"
    positions = (mask.long().cumsum(1) - 1).clamp(min=0)
    output = language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
    state, position = output.last_hidden_state[:, -1:], positions[:, -1:]
    generated = [state]
    for _ in range(steps - 1):
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        position = position + 1
        output = language_model(inputs_embeds=state, attention_mask=mask, position_ids=position, use_cache=True,
                                **{cache_name: output[cache_name]})
        state = output.last_hidden_state
        generated.append(state)
    return torch.cat(generated, dim=1)


@dataclass
class AudioLDM2Backbone(MelVocoderGeometry, Backbone):
    """The parts of an AudioLDM2 checkpoint, as diffusers' AudioLDM2Pipeline holds them, behind the backbone seam."""

    vae: AutoencoderKL
    text_encoder: ClapModel
    tokenizer: PreTrainedTokenizerBase
    text_encoder_2: T5EncoderModel
    tokenizer_2: PreTrainedTokenizerBase
    projection_model: AudioLDM2ProjectionModel
    language_model: GPT2Model
    unet: AudioLDM2UNet2DConditionModel
    vocoder: torch.nn.Module
    scheduler: SchedulerMixin
    feature_extractor: ClapFeatureExtractor
    channels_last: bool = False
    _truncation_warned: set[str] = field(default_factory=set, repr=False)
    _streams: dict[str, str] | None = field(default=None, repr=False)

    kind: ClassVar[str] = "audioldm2"
    pipeline_class: ClassVar[str] = "AudioLDM2Pipeline"
    conditioning_sites: ClassVar[tuple[str, ...]] = ("text_encoder_2",)
    stream_masks: ClassVar[dict[str, str]] = {T5_STREAM: T5_MASK}
    cache_fields: ClassVar[tuple[str, ...]] = (GPT2_STREAM, T5_STREAM, T5_MASK)

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, source: str, revision: str | None = None, local: Path | None = None,
             index: dict[str, Any] | None = None) -> "AudioLDM2Backbone":
        """Load the eleven components (see :func:`lightning_modules.backbone.load_backbone`); the language model as
        its base ``GPT2Model`` whichever GPT2 class the folder declares."""
        if local is not None:
            check_component_folders(local, COMPONENTS, cls.pipeline_class, "cvssp/audioldm2-music")
        vocoder = vocoder_class(index or {})

        def component(kind: Any, name: str) -> Any:
            return lambda src, rev: kind.from_pretrained(src, subfolder=name, revision=rev)

        loaders = {
            "vae": component(AutoencoderKL, "vae"),
            "text_encoder": component(ClapModel, "text_encoder"),
            "tokenizer": component(RobertaTokenizerFast, "tokenizer"),
            "text_encoder_2": component(T5EncoderModel, "text_encoder_2"),
            "tokenizer_2": component(T5TokenizerFast, "tokenizer_2"),
            "projection_model": component(AudioLDM2ProjectionModel, "projection_model"),
            "language_model": component(GPT2Model, "language_model"),
            "unet": component(AudioLDM2UNet2DConditionModel, "unet"),
            "vocoder": component(vocoder, "vocoder"),
            "scheduler": component(DDIMScheduler, "scheduler"),
            "feature_extractor": component(ClapFeatureExtractor, "feature_extractor"),
        }
        return cls(**load_components(source, revision, loaders, cls.pipeline_class))

    def named_modules(self) -> dict[str, torch.nn.Module]:
        return {"vae": self.vae, "text_encoder": self.text_encoder, "text_encoder_2": self.text_encoder_2,
                "projection_model": self.projection_model, "language_model": self.language_model,
                "unet": self.unet, "vocoder": self.vocoder}

    def adapter_sites(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet, "text_encoder_2": self.text_encoder_2}

    def lora_presets(self, site: str) -> dict[str, tuple[str, ...]]:
        if site == "unet":
            return unet_presets(self.unet, gpt2_width=self.gpt2_width, t5_width=self.t5_width)
        if site == "text_encoder_2":
            return dict(TEXT_ENCODER_2_PRESETS)
        raise ValueError(f"AudioLDM2 has no adapter site {site!r}; sites: {sorted(self.adapter_sites())}.")

    def site_label(self, site: str) -> str:
        return SITE_LABELS[site]

    def layer_group(self, site: str, layer_name: str) -> str | None:
        """A UNet layer's part: cross-attention to the GPT2 or the T5 stream, self-attention, or another layer."""
        if site != "unet":
            return None
        if self._streams is None:
            self._streams = cross_attention_streams(self.unet, self.gpt2_width, self.t5_width)
        attention, found, _ = layer_name.partition(".attn2.")
        if found:
            return STREAM_LABELS[self._streams.get(attention + ".attn2", "self")]
        return STREAM_LABELS["self"] if ".attn1." in layer_name else "other layers"

    @property
    def gpt2_width(self) -> int:
        """Width of the GPT2 stream (768 in every public AudioLDM2)."""
        return int(self.language_model.config.n_embd)

    @property
    def t5_width(self) -> int:
        """Width of the T5 stream (1024 for Flan-T5-large)."""
        return int(self.text_encoder_2.config.d_model)

    def identity(self) -> dict[str, Any]:
        """The VAE's fingerprint, and one fingerprint of everything that turns a caption into the conditioning
        (CLAP's text tower, T5, the projection, GPT2 and both vocabularies; not CLAP's unused audio tower)."""
        digest = hashlib.blake2b(digest_size=16)
        for module in (self.text_encoder.text_model, self.text_encoder.text_projection, self.text_encoder_2,
                       self.projection_model, self.language_model):
            digest.update(fingerprint_module(module).encode())
        for tokenizer in (self.tokenizer, self.tokenizer_2):
            digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
        return {"audio_id": fingerprint_module(self.vae), "text_id": digest.hexdigest(),
                "scaling_factor": self.scaling_factor}

    def save_pretrained(self, directory: Path) -> None:
        """Write the folder ``AudioLDM2Pipeline.from_pretrained`` loads (``save_pretrained``'s layout)."""
        write_components(Path(directory), self.pipeline_class, {name: getattr(self, name) for name in COMPONENTS},
                         declared={"language_model": LANGUAGE_MODEL_DECLARED})

    # ------------------------------------------------------------------------------------------- conditioning
    def _t5_tokens(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """T5 tokens padded to the longest prompt; a prompt over the tokenizer's limit is cut to it with one warning
        per prompt (as the pipeline does), never an error. Only a prompt that fills the limit is tokenised a second
        time (to learn its full length), so the training step's common case tokenises once."""
        tokens = tokenize(self.tokenizer_2, prompts)
        limit = int(self.tokenizer_2.model_max_length)
        for prompt, length in zip(prompts, tokens["attention_mask"].sum(dim=1).tolist()):
            if length < limit or prompt in self._truncation_warned:
                continue
            full = len(self.tokenizer_2(prompt)["input_ids"])
            if full > limit:
                self._truncation_warned.add(prompt)
                log.warning("The caption %r is %d T5 tokens long; AudioLDM2's T5 reads %d, so its end is cut off "
                            "(shorten it to keep all of it).", prompt[:80] + ("..." if len(prompt) > 80 else ""),
                            full, limit)
        return tokens

    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """GPT2's generated states [B, max_new_tokens, 768], T5's states [B, L, 1024] and mask [B, L] (L the batch's
        longest prompt). Gradients flow only into an adapted T5 (and through the frozen projection and GPT2)."""
        device = self.text_encoder_2.device
        clap_tokens = tokenize(self.tokenizer, prompts)
        with torch.no_grad():
            clap = self.text_encoder.get_text_features(input_ids=clap_tokens["input_ids"].to(device),
                                                       attention_mask=clap_tokens["attention_mask"].to(device))
        clap = getattr(clap, "pooler_output", clap)[:, None, :]  # an output object in transformers 5, a tensor in 4
        t5_tokens = self._t5_tokens(prompts)
        t5_mask = t5_tokens["attention_mask"].to(device)
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.text_encoder_2.parameters())
        with torch.set_grad_enabled(trains):
            t5 = self.text_encoder_2(input_ids=t5_tokens["input_ids"].to(device), attention_mask=t5_mask)
            t5 = t5.last_hidden_state
            projected = self.projection_model(
                hidden_states=clap.to(self.projection_model.dtype), hidden_states_1=t5.to(self.projection_model.dtype),
                attention_mask=t5_mask.new_ones(clap.shape[:2]), attention_mask_1=t5_mask,
            )
            generated = generate_language_states(
                self.language_model, projected.hidden_states.to(self.language_model.dtype), projected.attention_mask,
                int(getattr(self.language_model.config, "max_new_tokens", None) or 8),  # the pipeline's default
            )
        unet_device = self.unet.device
        return {GPT2_STREAM: generated.float().to(unet_device), T5_STREAM: t5.float().to(unet_device),
                T5_MASK: t5_mask.to(unet_device)}

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        if self.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        dtype = self.unet.dtype
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=cond[GPT2_STREAM].to(dtype),
                         encoder_hidden_states_1=cond[T5_STREAM].to(dtype),
                         encoder_attention_mask_1=cond[T5_MASK]).sample
