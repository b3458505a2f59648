"""KAD, FAD and the CLAP score overall and per genre, accumulated in the torchmetrics classes.

One :class:`GenreScores` scores one generated set (the LoRA's, or the base model's) against a fixed reference set:
a group per genre plus the overall group (:data:`OVERALL`), each a :class:`~metrics.audio_metrics.KernelAudioDistance`,
a :class:`~metrics.audio_metrics.FrechetAudioDistance` and a :class:`~metrics.audio_metrics.CLAPScore`. A genre's
generated clips are compared with the reference clips of the same genre when the reference has them, else with the
whole reference (the row says which). ``update`` may be called per batch; ``compute`` returns the JSON-ready report
that :func:`metrics.evaluation.scores_of`, ``audioldm-lora evaluate``, the evaluation callback and the demo share.

Why a holder of Metrics rather than one Metric: the groups are independent metric sets with their own reference
rows, and torchmetrics' own classes already carry the DDP reduction (``dist_reduce_fx="cat"``). ``metric_kwargs``
reach every Metric (``sync_on_compute``, ``process_group``, ...); declaring ``genres`` up front creates the same
groups on every process, which a synced ``compute`` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metrics.audio_metrics import CLAPScore, FrechetAudioDistance, KernelAudioDistance, is_empty_state
from metrics.blockwise import DEFAULT_BLOCK_SIZE
from metrics.bootstrap import DEFAULT_RESAMPLES, JACKKNIFE_METHOD, METHOD, bootstrap_mean, distance_interval
from metrics.checks import EmbeddingError, as_embedding_tensor, check_embedding_pair
from metrics.clap import ClapConvention, apply_convention, check_convention

OVERALL = "all"
INTERVAL_LEVEL = 0.95
INTERVAL_METHODS = {"kad": METHOD, "clap_score": METHOD, "fad": JACKKNIFE_METHOD}


@dataclass(frozen=True)
class LabelledEmbeddings:
    """``[N, D]`` embeddings, the genre of each row (None when unknown) and where they came from."""

    embeddings: np.ndarray
    genres: list[str | None]
    source: str

    def __post_init__(self) -> None:
        if len(self.genres) != len(self.embeddings):
            raise ValueError(f"{len(self.genres)} genres for {len(self.embeddings)} embeddings")


def _float32_rows(embeddings: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``embeddings`` as a float32 CPU tensor ``[N, D]`` (the precision every report has been computed in)."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu()
    return as_embedding_tensor(np.asarray(embeddings, dtype=np.float32), name)


@dataclass
class _Group:
    """The three metrics of one row of the report, and which reference rows they compare with."""

    reference_set: str
    kad: KernelAudioDistance
    fad: FrechetAudioDistance
    clap: CLAPScore


class GenreScores:
    """KAD/FAD/CLAP of a generated set against ``reference``, overall and per genre.

    Args:
        reference: the reference embeddings with their genres (fixed for the life of the object).
        source: what the generated set is (``"LoRA"``, ``"base model"``, a folder); written into the report.
        genres: genres whose groups exist from the start (others are added as ``update`` meets them).
        convention: CLAP score convention, ``raw`` cosine or ``shifted`` (cos + 1) / 2.
        bandwidth: fixed KAD bandwidth; None uses each generated group's median pairwise distance.
        block_size: KAD block size (see :func:`metrics.kad.kernel_audio_distance`).
        resamples: bootstrap resamples of the 95% intervals of KAD and the CLAP score (:mod:`metrics.bootstrap`;
            0: none).
        bootstrap_seed: seed of those resamples (recorded in the report).
        metric_kwargs: passed to every torchmetrics ``Metric`` (e.g. ``sync_on_compute=False``).
    """

    def __init__(
        self,
        reference: LabelledEmbeddings,
        source: str,
        *,
        genres: Sequence[str] = (),
        convention: ClapConvention = "raw",
        bandwidth: float | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        resamples: int = DEFAULT_RESAMPLES,
        bootstrap_seed: int = 0,
        **metric_kwargs: Any,
    ) -> None:
        check_convention(convention)
        self.resamples, self.bootstrap_seed = resamples, bootstrap_seed
        self.reference = reference
        self.source = source
        self.convention = convention
        self.bandwidth = bandwidth
        self.block_size = block_size
        self.metric_kwargs = metric_kwargs
        self._reference_rows = _float32_rows(reference.embeddings, "reference")
        self._with_text = False
        self._groups: dict[str, _Group] = {}
        for name in (OVERALL, *genres):
            self._group(name)

    def _group(self, name: str) -> _Group:
        """The metrics of group ``name``, created (with its reference rows loaded) on first use."""
        if name in self._groups:
            return self._groups[name]
        rows = [i for i, genre in enumerate(self.reference.genres) if genre == name] if name != OVERALL else []
        reference_set = name if rows else OVERALL
        reference = self._reference_rows[rows] if rows else self._reference_rows
        kad = KernelAudioDistance(self.bandwidth, self.block_size, reset_real_features=False, **self.metric_kwargs)
        fad = FrechetAudioDistance(reset_real_features=False, **self.metric_kwargs)
        if reference.shape[0]:
            kad.update(reference, real=True)
            fad.update(reference, real=True)
        group = _Group(reference_set, kad, fad, CLAPScore(self.convention, **self.metric_kwargs))
        self._groups[name] = group
        return group

    def update(
        self,
        embeddings: torch.Tensor | np.ndarray,
        genres: Sequence[str | None],
        text_embeddings: torch.Tensor | np.ndarray | None = None,
        prompted: Sequence[bool] | None = None,
    ) -> None:
        """Add generated clips: ``[N, D]`` audio embeddings, the genre of each (None: overall only) and optionally
        the CLAP text embeddings of their prompts (rows whose ``prompted`` entry is False have no prompt)."""
        gen = _float32_rows(embeddings, "generated")
        if len(genres) != gen.shape[0]:
            raise ValueError(f"{len(genres)} genres for {gen.shape[0]} generated embeddings")
        if self._reference_rows.shape[1] != gen.shape[1]:
            raise EmbeddingError(
                f"reference embeddings have dimension {self._reference_rows.shape[1]} but generated embeddings have "
                f"dimension {gen.shape[1]}; both sets must come from the same embedder"
            )
        text = None
        if text_embeddings is not None:
            self._with_text = True
            text = as_embedding_tensor(np.asarray(text_embeddings), "text")
            prompted = [True] * gen.shape[0] if prompted is None else list(prompted)
            if len(prompted) != gen.shape[0]:
                raise ValueError(f"{len(prompted)} prompted flags for {gen.shape[0]} generated embeddings")
        names = [OVERALL, *sorted({genre for genre in genres if genre is not None})]
        for name in names:
            rows = list(range(gen.shape[0])) if name == OVERALL else [i for i, g in enumerate(genres) if g == name]
            group = self._group(name)
            group.kad.update(gen[rows], real=False)
            group.fad.update(gen[rows], real=False)
            pairs = [i for i in rows if prompted[i]] if text is not None else []
            if pairs:
                group.clap.update(text[pairs], gen[pairs])

    def compute(self) -> dict[str, Any]:
        """The report: provenance and one row per group (overall first, then genres in sorted order).

        Raises:
            EmbeddingError: the overall sets have fewer than 2 rows, different dimensions or NaN/inf rows. A genre
                with too few clips gets no KAD/FAD and a ``note`` instead.
        """
        rows: dict[str, dict[str, Any]] = {}
        for name in self.group_names:  # a genre declared but never generated gets no row
            rows[name] = self._row(self._groups[name], strict=name == OVERALL)
        reference, generated = self._groups[OVERALL].kad.embedding_sets()
        return {
            "generated": {"source": self.source, "clips": int(generated.shape[0])},
            "reference": {"source": self.reference.source, "clips": int(reference.shape[0])},
            "embedding_dim": int(generated.shape[1]),
            "clap_convention": self.convention if self._with_text else None,
            "kad_bandwidth_rule": "fixed" if self.bandwidth is not None
            else "median pairwise distance of the generated set",
            "intervals": {"level": INTERVAL_LEVEL, "resamples": self.resamples, "seed": self.bootstrap_seed,
                          "methods": INTERVAL_METHODS} if self.resamples else None,
            "rows": rows,
        }

    def _row(self, group: _Group, strict: bool) -> dict[str, Any]:
        reference, generated = group.kad.embedding_sets()
        row: dict[str, Any] = {
            "n_generated": int(generated.shape[0]), "n_reference": int(reference.shape[0]),
            "reference_set": group.reference_set, "kad": None, "kad_bandwidth": None, "fad": None,
            "clap_score": None, "clap_pairs": 0, "note": None, "kad_ci": None, "fad_ci": None, "clap_score_ci": None,
        }
        try:
            check_embedding_pair(reference, generated, "KAD and FAD")
        except EmbeddingError as error:
            if strict:
                raise
            row["note"] = str(error)
        else:
            row["kad"] = float(group.kad.compute())
            row["kad_bandwidth"] = float(group.kad.last_bandwidth)
            row["fad"] = float(group.fad.compute())
            if self.resamples:
                for metric, bandwidth in (("kad", row["kad_bandwidth"]), ("fad", None)):
                    interval = distance_interval(metric, reference, generated, bandwidth, resamples=self.resamples,
                                                 seed=self.bootstrap_seed, level=INTERVAL_LEVEL)
                    row[f"{metric}_ci"] = [interval.low, interval.high] if interval.defined else None
        scores = self.clap_scores(group)
        if scores is not None:
            row["clap_pairs"] = int(scores.numel())
            row["clap_score"] = float(group.clap.compute())
            if self.resamples and scores.numel() >= 2:
                interval = bootstrap_mean(scores.numpy(), resamples=self.resamples, seed=self.bootstrap_seed,
                                          level=INTERVAL_LEVEL)
                row["clap_score_ci"] = [interval.low, interval.high] if interval.defined else None
        return row

    def clap_scores(self, group: _Group | str) -> torch.Tensor | None:
        """The CLAP score of each prompt-and-clip pair of a group (in the report's convention; CPU), in the order
        the clips were added; None without text embeddings or prompted clips."""
        group = self._groups[group] if isinstance(group, str) else group
        if not self._with_text or is_empty_state(group.clap.cosines):
            return None
        return apply_convention(group.clap.compute_cosines(), self.convention).cpu()

    def embedding_sets(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(reference, generated) embeddings of group ``name``, generated rows in the order they were added (what
        a paired comparison of two arms on the same prompts and seeds lines up, :mod:`metrics.paired`)."""
        return self._groups[name].kad.embedding_sets()

    @property
    def group_names(self) -> list[str]:
        """The groups that hold generated clips: overall first, then genres in sorted order."""
        return [name for name in [OVERALL, *sorted(n for n in self._groups if n != OVERALL)]
                if name == OVERALL or not is_empty_state(self._groups[name].kad.fake_features)]
