"""The paper's comparison table: base model against LoRA on the same prompts and seeds, per genre and overall.

Kim et al. (2025) report CLAP and KAD for the base model and the adapter and their deltas; FAD is added, and every
value carries its 95% interval where the reports have one. Inputs are the reports (``compute()``) of two
:func:`metrics.evaluation.scores_of` results over the same prompts, seeds and reference clips, and optionally
their paired differences (:func:`metrics.paired.paired_differences`), which give each delta its interval and
significance.
"""

from __future__ import annotations

from typing import Any

from metrics.genre_scores import OVERALL

METRICS = ("clap_score", "kad", "fad")
LABELS = {"clap_score": "CLAP", "kad": "KAD", "fad": "FAD"}


def _delta(base: float | None, lora: float | None) -> float | None:
    return None if base is None or lora is None else lora - base


def compare_reports(base: dict, lora: dict, paired: dict[str, dict[str, Any]] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """``{group: {"kad_base", "kad_lora", "kad_delta", "kad_base_ci", "kad_lora_ci", ..., "n_generated",
    "n_reference", "reference_set"}}`` for every group in both reports, plus the ``paired`` entries of the group
    (``kad_delta_ci``, ``kad_delta_significant``, ``kad_clips_needed``, ...). ``reference_set`` is the group itself,
    or ``"all"`` where the reference had no clip of that genre and the group was compared with every reference clip
    (:func:`compared_with_itself`)."""
    rows: dict[str, dict[str, Any]] = {}
    for group in [OVERALL] + sorted(g for g in lora["rows"] if g != OVERALL):
        if group not in base["rows"]:
            continue
        b, a = base["rows"][group], lora["rows"][group]
        row: dict[str, float | str | None] = {"n_generated": a["n_generated"], "n_reference": a["n_reference"],
                                              "reference_set": a.get("reference_set", group)}
        for metric in METRICS:
            row[f"{metric}_base"], row[f"{metric}_lora"] = b.get(metric), a.get(metric)
            row[f"{metric}_delta"] = _delta(b.get(metric), a.get(metric))
            row[f"{metric}_base_ci"], row[f"{metric}_lora_ci"] = b.get(f"{metric}_ci"), a.get(f"{metric}_ci")
        row.update((paired or {}).get(group, {}))
        rows[group] = row
    return rows


def compared_with_itself(group: str, row: dict) -> bool:
    """Whether ``group``'s row compared its clips with reference clips of the same genre (the overall row always
    does): the rows that may be reported, and logged, as that genre's score."""
    return row.get("reference_set", group) == group


def row_label(group: str, row: dict) -> str:
    """The group's name, marked ``(vs all)`` where it was compared with the whole reference set."""
    return group if compared_with_itself(group, row) else f"{group} (vs {row['reference_set']})"


def with_interval(value: float | None, interval: list[float] | None = None, *, signed: bool = False,
                  missing: str = "n/a") -> str:
    """``12.3456 [10.1234, 14.5678]``: a score to 4 decimals with its interval where there is one (``signed``:
    ``+``/``-`` on every number, for deltas); ``missing`` where there is no value. Every table of scores uses it."""
    if value is None:
        return missing
    number = f"{value:+.4f}" if signed else f"{value:.4f}"
    if interval is None:
        return number
    low, high = (f"{bound:+.4f}" if signed else f"{bound:.4f}" for bound in interval)
    return f"{number} [{low}, {high}]"


def _delta_cell(row: dict[str, Any], metric: str) -> str:
    """The delta with its paired interval, marked ``n.s.`` where the interval holds 0."""
    cell = with_interval(row[f"{metric}_delta"], row.get(f"{metric}_delta_ci"), signed=True)
    return cell + (" n.s." if row.get(f"{metric}_delta_significant") is False else "")


def comparison_markdown(rows: dict[str, dict[str, Any]], title: str = "Base vs LoRA") -> str:
    """A markdown table in the paper's shape (metrics without values, e.g. CLAP without a CLAP embedder, left out),
    each value with its 95% interval where the rows carry one, and what the intervals mean below it."""
    present = [m for m in METRICS if any(r[f"{m}_lora"] is not None for r in rows.values())]
    header = ["genre", "clips", "ref clips"]
    for metric in present:
        label = LABELS[metric]
        header += [f"{label} base", f"{label} LoRA", f"{label} delta"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, row in rows.items():
        cells = [row_label(group, row), str(row["n_generated"]), str(row.get("n_reference", "?"))]
        for metric in present:
            cells += [with_interval(row[f"{metric}_base"], row.get(f"{metric}_base_ci")),
                      with_interval(row[f"{metric}_lora"], row.get(f"{metric}_lora_ci")), _delta_cell(row, metric)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("CLAP: higher is better; KAD and FAD: lower is better. Same prompts, seeds and reference clips.")
    if any(row.get(f"{m}_base_ci") or row.get(f"{m}_delta_ci") for row in rows.values() for m in present):
        lines.append("[low, high]: 95% interval (KAD and CLAP: bootstrap over clips; FAD: jackknife). A delta's "
                     "interval is paired (both arms resampled together); n.s.: it holds 0, so the difference is not "
                     "significant at 95%.")
    lines += _clips_needed_lines(rows, present)
    if not all(compared_with_itself(group, row) for group, row in rows.items()):
        lines.append("(vs all): the reference holds no clip of that genre, so its clips were compared with every "
                     "reference clip; that row says nothing about the genre itself.")
    return "\n".join(lines) + "\n"


def _clips_needed_lines(rows: dict[str, dict[str, Any]], present: list[str]) -> list[str]:
    """One line per not-significant delta: about how many clips per set would make a difference that size
    significant (:func:`metrics.paired.clips_for_significance`)."""
    needed = [f"{row_label(group, row)} {LABELS[m]} ~{row[f'{m}_clips_needed']}"
              for group, row in rows.items() for m in present
              if row.get(f"{m}_delta_significant") is False and row.get(f"{m}_clips_needed")]
    if not needed:
        return []
    return ["Clips per set (each arm and the reference) at which the observed n.s. differences would be significant, "
            "if they held: " + "; ".join(needed) + "."]


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with each ``[low, high]`` interval as two scalar entries ``<name>_low`` and ``<name>_high`` (a
    W&B table column holds one scalar per cell)."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_ci"):
            flat[f"{key}_low"], flat[f"{key}_high"] = value if value is not None else (None, None)
        else:
            flat[key] = value
    return flat
