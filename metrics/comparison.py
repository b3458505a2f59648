"""The paper's comparison table: base model against LoRA on the same prompts and seeds, per genre and overall.

Kim et al. (2025) report CLAP and KAD for the base model and the adapter and their deltas; FAD is added. Inputs are
two :func:`metrics.evaluation.score_report` results over the same prompts, seeds and reference clips.
"""

from __future__ import annotations

from metrics.genre_scores import OVERALL

METRICS = ("clap_score", "kad", "fad")
LABELS = {"clap_score": "CLAP", "kad": "KAD", "fad": "FAD"}


def _delta(base: float | None, lora: float | None) -> float | None:
    return None if base is None or lora is None else lora - base


def compare_reports(base: dict, lora: dict) -> dict[str, dict[str, float | str | None]]:
    """``{group: {"kad_base", "kad_lora", "kad_delta", ..., "n_generated", "n_reference", "reference_set"}}`` for
    every group in both reports. ``reference_set`` is the group itself, or ``"all"`` where the reference had no
    clip of that genre and the group was compared with every reference clip (:func:`compared_with_itself`)."""
    rows: dict[str, dict[str, float | None]] = {}
    for group in [OVERALL] + sorted(g for g in lora["rows"] if g != OVERALL):
        if group not in base["rows"]:
            continue
        b, a = base["rows"][group], lora["rows"][group]
        row: dict[str, float | str | None] = {"n_generated": a["n_generated"], "n_reference": a["n_reference"],
                                              "reference_set": a.get("reference_set", group)}
        for metric in METRICS:
            row[f"{metric}_base"], row[f"{metric}_lora"] = b.get(metric), a.get(metric)
            row[f"{metric}_delta"] = _delta(b.get(metric), a.get(metric))
        rows[group] = row
    return rows


def compared_with_itself(group: str, row: dict) -> bool:
    """Whether ``group``'s row compared its clips with reference clips of the same genre (the overall row always
    does): the rows that may be reported, and logged, as that genre's score."""
    return row.get("reference_set", group) == group


def row_label(group: str, row: dict) -> str:
    """The group's name, marked ``(vs all)`` where it was compared with the whole reference set."""
    return group if compared_with_itself(group, row) else f"{group} (vs {row['reference_set']})"


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def comparison_markdown(rows: dict[str, dict[str, float | None]], title: str = "Base vs LoRA") -> str:
    """A markdown table in the paper's shape (metrics without values, e.g. CLAP without a CLAP embedder, left out)."""
    present = [m for m in METRICS if any(r[f"{m}_lora"] is not None for r in rows.values())]
    header = ["genre", "clips", "ref clips"]
    for metric in present:
        label = LABELS[metric]
        header += [f"{label} base", f"{label} LoRA", f"{label} delta"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, row in rows.items():
        cells = [row_label(group, row), str(row["n_generated"]), str(row.get("n_reference", "?"))]
        for metric in present:
            cells += [_cell(row[f"{metric}_base"]), _cell(row[f"{metric}_lora"]), _cell(row[f"{metric}_delta"], True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("CLAP: higher is better; KAD and FAD: lower is better. Same prompts, seeds and reference clips.")
    if not all(compared_with_itself(group, row) for group, row in rows.items()):
        lines.append("(vs all): the reference holds no clip of that genre, so its clips were compared with every "
                     "reference clip; that row says nothing about the genre itself.")
    return "\n".join(lines) + "\n"
