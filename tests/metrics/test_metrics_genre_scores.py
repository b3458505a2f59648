"""GenreScores: the per-genre report through the torchmetrics classes equals the float64 reference formulas,
does not depend on how the generated set is batched, and states which reference set a genre was scored against."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import reference_kad

from metrics.checks import EmbeddingError
from metrics.genre_scores import OVERALL, GenreScores, LabelledEmbeddings


def _sets(seed: int = 0) -> tuple[LabelledEmbeddings, np.ndarray, list[str | None], np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = LabelledEmbeddings(rng.normal(size=(30, 8)).astype(np.float32),
                                   [("a", "b", "z")[i % 3] for i in range(30)], "reference clips")
    generated = (rng.normal(size=(25, 8)) + 0.3).astype(np.float32)
    genres = [("a", "b", "c", None)[i % 4] for i in range(25)]
    text = rng.normal(size=(25, 8)).astype(np.float32)
    return reference, generated, genres, text


def test_rows_equal_the_reference_formulas_per_genre() -> None:
    reference, generated, genres, text = _sets()
    scores = GenreScores(reference, "LoRA", sync_on_compute=False)
    scores.update(generated, genres, text)
    report = scores.compute()
    assert list(report["rows"]) == [OVERALL, "a", "b", "c"]
    assert report["generated"] == {"source": "LoRA", "clips": 25} and report["embedding_dim"] == 8
    ref_genres = np.array(reference.genres)
    for name, row in report["rows"].items():
        gen_rows = [i for i, g in enumerate(genres) if name == OVERALL or g == name]
        same_genre = ref_genres == name
        ref_rows = reference.embeddings[same_genre] if same_genre.any() else reference.embeddings
        assert row["reference_set"] == (name if same_genre.any() else OVERALL)
        assert row["n_generated"] == len(gen_rows) and row["n_reference"] == len(ref_rows)
        assert row["kad"] == pytest.approx(reference_kad(ref_rows, generated[gen_rows]), rel=1e-4, abs=1e-6)
        cosines = [float(np.dot(text[i], generated[i]) / np.linalg.norm(text[i]) / np.linalg.norm(generated[i]))
                   for i in gen_rows]
        assert row["clap_pairs"] == len(gen_rows)
        assert row["clap_score"] == pytest.approx(np.mean(cosines), rel=1e-6)


def test_batched_updates_give_the_single_update_report() -> None:
    reference, generated, genres, text = _sets(1)
    whole = GenreScores(reference, "LoRA", genres=["a", "b", "c", "never"], sync_on_compute=False)
    whole.update(generated, genres, text)
    batched = GenreScores(reference, "LoRA", sync_on_compute=False)
    for start in range(0, 25, 4):
        batched.update(generated[start:start + 4], genres[start:start + 4], text[start:start + 4])
    expected = whole.compute()
    assert "never" not in expected["rows"]  # declared, but no clip of it was generated
    got = batched.compute()
    assert got.keys() == expected.keys() and got["rows"].keys() == expected["rows"].keys()
    for name, row in expected["rows"].items():
        for key, value in row.items():
            assert got["rows"][name][key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value)


def test_a_genre_with_one_clip_gets_a_note_and_the_overall_row_raises() -> None:
    reference, generated, genres, _ = _sets(2)
    genres = ["a"] * 24 + ["solo"]
    scores = GenreScores(reference, "LoRA", sync_on_compute=False)
    scores.update(generated, genres)
    row = scores.compute()["rows"]["solo"]
    assert row["kad"] is None and row["fad"] is None
    assert "KAD and FAD needs at least 2 generated embeddings, got 1" in row["note"]
    lonely = GenreScores(reference, "LoRA", sync_on_compute=False)
    lonely.update(generated[:1], ["a"])
    with pytest.raises(EmbeddingError, match="at least 2 generated"):
        lonely.compute()


def test_a_generated_set_from_another_embedder_is_refused_at_update() -> None:
    reference, _, _, _ = _sets(3)
    scores = GenreScores(reference, "LoRA", sync_on_compute=False)
    with pytest.raises(EmbeddingError, match="reference embeddings have dimension 8 but generated embeddings have "
                                             "dimension 5"):
        scores.update(np.zeros((4, 5), dtype=np.float32), ["a"] * 4)


def test_a_genre_scored_against_other_genres_is_marked_everywhere_and_never_logged_as_its_own() -> None:
    """Genre "c" has no reference clip: its row compares with all 30 reference clips and every output says so."""
    from callbacks.evaluation import GenreEvaluation
    from lightning_modules.model_card import metrics_table
    from metrics.comparison import compare_reports, comparison_markdown
    from metrics.evaluation import render_markdown

    reference, generated, genres, text = _sets()
    reports = {}
    for source, shift in (("base model", 0.0), ("LoRA", 0.1)):
        scores = GenreScores(reference, source, sync_on_compute=False)
        scores.update(generated + shift, genres, text)
        reports[source] = scores.compute()
    rows = compare_reports(reports["base model"], reports["LoRA"])
    assert rows["c"]["reference_set"] == OVERALL and rows["c"]["n_reference"] == 30 and rows["a"]["n_reference"] == 10
    table = comparison_markdown(rows)
    assert "| c (vs all) | 6 | 30 |" in table and "| a | 7 | 10 |" in table and "(vs all): the reference holds" in table
    assert "| c (vs all) |" in render_markdown(reports["LoRA"]) and "compared with all 30 reference clips" in \
        render_markdown(reports["LoRA"])
    assert any(line.startswith("| c (vs all) |") for line in metrics_table({"rows": reports["LoRA"]["rows"]}))

    logged: dict[str, float] = {}

    class Recorder:
        def log(self, name: str, value: float) -> None:
            logged[name] = value

    GenreEvaluation(embedder="mel-stats")._log(Recorder(), "val", rows)  # type: ignore[arg-type]
    assert "val/kad/a" in logged and "val/kad/b" in logged and "val/kad" in logged
    assert not any(name.endswith("/c") for name in logged)  # no val/kad/c that is really "c vs everything"


def test_rows_carry_bootstrap_intervals_with_their_method() -> None:
    from metrics.bootstrap import bootstrap_kad, bootstrap_mean, distance_interval
    from metrics.clap import apply_convention

    reference, generated, genres, text = _sets(2)
    scores = GenreScores(reference, "LoRA", convention="shifted", resamples=300, bootstrap_seed=7,
                         sync_on_compute=False)
    scores.update(generated, genres, text)
    report = scores.compute()
    assert report["intervals"]["resamples"] == 300 and report["intervals"]["seed"] == 7
    overall = report["rows"][OVERALL]
    expected = bootstrap_kad(reference.embeddings, generated, overall["kad_bandwidth"], resamples=300, seed=7)
    assert overall["kad_ci"] == pytest.approx([expected.low, expected.high])
    cosines = [float(np.dot(t, g) / np.linalg.norm(t) / np.linalg.norm(g)) for t, g in zip(text, generated)]
    clap = bootstrap_mean(apply_convention(torch.tensor(cosines, dtype=torch.float64), "shifted").numpy(),
                          resamples=300, seed=7)
    assert overall["clap_score_ci"] == pytest.approx([clap.low, clap.high])
    assert 0.0 <= overall["clap_score_ci"][0] < overall["clap_score_ci"][1] <= 1.0  # in the shifted convention
    fad = distance_interval("fad", reference.embeddings, generated)
    assert overall["fad_ci"] == pytest.approx([fad.low, fad.high]) and fad.low < overall["fad"] < fad.high
    assert set(report["intervals"]["methods"]) == {"kad", "fad", "clap_score"}
    assert GenreScores(reference, "x", resamples=0, sync_on_compute=False).resamples == 0
    none = GenreScores(reference, "LoRA", resamples=0, sync_on_compute=False)
    none.update(generated, genres, text)
    plain = none.compute()
    assert plain["intervals"] is None and plain["rows"][OVERALL]["kad_ci"] is None
    assert plain["rows"][OVERALL]["fad_ci"] is None
