"""torchmetrics ``Metric``s for the CLAP score, KAD and FAD: every score the project reports goes through them
(:class:`metrics.genre_scores.GenreScores` holds one set per genre for ``evaluate``, the callbacks and the demo).

All three keep the per-item values (embeddings or cosines) as list states reduced with ``dist_reduce_fx="cat"``:
under DDP every rank's items are gathered before ``compute``, so the result is the single-process result on the
union (KAD and FAD do not depend on the order of the rows; sums differ only by float rounding). Moments-only states
(as torchmetrics' FID keeps) would be cheaper to sync but give a less accurate covariance than fadtk's two-pass
``np.cov`` and cannot give KAD, which needs every pair.

An optional embedder turns ``update`` inputs from waveforms into embeddings. It is held outside the module tree, so
the metric's ``state_dict`` (and a Lightning checkpoint holding the metric) never contains the CLAP weights; move it
to its device yourself (``build_embedder(..., device=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from metrics.blockwise import DEFAULT_BLOCK_SIZE
from metrics.checks import EmbeddingError, as_embedding_tensor, check_finite
from metrics.clap import ClapConvention, apply_convention, check_convention, pair_cosines
from metrics.embedders.base import AudioEmbedder, AudioInput
from metrics.fad import FAD_EPS, frechet_audio_distance
from metrics.kad import kernel_audio_distance
from metrics.median_distance import median_pairwise_distance


def is_empty_state(state: list[torch.Tensor] | torch.Tensor) -> bool:
    """Whether a list state holds no rows (it is a list before a DDP sync and one concatenated tensor after it)."""
    return state.numel() == 0 if isinstance(state, torch.Tensor) else len(state) == 0


def _width(state: list[torch.Tensor] | torch.Tensor) -> int | None:
    """Embedding dimension held by a state, or None when it is empty."""
    if is_empty_state(state):
        return None
    return int(state.shape[-1] if isinstance(state, torch.Tensor) else state[0].shape[-1])


class _EmbedderMixin:
    """Keeps an optional embedder out of ``nn.Module`` registration (and so out of ``state_dict``)."""

    def _set_embedder(self, embedder: AudioEmbedder | None) -> None:
        self.__dict__["_embedder"] = embedder

    @property
    def embedder(self) -> AudioEmbedder | None:
        """The embedder that turns waveforms passed to ``update`` into embeddings, or None."""
        return self.__dict__.get("_embedder")

    def _require_embedder(self, what: str) -> AudioEmbedder:
        if self.embedder is None:
            raise ValueError(f"{type(self).__name__} was built without an embedder, so it cannot take {what}; "
                             "pass embeddings, or build it with embedder=build_embedder(...)")
        return self.embedder


class _EmbeddingSetMetric(_EmbedderMixin, Metric):
    """Two embedding sets, reference ("real") and generated ("fake"), accumulated like torchmetrics' FID."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    real_features: list[torch.Tensor]
    fake_features: list[torch.Tensor]

    def __init__(self, reset_real_features: bool = True, embedder: AudioEmbedder | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(reset_real_features, bool):
            raise ValueError("reset_real_features must be a bool")
        self.reset_real_features = reset_real_features
        self._set_embedder(embedder)
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    def update(self, inputs: torch.Tensor | AudioInput, real: bool, sample_rate: int | None = None) -> None:
        """Add a batch to the reference (``real=True``) or generated set.

        Args:
            inputs: ``[N, D]`` embeddings, or waveforms when the metric has an embedder (then ``sample_rate`` is
                required).
        """
        name = "reference" if real else "generated"
        if sample_rate is not None:
            embeddings = self._require_embedder("waveforms").embed_audio(inputs, sample_rate)
        else:
            embeddings = as_embedding_tensor(inputs, name)
        check_finite(embeddings, name)
        for state in (self.real_features, self.fake_features):
            width = _width(state)
            if width is not None and width != embeddings.shape[1]:
                raise EmbeddingError(
                    f"{name} embeddings have dimension {embeddings.shape[1]} but earlier updates had "
                    f"{width}; all embeddings must come from the same embedder"
                )
        (self.real_features if real else self.fake_features).append(embeddings.detach().to(self.device))

    def embedding_sets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The accumulated ``(reference, generated)`` embeddings, each ``[N, D]``; raises when a set is empty."""
        if is_empty_state(self.real_features):
            raise EmbeddingError(f"{type(self).__name__} has no reference embeddings: call update(..., real=True)")
        if is_empty_state(self.fake_features):
            raise EmbeddingError(f"{type(self).__name__} has no generated embeddings: call update(..., real=False)")
        return dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)

    def reset(self) -> None:
        """Reset the states; the reference set survives when ``reset_real_features=False``."""
        if self.reset_real_features:
            super().reset()
            return
        real_features = deepcopy(self.real_features)
        super().reset()
        self.real_features = real_features


class KernelAudioDistance(_EmbeddingSetMetric):
    """KAD (kadtk 1.1.0 definition, x100, unbiased) between the reference and generated embedding sets.

    Args:
        bandwidth: fixed RBF bandwidth; ``None`` (default) uses the median pairwise distance of the generated set,
            recorded in :attr:`last_bandwidth` after each ``compute``.
        block_size, dtype: see :func:`metrics.kad.kernel_audio_distance`.
        reset_real_features: keep the reference set across ``reset()`` when False (it rarely changes).
        embedder: optional; lets ``update`` take waveforms with a ``sample_rate``.
    """

    def __init__(
        self,
        bandwidth: float | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        dtype: torch.dtype = torch.float32,
        reset_real_features: bool = True,
        embedder: AudioEmbedder | None = None,
        **kwargs,
    ) -> None:
        super().__init__(reset_real_features=reset_real_features, embedder=embedder, **kwargs)
        if bandwidth is not None and not bandwidth >= 0.0:
            raise ValueError(f"bandwidth must be non-negative, got {bandwidth}")
        self.bandwidth = bandwidth
        self.block_size = block_size
        self.kernel_dtype = dtype
        self.last_bandwidth: float | None = None

    def compute(self) -> torch.Tensor:
        """KAD of the accumulated sets (0-dim float64)."""
        real, fake = self.embedding_sets()
        bandwidth = self.bandwidth
        if bandwidth is None and fake.shape[0] >= 2:
            check_finite(fake, "generated")
            bandwidth = float(median_pairwise_distance(fake, block_size=self.block_size))
        self.last_bandwidth = bandwidth
        return kernel_audio_distance(real, fake, bandwidth, block_size=self.block_size, dtype=self.kernel_dtype)


class FrechetAudioDistance(_EmbeddingSetMetric):
    """FAD (fadtk 1.1.0 definition) between the reference and generated embedding sets.

    Args:
        eps: diagonal offset used only when the square-root trace is not finite (as fadtk).
        reset_real_features, embedder: as for :class:`KernelAudioDistance`.
    """

    def __init__(
        self,
        eps: float = FAD_EPS,
        reset_real_features: bool = True,
        embedder: AudioEmbedder | None = None,
        **kwargs,
    ) -> None:
        super().__init__(reset_real_features=reset_real_features, embedder=embedder, **kwargs)
        self.eps = eps

    def compute(self) -> torch.Tensor:
        """FAD of the accumulated sets (0-dim float64)."""
        real, fake = self.embedding_sets()
        return frechet_audio_distance(real, fake, eps=self.eps)


class CLAPScore(_EmbedderMixin, Metric):
    """Mean cosine between CLAP text embeddings of prompts and CLAP audio embeddings of their clips.

    ``update(text_embeds, audio_embeds)`` takes paired ``[N, D]`` embeddings; with a CLAP ``embedder``,
    ``update(prompts=[...], audio=waveforms, sample_rate=sr)`` embeds them first (either side may also be given
    as embeddings). ``convention="shifted"`` reports ``(cos + 1) / 2`` like the paper's code; see
    :mod:`metrics.clap`. :meth:`compute_cosines` returns the per-pair raw cosines.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    cosines: list[torch.Tensor]

    def __init__(self, convention: ClapConvention = "raw", embedder: AudioEmbedder | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        check_convention(convention)
        if embedder is not None and not embedder.supports_text:
            raise ValueError(f"{type(embedder).__name__} has no text encoder; the CLAP score needs a CLAP embedder")
        self.convention = convention
        self._set_embedder(embedder)
        self.add_state("cosines", default=[], dist_reduce_fx="cat")

    def update(
        self,
        text_embeds: torch.Tensor | None = None,
        audio_embeds: torch.Tensor | None = None,
        *,
        prompts: Sequence[str] | None = None,
        audio: AudioInput | None = None,
        sample_rate: int | None = None,
    ) -> None:
        """Add (prompt, clip) pairs, as embeddings or as raw prompts / waveforms for the embedder."""
        if (text_embeds is None) == (prompts is None):
            raise ValueError("give exactly one of text_embeds or prompts")
        if (audio_embeds is None) == (audio is None):
            raise ValueError("give exactly one of audio_embeds or audio")
        if prompts is not None:
            text_embeds = self._require_embedder("prompts").embed_text(prompts)
        if audio is not None:
            if sample_rate is None:
                raise ValueError("audio needs its sample_rate")
            audio_embeds = self._require_embedder("waveforms").embed_audio(audio, sample_rate)
        self.cosines.append(pair_cosines(text_embeds, audio_embeds).to(self.device))

    def compute_cosines(self) -> torch.Tensor:
        """All raw per-pair cosines accumulated so far (float64), in update order on a single process."""
        if is_empty_state(self.cosines):
            raise EmbeddingError("CLAPScore has no pairs: call update first")
        return dim_zero_cat(self.cosines)

    def compute(self) -> torch.Tensor:
        """Mean score in the configured convention (0-dim float64)."""
        return apply_convention(self.compute_cosines(), self.convention).mean()
