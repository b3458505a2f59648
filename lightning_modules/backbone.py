"""The backbone seam: everything that differs between members of the AudioLDM family, behind one small interface.

A backbone owns a loaded checkpoint's components and answers the questions the rest of the framework asks:

- **loading**: :func:`load_backbone` takes a hub id or a local directory (one code path) and returns the right
  implementation (:data:`BACKBONES`, chosen by the directory's ``model_index.json``);
- **conditioning**: prompts -> the UNet's conditioning (:data:`Conditioning`, a dict of batch-first tensors, so
  AudioLDM's one ``class_labels`` tensor and AudioLDM2's two streams with a mask fit the same type), and the
  unconditional conditioning classifier-free guidance and caption dropout use;
- **the UNet call**: :meth:`Backbone.predict_noise` (epsilon or v, whatever the scheduler says);
- **latent geometry**: frames per duration, latent shape, VAE scale factor, scaling factor, duration checks;
- **audio**: log-mel -> VAE posterior -> scaled latents, and latents -> 16 kHz waveform;
- **adapter sites**: the named sub-models LoRA may attach to (:meth:`Backbone.adapter_sites`) and their target
  presets (:meth:`Backbone.lora_presets`).

The LightningModule, the sampler, the latent cache, the callbacks and the tools call only this interface; AudioLDM
v1 (:class:`lightning_modules.audioldm.AudioLDMBackbone`) and AudioLDM2
(:class:`lightning_modules.audioldm2.AudioLDM2Backbone`) implement it.

A backbone is a plain object holding references to ``torch.nn.Module``s, not a module itself: the LightningModule
registers the same modules under their own names (``unet``, ``vae``, ...), so checkpoint keys stay what they were
and device or dtype moves of the LightningModule move the backbone's modules too (``Module.to`` works in place).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from diffusers import SchedulerMixin
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from datamodules.json_files import read_json_object
from lightning_modules.adapter_files import DIFFUSERS_FORMAT, PEFT_FORMAT, ROOT_SITE
from lightning_modules.quiet_loading import quiet_weight_loading

Conditioning = dict[str, torch.Tensor]
"""The UNet's conditioning for a batch: keyword name -> tensor with the batch as its first dimension.

The shape contract (docs/architecture.md, "Conditioning"): a tensor is either of fixed shape ``[B, ...]`` (AudioLDM's
``class_labels`` [B, D]), equal in every batch, or a variable-length stream ``[B, L, D]`` whose length ``L`` follows
the batch's longest prompt; a stream comes with its mask ``[B, L]`` (1 for a token, 0 for padding), and the backbone
names each pair in :attr:`Backbone.stream_masks`. Two conditionings are combined (caption dropout, guidance's
halves) by padding each declared stream and its mask with zeros to the longer length, which the UNet's masked
attention ignores; any other shape difference is refused."""

StreamMasks = Mapping[str, str]
"""A backbone's variable-length streams: stream key -> its mask's key."""
NO_STREAMS: StreamMasks = MappingProxyType({})
"""No variable-length stream (AudioLDM's conditioning)."""


class ModelLoadError(RuntimeError):
    """The base model cannot be loaded; the message says which component and what to do."""


def _padded(value: torch.Tensor, length: int) -> torch.Tensor:
    """``value`` [B, L, ...] with zeros appended along its second dimension up to ``length``."""
    missing = length - value.shape[1]
    if missing <= 0:
        return value
    padding = value.new_zeros((value.shape[0], missing, *value.shape[2:]))
    return torch.cat([value, padding], dim=1)


def align_conditioning(first: Conditioning, second: Conditioning, stream_masks: StreamMasks = NO_STREAMS
                       ) -> tuple[Conditioning, Conditioning]:
    """``first`` and ``second`` with every declared stream and its mask padded to the longer of the two lengths.

    Raises:
        ValueError: a key one of them lacks, or a tensor whose shapes differ beyond the batch without being a
            declared stream (a variable-length stream the backbone did not declare would be padded unmasked).
    """
    if set(first) != set(second):
        raise ValueError(f"Conditionings with other keys cannot be combined: {sorted(first)} and {sorted(second)}.")
    first, second = dict(first), dict(second)
    for stream, mask in stream_masks.items():
        if stream in first:
            length = max(first[stream].shape[1], second[stream].shape[1])
            for cond in (first, second):
                cond[stream], cond[mask] = _padded(cond[stream], length), _padded(cond[mask], length)
    for key, value in first.items():
        if value.shape[1:] != second[key].shape[1:]:
            raise ValueError(
                f"Conditioning {key!r} has per-row shape {tuple(value.shape[1:])} in one batch and "
                f"{tuple(second[key].shape[1:])} in the other; a variable-length stream must be declared with its "
                "mask in the backbone's stream_masks."
            )
    return first, second


def select_conditioning(cond: Conditioning, use_other: torch.Tensor, other: Conditioning,
                        stream_masks: StreamMasks = NO_STREAMS) -> Conditioning:
    """Per row, ``other`` where ``use_other`` [B] is true, else ``cond`` (caption dropout); ``other`` may have one
    row. Streams are aligned first (:func:`align_conditioning`)."""
    cond, other = align_conditioning(cond, other, stream_masks)
    selected = {}
    for key, value in cond.items():
        mask = use_other.view(-1, *([1] * (value.dim() - 1)))
        selected[key] = torch.where(mask, other[key].to(value.dtype), value)
    return selected


def concat_conditioning(first: Conditioning, second: Conditioning,
                        stream_masks: StreamMasks = NO_STREAMS) -> Conditioning:
    """Rows of ``first`` then rows of ``second`` (guidance's unconditional and conditional halves in one batch),
    streams aligned first (:func:`align_conditioning`)."""
    first, second = align_conditioning(first, second, stream_masks)
    return {key: torch.cat([first[key], second[key]]) for key in first}


def conditioning_rows(cond: Conditioning, rows: torch.Tensor | slice) -> Conditioning:
    """The given rows of every tensor."""
    return {key: value[rows] for key, value in cond.items()}


def conditioning_to(cond: Conditioning, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> Conditioning:
    """Every floating tensor moved to ``device``/``dtype`` (integer masks keep their dtype)."""
    return {key: value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            for key, value in cond.items()}


class Backbone(ABC):
    """What the framework needs from an AudioLDM-family model (see the module docstring)."""

    kind: ClassVar[str]
    """Short name recorded in adapter files and latent caches (``audioldm``)."""
    pipeline_class: ClassVar[str]
    """diffusers pipeline class name in ``model_index.json`` that selects this backbone."""
    conditioning_sites: ClassVar[tuple[str, ...]] = ()
    """Adapter sites that compute the conditioning (the text encoder): adapting one makes the conditioning, and the
    unconditional input, a function of the adapter, so neither may be cached or taken from a latent cache."""
    cache_fields: ClassVar[tuple[str, ...]]
    """The text fields a latent cache stores per caption (:meth:`conditioning_for_cache`); by default the
    conditioning's keys."""
    stream_masks: ClassVar[dict[str, str]] = {}
    """The conditioning's variable-length streams, stream key -> mask key (see :data:`Conditioning`); AudioLDM has
    none (its one ``class_labels`` tensor has a fixed shape)."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: SchedulerMixin
    channels_last: bool = False

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    @abstractmethod
    def load(cls, source: str, revision: str | None = None, local: Path | None = None,
             index: dict[str, Any] | None = None) -> "Backbone":
        """Load every component from ``source`` (a hub id or a directory; ``local`` is the directory, if any;
        ``index`` its ``model_index.json``, from the directory or the hub, ``{}`` when a directory has none)."""

    @abstractmethod
    def named_modules(self) -> dict[str, torch.nn.Module]:
        """Every ``torch.nn.Module`` component by its name (what the LightningModule registers)."""

    def frozen_modules(self) -> list[torch.nn.Module]:
        """Every module but the UNet: kept in eval mode (no dropout) and in the frozen dtype. A text encoder that
        carries LoRA is one of them too: its base weights are frozen and only its adapter trains."""
        return [module for module in self.named_modules().values() if module is not self.unet]

    @abstractmethod
    def adapter_sites(self) -> dict[str, torch.nn.Module]:
        """Sub-models LoRA can attach to, by site name (AudioLDM: ``unet`` and ``text_encoder``)."""

    def adapter_format(self, site: str) -> str:
        """How ``site``'s adapter is stored: diffusers' LoRA format at the adapter folder's root for a UNet with
        diffusers' adapter methods (``PeftAdapterMixin``: plain ``unet.load_lora_adapter`` reads it), peft's
        ``save_pretrained`` format in ``<site>/`` for every other module (docs/adapters.md)."""
        module = self.adapter_sites()[site]
        return DIFFUSERS_FORMAT if site == ROOT_SITE and isinstance(module, PeftAdapterMixin) else PEFT_FORMAT

    def site_label(self, site: str) -> str:
        """The site as people call it (model cards, messages); by default the module's class name."""
        return type(self.adapter_sites()[site]).__name__

    def layer_group(self, site: str, layer_name: str) -> str | None:
        """What the layer ``layer_name`` of ``site`` does, for the trainable-parameter report (AudioLDM2: which
        stream an attention layer reads); ``None`` when the backbone does not group its layers."""
        return None

    @abstractmethod
    def lora_presets(self, site: str) -> dict[str, tuple[str, ...]]:
        """LoRA target presets of ``site``: preset name -> module-name suffixes peft matches."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Fingerprints of the frozen encoders and the latent scaling (keys of latent-cache entries)."""

    @abstractmethod
    def save_pretrained(self, directory: Path) -> None:
        """Write a complete diffusers directory of this model (which its pipeline class loads)."""

    # ------------------------------------------------------------------------------------------- conditioning
    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """The UNet's conditioning for ``prompts`` on the UNet's device (gradients only into adapted encoders)."""

    def unconditional(self, batch_size: int = 1, negative_prompt: str | list[str] | None = None) -> Conditioning:
        """Guidance's unconditional input: the negative prompt, or ``""`` through the same encoder."""
        negatives = [negative_prompt or ""] * batch_size if not isinstance(negative_prompt, list) else negative_prompt
        if len(negatives) != batch_size:
            raise ValueError(f"{len(negatives)} negative prompts for {batch_size} prompts.")
        return self.encode_prompts(negatives)

    def cache_layout(self) -> dict[str, Any]:
        """What a latent cache of this backbone records and is checked against: the backbone kind, the text fields
        :meth:`conditioning_for_cache` writes and which of them are streams with masks."""
        return {"backbone": self.kind, "text_fields": list(self.cache_fields), "text_streams": dict(self.stream_masks)}

    def conditioning_from_cache(self, batch: dict[str, Any]) -> Conditioning:
        """The conditioning stored in a latent-cache batch (what :meth:`conditioning_for_cache` wrote): by default
        the conditioning's own keys, masks back to integers."""
        masks = set(self.stream_masks.values())
        return {name: batch[name].long() if name in masks else batch[name].float() for name in self.cache_fields}

    def conditioning_for_cache(self, cond: Conditioning) -> dict[str, torch.Tensor]:
        """The tensors a latent cache stores per caption (field name -> [B, ...], on the CPU): by default the
        conditioning as it is, its streams and masks included (:attr:`cache_fields` names them)."""
        return {name: cond[name].detach().float().cpu() for name in self.cache_fields}

    @abstractmethod
    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """The UNet's prediction (epsilon or v) for noisy latents at ``timesteps`` under ``cond``."""

    # ------------------------------------------------------------------------------------------------ geometry
    @property
    @abstractmethod
    def sampling_rate(self) -> int:
        """Sample rate of the decoded waveform (16 kHz for the whole family)."""

    @property
    def vae_scale_factor(self) -> int:
        """Spatial down-sampling of the VAE: ``2 ** (len(block_out_channels) - 1)``."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        """The VAE's latent scaling (latents are ``posterior sample * scaling_factor``)."""
        return float(self.vae.config.scaling_factor)

    @abstractmethod
    def mel_frames(self, duration: float) -> int:
        """Mel frames the model generates for ``duration`` seconds (a multiple of the VAE factor)."""

    @abstractmethod
    def latent_shape(self, batch_size: int, duration: float) -> tuple[int, int, int, int]:
        """Shape of the initial noise for ``batch_size`` clips of ``duration`` seconds."""

    @abstractmethod
    def check_duration(self, duration: float) -> None:
        """Raise ``ValueError`` for a duration the model cannot produce exactly, naming the nearest ones."""

    # --------------------------------------------------------------------------------------------------- audio
    def check_mel_frames(self, frames: int) -> None:
        """Raise ``ValueError`` unless a clip of ``frames`` mel frames fits the VAE (a multiple of its factor)."""
        factor = self.vae_scale_factor
        if frames % factor:
            raise ValueError(
                f"Clips of {frames} mel frames are not a multiple of the VAE factor {factor}; choose a clip "
                f"duration whose frame count (100 per second) is divisible by {factor}, e.g. 10.24 s or 4.0 s."
            )

    @torch.no_grad()
    def posterior(self, mel: torch.Tensor) -> DiagonalGaussianDistribution:
        """The frozen VAE's posterior of log-mels [B, frames, 64] (unscaled)."""
        self.check_mel_frames(int(mel.shape[1]))
        return self.vae.encode(mel.unsqueeze(1).to(device=self.vae.device, dtype=self.vae.dtype)).latent_dist

    def latents_from_posterior(self, mean: torch.Tensor, logvar: torch.Tensor,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latents sampled from stored posterior parameters (a latent-cache batch)."""
        posterior = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1).float())
        return posterior.sample(generator=generator) * self.scaling_factor

    @torch.no_grad()
    def encode_mel(self, mel: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-mels [B, frames, 64] -> scaled VAE latents, sampled from the posterior."""
        return self.posterior(mel).sample(generator=generator).float() * self.scaling_factor

    @abstractmethod
    def decode(self, latents: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Scaled latents -> float32 waveforms [B, num_samples] at :attr:`sampling_rate`."""


BACKBONES: dict[str, str] = {
    "AudioLDMPipeline": "lightning_modules.audioldm.AudioLDMBackbone",
    "AudioLDM2Pipeline": "lightning_modules.audioldm2.AudioLDM2Backbone",
}
"""Pipeline class name (``model_index.json``'s ``_class_name``) -> backbone class, imported when chosen."""
DEFAULT_PIPELINE = "AudioLDMPipeline"
"""The pipeline of a local directory without ``model_index.json``."""
MODEL_INDEX = "model_index.json"


def backbone_class(pipeline_class: str) -> type[Backbone]:
    """The backbone class registered for a diffusers pipeline class name."""
    if pipeline_class not in BACKBONES:
        raise ModelLoadError(
            f"The base model is a {pipeline_class} (its model_index.json), which audioldm-lora does not support; "
            f"supported pipelines: {sorted(BACKBONES)}."
        )
    module_name, _, class_name = BACKBONES[pipeline_class].rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def _read_model_index(path: Path) -> dict[str, Any]:
    """A ``model_index.json`` as a dict.

    Raises:
        ModelLoadError: the file is not a JSON object.
    """
    return read_json_object(path, ModelLoadError, "restore it from the model's repository.")


def _hub_model_index(repo_id: str, revision: str | None) -> dict[str, Any]:
    """``model_index.json`` of a hub model: from the local Hugging Face cache (offline too) or downloaded.

    Raises:
        ModelLoadError: the model is neither cached nor reachable, does not exist, or is not a diffusers pipeline;
            each message says what to do.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision {revision}" if revision else ""
    try:
        return _read_model_index(Path(hf_hub_download(repo_id, MODEL_INDEX, revision=revision)))
    except LocalEntryNotFoundError:  # offline, or no network, and not in the cache (before EntryNotFoundError)
        raise ModelLoadError(
            f"Base model {repo_id!r}{at} is not in the local Hugging Face cache and the Hub cannot be reached (offline "
            f"or no network). Fetch it once with `hf download {repo_id}`"
            + (f" --revision {revision}" if revision else "")
            + " (it then loads offline), or point model.init_args.pretrained_model at a local diffusers directory."
        ) from None
    except GatedRepoError:
        raise ModelLoadError(f"Base model {repo_id!r} is gated: accept its terms on the Hub and log in with "
                             "`hf auth login`.") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"Base model {repo_id!r} does not exist on the Hub (or is private: log in with "
                             "`hf auth login`); check the name, e.g. cvssp/audioldm-s-full-v2.") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"Base model {repo_id!r} has no revision {revision!r}; give a branch, tag or commit "
                             "it has (model.init_args.revision).") from None
    except EntryNotFoundError:
        raise ModelLoadError(f"Base model {repo_id!r}{at} has no {MODEL_INDEX}: it is not a diffusers pipeline; "
                             f"give one of the supported pipelines {sorted(BACKBONES)}.") from None


def load_backbone(pretrained_model: str, revision: str | None = None) -> Backbone:
    """Load an AudioLDM-family model from a hub id (``cvssp/audioldm-s-full-v2``) or a local diffusers directory.

    One path for both: the model's ``model_index.json`` (the directory's, or the hub's through the local cache)
    names the pipeline class, which picks the backbone (:data:`BACKBONES`); a local directory without one is
    AudioLDM (v1).

    Raises:
        ModelLoadError: not a directory nor a hub id, a model neither cached nor reachable, an unsupported pipeline,
            a component missing, or a component that fails to load.
    """
    local = Path(pretrained_model).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelLoadError(f"Base model {pretrained_model!r} is a file; give a diffusers model directory.")
        index = _read_model_index(local / MODEL_INDEX) if (local / MODEL_INDEX).is_file() else {}
        source, directory = str(local), local
    elif pretrained_model.startswith((".", "/", "~")) or pretrained_model.count("/") != 1:
        raise ModelLoadError(
            f"Base model {pretrained_model!r} is neither an existing directory nor a hub id of the form owner/name."
        )
    else:
        index, source, directory = _hub_model_index(pretrained_model, revision), pretrained_model, None
    pipeline = str(index.get("_class_name") or DEFAULT_PIPELINE)
    with quiet_weight_loading():
        return backbone_class(pipeline).load(source, revision, directory, index)
