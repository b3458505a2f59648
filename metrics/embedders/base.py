"""The one interface every embedder offers: waveforms at any sample rate in, ``[N, D]`` float32 embeddings out.

Embedders are ``nn.Module``s so that ``.to(device)`` moves their weights; inputs are resampled (torchaudio) to the
rate the model works at, embedded in batches on the module's device, and returned there. ``embedder_id`` names the
model *and* every setting that changes the numbers, so that cached embeddings are never reused across embedders.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from metrics.checks import EmbeddingError

AudioInput = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


def prepare_waveforms(
    audio: AudioInput, sample_rate: int, target_rate: int, device: torch.device | str = "cpu"
) -> list[torch.Tensor]:
    """Split ``audio`` into mono float32 1-D clips at ``target_rate`` on ``device``.

    Accepts one clip ``[T]``, a batch ``[N, T]`` or ``[N, C, T]`` (channels are averaged), or a sequence of clips
    ``[T]`` / ``[C, T]`` of different lengths (tensors or NumPy arrays).

    Raises:
        ValueError: an empty or non-finite clip (the message gives its index), or a bad sample rate or shape.
    """
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    if isinstance(audio, (torch.Tensor, np.ndarray)):
        tensor = torch.as_tensor(audio)
        if tensor.dim() == 1:
            clips = [tensor]
        elif tensor.dim() in (2, 3):
            clips = list(tensor.unbind(0))
        else:
            raise ValueError(f"audio must be [T], [N, T] or [N, C, T], got shape {tuple(tensor.shape)}")
    else:
        clips = [torch.as_tensor(clip) for clip in audio]
    out = []
    for index, clip in enumerate(clips):
        if clip.dim() == 2:
            clip = clip.float().mean(dim=0)
        if clip.dim() != 1:
            raise ValueError(f"audio clip {index} must be [T] or [C, T], got shape {tuple(clip.shape)}")
        if clip.numel() == 0:
            raise ValueError(f"audio clip {index} is empty")
        clip = clip.to(device=device, dtype=torch.float32)
        if not torch.isfinite(clip).all():
            raise ValueError(f"audio clip {index} contains NaN or inf samples")
        if int(sample_rate) != int(target_rate):
            clip = AF.resample(clip, int(sample_rate), int(target_rate))
        out.append(clip)
    return out


@contextlib.contextmanager
def seeded_random_state(seed: int) -> Iterator[None]:
    """Seed NumPy's, Python's and torch's global generators inside the block and restore them afterwards.

    CLAP feature extractors crop clips longer than their window at a random offset drawn from these global
    generators; seeding per clip makes each clip's embedding reproducible and independent of its batch.
    """
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.random.get_rng_state()
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.random.set_rng_state(torch_state)


def module_fingerprint(module: nn.Module, extra: str = "") -> str:
    """Short hash of a module's parameter names, shapes and first values (plus ``extra``): tells checkpoints apart
    cheaply, so that the embedding cache key changes when the weights do."""
    digest = hashlib.sha1(extra.encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class AudioEmbedder(nn.Module, abc.ABC):
    """Base class: batched audio (and, for CLAP backends, text) embeddings on the module's device.

    Subclasses set ``sample_rate`` (the rate their model expects) and implement :meth:`_embed_clips` and
    :attr:`embedder_id`; text-capable backends set ``supports_text`` and implement :meth:`_embed_texts`.
    """

    sample_rate: int = 16_000
    supports_text: bool = False

    def __init__(self, device: torch.device | str | None = None, batch_size: int = 16) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        # tracks .to(device) even for embedders without weights
        self.register_buffer("_device_anchor", torch.empty(0, device=device), persistent=False)

    @property
    def device(self) -> torch.device:
        """Device the embeddings are computed and returned on."""
        return self._device_anchor.device

    @property
    @abc.abstractmethod
    def embedder_id(self) -> str:
        """Stable identifier of the model and every setting that changes the embeddings (cache key)."""

    def load(self) -> AudioEmbedder:
        """Load weights now (no-op for weight-free embedders); embedding calls load on first use."""
        return self

    @abc.abstractmethod
    def _embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Embed mono clips at ``self.sample_rate`` on ``self.device``: ``[len(clips), D]``."""

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def embed_audio(self, audio: AudioInput, sample_rate: int, batch_size: int | None = None) -> torch.Tensor:
        """Embed clips given at ``sample_rate``: returns ``[N, D]`` float32 on :attr:`device`.

        Raises:
            ValueError: empty or non-finite clips (see :func:`prepare_waveforms`).
            EmbeddingError: the model produced NaN/inf embeddings (the message lists the clips).
        """
        self.load()
        clips = prepare_waveforms(audio, sample_rate, self.sample_rate, self.device)
        if not clips:
            raise ValueError("embed_audio received no clips")
        step = batch_size or self.batch_size
        parts = []
        for start in range(0, len(clips), step):
            try:
                parts.append(self._embed_clips(clips[start : start + step]).float())
            except ValueError as error:
                raise ValueError(f"clips {start}..{start + step - 1}: {error}") from error
        embeddings = torch.cat(parts).to(self.device)
        _check_output(embeddings, "audio")
        return embeddings

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str], batch_size: int | None = None) -> torch.Tensor:
        """Embed prompts: ``[N, D]`` float32 on :attr:`device` (CLAP backends only)."""
        if not self.supports_text:
            raise NotImplementedError(
                f"{type(self).__name__} has no text encoder; the CLAP score needs a CLAP embedder "
                "('clap:<hub id or dir>' or 'laion:<checkpoint.pt>')"
            )
        if isinstance(texts, str):
            raise TypeError("embed_text expects a sequence of prompts, not a single string")
        texts = list(texts)
        if not texts:
            raise ValueError("embed_text received no prompts")
        self.load()
        step = batch_size or self.batch_size
        embeddings = torch.cat([self._embed_texts(texts[s : s + step]).float() for s in range(0, len(texts), step)])
        embeddings = embeddings.to(self.device)
        _check_output(embeddings, "text")
        return embeddings

    def forward(self, audio: AudioInput, sample_rate: int) -> torch.Tensor:
        """Same as :meth:`embed_audio`."""
        return self.embed_audio(audio, sample_rate)


def _check_output(embeddings: torch.Tensor, kind: str) -> None:
    bad = (~torch.isfinite(embeddings)).any(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero()[:10, 0].tolist()
        raise EmbeddingError(f"the embedder produced NaN/inf {kind} embeddings for {int(bad.sum())} inputs {rows}")
