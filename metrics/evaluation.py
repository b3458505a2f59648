"""Score a generated set against a reference set, overall and per genre, as one JSON-ready report.

Input is embeddings (from :func:`metrics.cache.embed_files` or ``.npy`` files) with a genre per row where known, and
optionally the CLAP text embeddings of the generated clips' prompts. Per genre, the generated clips of the genre are
compared with the reference clips of the same genre when the reference has them, else with the whole reference
(the row says which). A genre with fewer than 2 clips on either side gets no KAD/FAD (undefined) and a note,
whereas the overall row raises: an evaluation without a defined overall score is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metrics.checks import EmbeddingError, check_embedding_pair
from metrics.clap import ClapConvention, apply_convention, check_convention, pair_cosines
from metrics.fad import frechet_audio_distance
from metrics.kad import DEFAULT_BLOCK_SIZE, kernel_audio_distance, median_pairwise_distance

OVERALL = "all"


@dataclass(frozen=True)
class LabelledEmbeddings:
    """``[N, D]`` embeddings, the genre of each row (None when unknown) and where they came from."""

    embeddings: np.ndarray
    genres: list[str | None]
    source: str

    def __post_init__(self) -> None:
        if len(self.genres) != len(self.embeddings):
            raise ValueError(f"{len(self.genres)} genres for {len(self.embeddings)} embeddings")


def score_report(
    generated: LabelledEmbeddings,
    reference: LabelledEmbeddings,
    *,
    text_embeddings: np.ndarray | None = None,
    prompted: list[bool] | None = None,
    convention: ClapConvention = "raw",
    bandwidth: float | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict:
    """KAD, FAD and (with ``text_embeddings``) the CLAP score, overall and per genre of the generated set.

    Args:
        text_embeddings: ``[N, D]`` CLAP text embeddings aligned with the generated rows; rows whose ``prompted``
            entry is False are ignored (clips without a prompt).
        bandwidth: fixed KAD bandwidth; None uses each generated group's median pairwise distance.

    Raises:
        EmbeddingError: the overall sets have fewer than 2 rows, different dimensions or NaN/inf rows.
    """
    check_convention(convention)
    gen = torch.from_numpy(np.asarray(generated.embeddings, dtype=np.float32))
    ref = torch.from_numpy(np.asarray(reference.embeddings, dtype=np.float32))
    check_embedding_pair(ref, gen, "KAD and FAD")
    cosines = None
    if text_embeddings is not None:
        prompted = [True] * len(gen) if prompted is None else list(prompted)
        rows = [i for i, has in enumerate(prompted) if has]
        cosines = {}
        if rows:
            values = pair_cosines(np.asarray(text_embeddings)[rows], gen[rows].numpy())
            cosines = dict(zip(rows, values.tolist()))
    groups = [(OVERALL, list(range(len(gen))))]
    genres = sorted({genre for genre in generated.genres if genre is not None})
    groups += [(genre, [i for i, g in enumerate(generated.genres) if g == genre]) for genre in genres]
    report_rows = {}
    for name, gen_rows in groups:
        ref_rows = [i for i, g in enumerate(reference.genres) if g == name] if name != OVERALL else []
        ref_label = name if ref_rows else OVERALL
        ref_rows = ref_rows or list(range(len(ref)))
        report_rows[name] = _score_group(
            gen[gen_rows], ref[ref_rows], ref_label, bandwidth, block_size, strict=name == OVERALL
        )
        if cosines is not None:
            values = [cosines[i] for i in gen_rows if i in cosines]
            report_rows[name]["clap_pairs"] = len(values)
            report_rows[name]["clap_score"] = (
                float(apply_convention(torch.tensor(values, dtype=torch.float64), convention).mean()) if values else None
            )
    return {
        "generated": {"source": generated.source, "clips": len(gen)},
        "reference": {"source": reference.source, "clips": len(ref)},
        "embedding_dim": int(gen.shape[1]),
        "clap_convention": convention if cosines is not None else None,
        "kad_bandwidth_rule": "fixed" if bandwidth is not None else "median pairwise distance of the generated set",
        "rows": report_rows,
    }


def _score_group(gen: torch.Tensor, ref: torch.Tensor, ref_label: str, bandwidth: float | None, block_size: int,
                 strict: bool) -> dict:
    row: dict = {"n_generated": int(gen.shape[0]), "n_reference": int(ref.shape[0]), "reference_set": ref_label,
                 "kad": None, "kad_bandwidth": None, "fad": None, "clap_score": None, "clap_pairs": 0, "note": None}
    try:
        check_embedding_pair(ref, gen, "KAD and FAD")
    except EmbeddingError as error:
        if strict:
            raise
        row["note"] = str(error)
        return row
    used = float(median_pairwise_distance(gen, block_size=block_size)) if bandwidth is None else float(bandwidth)
    row["kad_bandwidth"] = used
    row["kad"] = float(kernel_audio_distance(ref, gen, used, block_size=block_size))
    row["fad"] = float(frechet_audio_distance(ref, gen))
    return row


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


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
        reference = f"{row['n_reference']}" + ("" if row["reference_set"] == name else f" ({row['reference_set']})")
        clap = _fmt(row["clap_score"]) + (f" (n={row['clap_pairs']})" if row["clap_score"] is not None else "")
        lines.append(
            f"| {name} | {row['n_generated']} | {reference} | {clap} | {_fmt(row['kad'])} | {_fmt(row['fad'])} |"
        )
    notes = [f"- {name}: {row['note']}" for name, row in report["rows"].items() if row.get("note")]
    notes += [f"- {note}" for note in report.get("notes", [])]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
