"""Input checks shared by every metric, so that a bad embedding set fails with a message that names the set.

KAD, FAD and the CLAP score silently return NaN or nonsense on NaN rows, on sets of one clip or on embeddings from
two different models; these checks turn each of those into an :class:`EmbeddingError` that says which set, how many
rows and what to do.
"""

from __future__ import annotations

import numpy as np
import torch


class EmbeddingError(ValueError):
    """An embedding set cannot be scored: too few rows, wrong shape, mismatched dimensions or non-finite values."""


def as_embedding_tensor(embeddings: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """Return ``embeddings`` as a floating-point 2-D tensor ``[N, D]``; raise :class:`EmbeddingError` otherwise.

    NumPy arrays are wrapped without copying; integer inputs are promoted to float32.
    """
    if isinstance(embeddings, np.ndarray):
        embeddings = torch.from_numpy(embeddings)
    if not isinstance(embeddings, torch.Tensor):
        raise EmbeddingError(f"{name} embeddings must be a torch.Tensor or numpy array, got {type(embeddings).__name__}")
    if embeddings.dim() != 2:
        raise EmbeddingError(f"{name} embeddings must be a 2-D [N, D] array, got shape {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        embeddings = embeddings.float()
    return embeddings


def check_finite(embeddings: torch.Tensor, name: str) -> None:
    """Raise :class:`EmbeddingError` naming ``name`` and the bad rows when ``embeddings`` holds NaN or inf."""
    bad_rows = (~torch.isfinite(embeddings)).any(dim=1)
    count = int(bad_rows.sum())
    if count:
        first = bad_rows.nonzero()[:5, 0].tolist()
        raise EmbeddingError(
            f"{name} embeddings contain NaN or inf in {count} of {embeddings.shape[0]} rows (rows {first}"
            f"{'...' if count > 5 else ''}); check the audio and the embedder that produced them"
        )


def check_embedding_pair(
    reference: torch.Tensor | np.ndarray,
    generated: torch.Tensor | np.ndarray,
    metric: str,
    min_rows: int = 2,
    names: tuple[str, str] = ("reference", "generated"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two embedding sets for a set-to-set metric and return them as 2-D floating tensors.

    Raises:
        EmbeddingError: a set is not 2-D, has fewer than ``min_rows`` rows, the two dimensions differ, or a set
            contains NaN/inf. The message names the set (``names``) and the metric.
    """
    x = as_embedding_tensor(reference, names[0])
    y = as_embedding_tensor(generated, names[1])
    for tensor, name in ((x, names[0]), (y, names[1])):
        if tensor.shape[0] < min_rows:
            raise EmbeddingError(
                f"{metric} needs at least {min_rows} {name} embeddings, got {tensor.shape[0]}; "
                f"{metric} is undefined for fewer (add clips to the {name} set)"
            )
    if x.shape[1] != y.shape[1]:
        raise EmbeddingError(
            f"{names[0]} embeddings have dimension {x.shape[1]} but {names[1]} embeddings have dimension "
            f"{y.shape[1]}; both sets must come from the same embedder"
        )
    check_finite(x, names[0])
    check_finite(y, names[1])
    return x, y
