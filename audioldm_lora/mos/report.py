"""Writing the analysis: a markdown report, CSV tables, a JSON dump and one bar chart per scale.

Every document is rendered in memory first and then written file by file through a temporary file and a rename,
so an error never leaves a half-written table, and an earlier report in the folder is replaced file by file only
once everything has been computed.

Tables:

* ``mos_table.md`` / ``mos_table.csv``: the paper's shape, one row per system, one column per genre, cells
  ``MOS +- half-width of the t-interval``.
* ``mos.csv``: the long form, one row per scale, genre and system, with both intervals and the counts.
* ``wilcoxon.csv``, ``preferences.csv`` (A/B tests only), ``listeners.csv`` (who was used, who was rejected and why).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datamodules.atomic_files import atomic_write_bytes

from .analysis import Analysis
from .fileio import atomic_write_json
from .plot import mos_chart


def _num(value: float, digits: int = 2) -> str:
    """Fixed-point text, ``n/a`` for NaN."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    """A p-value as text: three decimals, or ``<0.001``."""
    if value is None or math.isnan(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    """CSV bytes (NaN written as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    return buffer.getvalue().encode("utf-8")


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _half_width(row: Any) -> float:
    return (row.summary.t_high - row.summary.t_low) / 2.0


def paper_table(analysis: Analysis, scale: str) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    """Header, markdown rows and CSV rows of the paper-shaped table of ``scale``."""
    rows = {(r.genre, r.system): r for r in analysis.mos if r.scale == scale}
    genres = [g for g in analysis.genres if any((g, s) in rows for s in analysis.systems)]
    header = ["System"] + [("Overall" if g == "all" else g) for g in genres]
    md_rows, csv_rows = [], []
    for system in analysis.systems:
        md: list[str] = [system]
        numbers: list[Any] = [scale, system]
        for genre in genres:
            row = rows.get((genre, system))
            md.append("n/a" if row is None else f"{_num(row.summary.mean)} ± {_num(_half_width(row))}")
            numbers += [row.summary.mean, _half_width(row)] if row else [math.nan, math.nan]
        md_rows.append(md)
        csv_rows.append(numbers)
    return header, md_rows, csv_rows


def _mos_long(analysis: Analysis) -> bytes:
    header = [
        "scale",
        "genre",
        "system",
        "mos",
        "sd",
        "t_low",
        "t_high",
        "bootstrap_low",
        "bootstrap_high",
        "n_ratings",
        "n_listeners",
    ]
    rows = [
        [
            r.scale,
            r.genre,
            r.system,
            r.summary.mean,
            r.summary.sd,
            r.summary.t_low,
            r.summary.t_high,
            r.summary.boot_low,
            r.summary.boot_high,
            r.summary.n,
            r.n_listeners,
        ]
        for r in analysis.mos
    ]
    return _csv(header, rows)


def _pairs_csv(analysis: Analysis) -> bytes:
    header = [
        "scale",
        "genre",
        "system_a",
        "system_b",
        "n_pairs",
        "n_nonzero",
        "mean_difference",
        "median_difference",
        "wilcoxon_statistic",
        "p_value",
        "p_holm",
        "rank_biserial",
    ]
    rows = [
        [
            r.scale,
            r.genre,
            r.system_a,
            r.system_b,
            r.test.n_pairs,
            r.test.n_nonzero,
            r.test.mean_difference,
            r.test.median_difference,
            r.test.statistic,
            r.test.p_value,
            r.p_holm,
            r.test.rank_biserial,
        ]
        for r in analysis.pairs
    ]
    return _csv(header, rows)


def _preferences_csv(analysis: Analysis) -> bytes:
    header = [
        "genre",
        "system_a",
        "system_b",
        "wins_a",
        "wins_b",
        "ties",
        "share_a",
        "ci_low",
        "ci_high",
        "p_value",
        "p_holm",
        "n_listeners",
    ]
    rows = [
        [
            r.genre,
            r.system_a,
            r.system_b,
            r.test.wins_a,
            r.test.wins_b,
            r.test.ties,
            r.test.share_a,
            r.test.ci_low,
            r.test.ci_high,
            r.test.p_value,
            r.p_holm,
            r.n_listeners,
        ]
        for r in analysis.preferences
    ]
    return _csv(header, rows)


def _listeners_csv(analysis: Analysis) -> bytes:
    rows = [
        [str(r.answers.path), r.answers.listener_id, "accepted" if r.accepted else "rejected", "; ".join(r.reasons)]
        for r in analysis.listeners
    ]
    return _csv(["file", "listener_id", "status", "reasons"], rows)


def _markdown_report(analysis: Analysis) -> str:
    confidence = analysis.settings["confidence"]
    level = f"{confidence:.0%}"
    accepted = [r for r in analysis.listeners if r.accepted]
    rejected = [r for r in analysis.listeners if not r.accepted]
    parts = [
        f"# Listening test {analysis.test_id}\n",
        f"Listeners: {len(accepted)} accepted, {len(rejected)} rejected, of {len(analysis.listeners)} answer files.\n",
    ]
    if rejected:
        parts.append(
            "Rejected:\n\n"
            + "".join(
                f"- `{r.answers.path.name}` ({r.answers.listener_id}): {'; '.join(r.reasons)}\n" for r in rejected
            )
        )
    for scale in analysis.scales:
        header, md_rows, _ = paper_table(analysis, scale["id"])
        parts.append(f"## {scale['label']} (MOS ± half-width of the {level} t-interval)\n")
        parts.append(_markdown(header, md_rows))
        detail = [
            [
                r.genre,
                r.system,
                _num(r.summary.mean),
                _num(r.summary.sd),
                f"[{_num(r.summary.t_low)}, {_num(r.summary.t_high)}]",
                f"[{_num(r.summary.boot_low)}, {_num(r.summary.boot_high)}]",
                str(r.summary.n),
                str(r.n_listeners),
            ]
            for r in analysis.mos
            if r.scale == scale["id"]
        ]
        parts.append(
            "\n"
            + _markdown(
                ["Genre", "System", "MOS", "SD", f"{level} CI (t)", f"{level} CI (bootstrap)", "Ratings", "Listeners"],
                detail,
            )
        )
        pairs = [
            [
                r.genre,
                f"{r.system_a} vs {r.system_b}",
                str(r.test.n_pairs),
                _num(r.test.mean_difference),
                _num(r.test.statistic, 1),
                _p(r.test.p_value),
                _p(r.p_holm),
                _num(r.test.rank_biserial),
            ]
            for r in analysis.pairs
            if r.scale == scale["id"]
        ]
        if pairs:
            parts.append(
                "\nPaired Wilcoxon signed-rank tests:\n\n"
                + _markdown(["Genre", "Pair", "Pairs", "Mean diff.", "W", "p", "p (Holm)", "Rank-biserial r"], pairs)
            )
        parts.append(f"\n![{scale['label']}](mos_{scale['id']}.png)\n")
    if analysis.preferences:
        rows = [
            [
                r.genre,
                f"{r.system_a} vs {r.system_b}",
                f"{r.test.wins_a} / {r.test.wins_b} / {r.test.ties}",
                _num(r.test.share_a),
                f"[{_num(r.test.ci_low)}, {_num(r.test.ci_high)}]",
                _p(r.test.p_value),
                _p(r.p_holm),
                str(r.n_listeners),
            ]
            for r in analysis.preferences
        ]
        parts.append(
            "## A/B preference\n\n"
            + _markdown(
                [
                    "Genre",
                    "Pair",
                    "Wins a / b / ties",
                    "Share a",
                    f"{level} CI (Wilson)",
                    "p (binomial)",
                    "p (Holm)",
                    "Listeners",
                ],
                rows,
            )
        )
    parts.append(
        "## Method\n\n"
        f"MOS is the mean of all 1-5 ratings of a system (real pages only: repeated and anchor pages are attention "
        f"checks). {level} intervals: Student t (mean ± t·s/√n over ratings) and BCa bootstrap "
        f"(scipy.stats.bootstrap, {analysis.settings['n_resamples']} resamples, seed {analysis.settings['seed']}). "
        "Pairs: two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero differences dropped) on the ratings "
        "one listener gave both systems for the same prompt; effect size is the matched-pairs rank-biserial "
        "correlation (positive: the first system rated higher); p-values Holm-corrected within each scale and genre. "
        "A/B: share of decided choices for the first system, Wilson interval, two-sided binomial test, Holm within "
        "each genre. t-intervals are not clipped to the 1-5 scale.\n"
    )
    if "anchor_max" in analysis.settings:
        parts.append(
            "Listeners were excluded when they did not answer every page, when their recorded order did not match "
            "their listener id, when a repeated page's ratings moved by more than "
            f"{analysis.settings['repeat_tolerance']:g} points on average (or a repeated A/B choice flipped), or when "
            f"they rated the degraded anchor above {analysis.settings['anchor_max']} (or preferred it in A/B); "
            "a second answer file of the same listener is a duplicate and not used.\n"
        )
    return "\n".join(parts)


def render_report(analysis: Analysis) -> dict[str, bytes]:
    """Every output file name with its content, rendered in memory."""
    files: dict[str, bytes] = {
        "report.md": _markdown_report(analysis).encode("utf-8"),
        "mos.csv": _mos_long(analysis),
        "wilcoxon.csv": _pairs_csv(analysis),
        "listeners.csv": _listeners_csv(analysis),
    }
    md_tables, csv_rows, csv_header = [], [], ["scale", "system"]
    for scale in analysis.scales:
        header, md_rows, rows = paper_table(analysis, scale["id"])
        md_tables.append(f"### {scale['label']}\n\n" + _markdown(header, md_rows))
        if len(csv_header) == 2:
            for name in header[1:]:
                csv_header += [name, f"{name}_ci_half_width"]
        csv_rows += rows
    files["mos_table.md"] = "\n".join(md_tables).encode("utf-8")
    files["mos_table.csv"] = _csv(csv_header, csv_rows)
    if analysis.preferences:
        files["preferences.csv"] = _preferences_csv(analysis)
    for scale in analysis.scales:
        if any(r.scale == scale["id"] for r in analysis.mos):
            files[f"mos_{scale['id']}.png"] = mos_chart(analysis, scale["id"], analysis.settings["confidence"])
    return files


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    """A machine-readable dump of the whole analysis."""
    return {
        "test_id": analysis.test_id,
        "systems": analysis.systems,
        "scales": analysis.scales,
        "genres": analysis.genres,
        "settings": analysis.settings,
        "listeners": [
            {
                "file": str(r.answers.path),
                "listener_id": r.answers.listener_id,
                "accepted": r.accepted,
                "reasons": r.reasons,
            }
            for r in analysis.listeners
        ],
        "mos": [
            {"scale": r.scale, "genre": r.genre, "system": r.system, "n_listeners": r.n_listeners, **asdict(r.summary)}
            for r in analysis.mos
        ],
        "pairs": [
            {
                "scale": r.scale,
                "genre": r.genre,
                "system_a": r.system_a,
                "system_b": r.system_b,
                "p_holm": r.p_holm,
                **asdict(r.test),
            }
            for r in analysis.pairs
        ],
        "preferences": [
            {
                "genre": r.genre,
                "system_a": r.system_a,
                "system_b": r.system_b,
                "p_holm": r.p_holm,
                "n_listeners": r.n_listeners,
                **asdict(r.test),
            }
            for r in analysis.preferences
        ],
    }


def write_report(analysis: Analysis, out: str | Path) -> list[Path]:
    """Render everything, then write each file atomically into ``out``; returns the written paths."""
    out = Path(out)
    files = render_report(analysis)
    document = analysis_json(analysis)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    atomic_write_json(out / "analysis.json", document)
    written.append(out / "analysis.json")
    return written
