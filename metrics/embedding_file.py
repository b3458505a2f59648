"""An evaluation's embeddings on disk, so that a later comparison can pair it with another evaluation.

The evaluation callback writes one ``.npz`` next to each report (``evaluation/step-000400.npz``): the reference
embeddings and their genres, and the adapter's generated embeddings in prompt-and-seed order with their genres and
(with a CLAP embedder) the text embeddings of their prompts. :func:`load_scores` rebuilds the
:class:`~metrics.genre_scores.GenreScores` from it, which is what ``sweep-report`` pairs points with
(:func:`metrics.paired.paired_differences`): two points evaluated on the same prompts and seeds differ row for row
only by their adapters. A few hundred kB per evaluation at CLAP's 512 dimensions.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from datamodules.atomic_files import atomic_write_bytes
from metrics.clap import ClapConvention
from metrics.genre_scores import GenreScores, LabelledEmbeddings

UNKNOWN_GENRE = ""  # a generated row without a genre (overall only); npz holds no None
FORMAT_VERSION = 1


def save_embeddings(path: str | Path, reference: LabelledEmbeddings, generated: np.ndarray,
                    genres: list[str | None], text: np.ndarray | None = None,
                    convention: ClapConvention = "raw") -> Path:
    """Write one evaluation's embeddings to ``path`` (``.npz``, atomically: a reader never sees half a file), with
    the CLAP score ``convention`` the evaluation used."""
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "clap_convention": np.array(convention),
        "reference": np.asarray(reference.embeddings, dtype=np.float32),
        "reference_genres": np.array([g or UNKNOWN_GENRE for g in reference.genres], dtype=str),
        "generated": np.asarray(generated, dtype=np.float32),
        "genres": np.array([g or UNKNOWN_GENRE for g in genres], dtype=str),
    }
    if text is not None:
        arrays["text"] = np.asarray(text, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def load_scores(path: str | Path, source: str | None = None, **kwargs) -> GenreScores:
    """The :class:`GenreScores` of a saved evaluation, fed in the saved order (``kwargs``: GenreScores' own).

    Raises:
        ValueError: the file is not an evaluation embeddings file of a known format (named in the message).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable evaluation embeddings file ({error})") from error
    if int(arrays.get("format_version", -1)) != FORMAT_VERSION:
        raise ValueError(f"{path}: evaluation embeddings of format {arrays.get('format_version')}, this version "
                         f"reads format {FORMAT_VERSION}; re-run the evaluation to rewrite it")
    genres = [str(g) or None for g in arrays["reference_genres"]]
    reference = LabelledEmbeddings(arrays["reference"], genres, f"reference clips of {path.name}")
    kwargs.setdefault("convention", str(arrays["clap_convention"]))
    scores = GenreScores(reference, source or str(path), sync_on_compute=False, **kwargs)
    scores.update(arrays["generated"], [str(g) or None for g in arrays["genres"]], arrays.get("text"))
    return scores
