"""CLAP score: agreement between a prompt and the audio generated for it (docs/metrics.md, 'CLAP score').

The score is the mean over (prompt, clip) pairs of the cosine between the CLAP text embedding of the prompt and the
CLAP audio embedding of the clip: audiocraft's ``CLAPTextConsistencyMetric`` and stable-audio-metrics' convention
("raw", in [-1, 1]). The paper's code reported ``(cos + 1) / 2`` ("shifted", in [0, 1]); it is offered so results can
be compared with the paper, and every output records which convention it used so the two are never mixed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from metrics.checks import EmbeddingError, as_embedding_tensor, check_finite
from metrics.specs import CLAP_CONVENTIONS

ClapConvention = Literal["raw", "shifted"]


def check_convention(convention: str) -> None:
    """Raise ``ValueError`` unless ``convention`` is "raw" or "shifted"."""
    if convention not in CLAP_CONVENTIONS:
        raise ValueError(f"CLAP convention must be one of {CLAP_CONVENTIONS}, got {convention!r}")


def pair_cosines(text_embeds: torch.Tensor | np.ndarray, audio_embeds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cosine between row i of ``text_embeds`` and row i of ``audio_embeds``, in float64, ``[N]``.

    Raises :class:`~metrics.checks.EmbeddingError` for empty sets, different row counts or dimensions, NaN/inf.
    """
    text = as_embedding_tensor(text_embeds, "text")
    audio = as_embedding_tensor(audio_embeds, "audio").to(text.device)
    if text.shape[0] == 0:
        raise EmbeddingError("the CLAP score needs at least 1 (prompt, clip) pair, got 0")
    if text.shape[0] != audio.shape[0]:
        raise EmbeddingError(
            f"the CLAP score pairs prompts with clips: got {text.shape[0]} text embeddings and "
            f"{audio.shape[0]} audio embeddings"
        )
    if text.shape[1] != audio.shape[1]:
        raise EmbeddingError(
            f"text embeddings have dimension {text.shape[1]} but audio embeddings have dimension {audio.shape[1]}; "
            "both must come from the same CLAP model"
        )
    check_finite(text, "text")
    check_finite(audio, "audio")
    return torch.nn.functional.cosine_similarity(text.double(), audio.double(), dim=-1, eps=1e-8)


def apply_convention(cosines: torch.Tensor, convention: ClapConvention = "raw") -> torch.Tensor:
    """Map raw cosines to the chosen convention: unchanged ("raw") or ``(cos + 1) / 2`` ("shifted")."""
    check_convention(convention)
    return cosines if convention == "raw" else (cosines + 1.0) / 2.0


def clap_score(
    text_embeds: torch.Tensor | np.ndarray,
    audio_embeds: torch.Tensor | np.ndarray,
    convention: ClapConvention = "raw",
) -> torch.Tensor:
    """Mean CLAP score of ``N`` (prompt, clip) pairs given their ``[N, D]`` text and audio embeddings.

    Returns:
        0-dim float64 tensor: the mean raw cosine, or the mean of ``(cos + 1) / 2`` with ``convention="shifted"``.
    """
    check_convention(convention)
    return apply_convention(pair_cosines(text_embeds, audio_embeds), convention).mean()
