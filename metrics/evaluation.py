"""Score a generated set against a reference set, overall and per genre, as one JSON-ready report.

Input is embeddings (from :func:`metrics.cache.embed_files` or ``.npy`` files) with a genre per row where known, and
optionally the CLAP text embeddings of the generated clips' prompts. Per genre, the generated clips of the genre are
compared with the reference clips of the same genre when the reference has them, else with the whole reference
(the row says which). A genre with fewer than 2 clips on either side gets no KAD/FAD (undefined) and a note,
whereas the overall row raises: an evaluation without a defined overall score is an error.
"""

from __future__ import annotations

import numpy as np

from metrics.blockwise import DEFAULT_BLOCK_SIZE
from metrics.clap import ClapConvention
from metrics.comparison import compared_with_itself, row_label, with_interval
from metrics.genre_scores import GenreScores, LabelledEmbeddings


def scores_of(
    generated: LabelledEmbeddings,
    reference: LabelledEmbeddings,
    *,
    text_embeddings: np.ndarray | None = None,
    prompted: list[bool] | None = None,
    convention: ClapConvention = "raw",
    bandwidth: float | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> GenreScores:
    """KAD, FAD and (with ``text_embeddings``) the CLAP score of the generated set, overall and per genre, as a
    :class:`~metrics.genre_scores.GenreScores` fed once in one process (no DDP sync). ``compute()`` is the report
    (each score with its 95% interval); two of them on the same prompts and seeds give paired differences
    (:func:`metrics.paired.paired_differences`).

    Args:
        text_embeddings: ``[N, D]`` CLAP text embeddings aligned with the generated rows; rows whose ``prompted``
            entry is False are ignored (clips without a prompt).
        bandwidth: fixed KAD bandwidth; None uses each generated group's median pairwise distance.

    Raises:
        EmbeddingError (at ``compute()``): the overall sets have fewer than 2 rows, different dimensions or NaN/inf
            rows.
    """
    scores = GenreScores(reference, generated.source, convention=convention, bandwidth=bandwidth,
                         block_size=block_size, sync_on_compute=False)
    scores.update(generated.embeddings, generated.genres, text_embeddings, prompted)
    return scores


def render_markdown(report: dict, title: str = "Evaluation") -> str:
    """The report as a markdown table (one row per set: all clips, then each genre) with its provenance."""
    convention = report.get("clap_convention")
    clap_header = f"CLAP ({convention})" if convention else "CLAP"
    lines = [
        f"# {title}",
        "",
        f"- generated: `{report['generated']['source']}` ({report['generated']['clips']} clips)",
        f"- reference: `{report['reference']['source']}` ({report['reference']['clips']} clips)",
        (
            f"- embedder: `{report.get('embedder_id', report.get('embedder', 'precomputed'))}` "
            f"({report['embedding_dim']}-d)"
        ),
        f"- KAD: x100, unbiased (can be negative); bandwidth: {report['kad_bandwidth_rule']}",
    ]
    intervals = report.get("intervals")
    if intervals:
        methods = intervals["methods"]
        lines.append(f"- [low, high]: {intervals['level']:.0%} interval; KAD and CLAP: {methods['kad']} "
                     f"({intervals['resamples']} resamples, seed {intervals['seed']}); FAD: {methods['fad']}")
    if convention == "raw":
        lines.append("- CLAP score: mean raw cosine between prompt and clip embeddings, in [-1, 1]")
    elif convention == "shifted":
        lines.append("- CLAP score: mean of (cosine + 1) / 2, the paper's convention, in [0, 1]")
    lines += [
        "",
        f"| set | generated | reference | {clap_header} | KAD | FAD |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["rows"].items():
        reference = f"{row['n_reference']}"
        clap = with_interval(row["clap_score"], row.get("clap_score_ci"), missing="–")
        clap += f" (n={row['clap_pairs']})" if row["clap_score"] is not None else ""
        kad = with_interval(row["kad"], row.get("kad_ci"), missing="–")
        fad = with_interval(row["fad"], row.get("fad_ci"), missing="–")
        lines.append(f"| {row_label(name, row)} | {row['n_generated']} | {reference} | {clap} | {kad} | {fad} |")
    notes = [f"- {name}: {row['note']}" for name, row in report["rows"].items() if row.get("note")]
    notes += [f"- {note}" for note in report.get("notes", [])]
    notes += [f"- {name}: no reference clip of this genre; compared with all {row['n_reference']} reference clips"
              for name, row in report["rows"].items() if not compared_with_itself(name, row)]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
