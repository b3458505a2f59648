"""An evaluation's embeddings on disk (metrics/embedding_file.py): the saved evaluation scores as the original did,
and a file that is not one is refused with its path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metrics.embedding_file import load_scores, save_embeddings
from metrics.genre_scores import GenreScores, LabelledEmbeddings


def test_a_saved_evaluation_scores_as_the_original(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = LabelledEmbeddings(rng.normal(size=(20, 6)), ["a"] * 10 + ["b"] * 10, "reference")
    generated, text = (rng.normal(size=(12, 6)).astype(np.float32) for _ in range(2))  # embedders give float32
    genres = ["a"] * 5 + ["b"] * 5 + [None, None]
    original = GenreScores(reference, "LoRA", convention="shifted", resamples=50, sync_on_compute=False)
    original.update(generated, genres, text)
    path = save_embeddings(tmp_path / "step-000002.npz", reference, generated, genres, text, "shifted")
    loaded = load_scores(path, "LoRA", resamples=50)
    assert loaded.compute()["rows"] == original.compute()["rows"]
    assert loaded.convention == "shifted" and [p.name for p in tmp_path.iterdir()] == ["step-000002.npz"]


def test_a_file_that_is_not_an_evaluation_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "step-000002.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="step-000002.npz: not a readable evaluation embeddings file"):
        load_scores(broken)
    other = tmp_path / "other.npz"
    np.savez(other, format_version=np.array(99))
    with pytest.raises(ValueError, match="other.npz: evaluation embeddings of format 99.*re-run the evaluation"):
        load_scores(other)
