"""The sweep summary: one row per point (its parameter values, size, speed, memory, final scores) as CSV, markdown
and a heatmap of val/kad over the two parameters the sweep varies (rank x alpha, target x rank, ...).

Each point's final KAD carries its 95% interval, and each point is compared with the best one (lowest val/kad) by a
paired interval of their KAD difference: both were evaluated on the same prompts, seeds and reference clips, so
their clips pair row for row (:mod:`metrics.embedding_file`, :mod:`metrics.paired`). A point whose difference
interval holds 0 is marked ``~best``: on this evaluation it cannot be told apart from the best.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from audioldm_lora.sweep.local import read_status
from audioldm_lora.sweep.spec import short_name
from datamodules.atomic_files import atomic_write_bytes


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported when a figure is drawn (half a second of start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

RESULT_COLUMNS = ["trainable_params", "adapter_mb", "steps_per_s", "peak_memory_mib",
                  "val/clap", "val/clap_delta", "val/kad", "val/kad_low", "val/kad_high", "val/kad_delta",
                  "vs_best", "kad_minus_best_low", "kad_minus_best_high", "error"]
"""The columns after ``point``, ``state`` and the parameter columns (one per swept parameter, :func:`short_name`)."""
ADAPTER = Path("adapters") / "final"


def last_logged(metrics_csv: Path, keys: list[str]) -> dict[str, float | None]:
    """The last non-empty value of each key in a Lightning CSVLogger ``metrics.csv``."""
    values: dict[str, float | None] = {key: None for key in keys}
    if not metrics_csv.is_file():
        return values
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key in keys:
                if row.get(key) not in (None, ""):
                    values[key] = float(row[key])
    return values


def last_evaluation(point_dir: Path) -> Path | None:
    """The embeddings file of a point's last evaluation (``evaluation/step-*.npz`` of the highest step)."""
    files = sorted((point_dir / "logs" / "version_0" / "evaluation").glob("step-*.npz"))
    return files[-1] if files else None


def _with_intervals(rows: list[dict[str, Any]], evaluations: list[Path | None]) -> None:
    """Fill each row's KAD interval and its paired comparison with the best point (module docstring)."""
    from metrics.bootstrap import bootstrap_kad, paired_distance_difference  # numpy/torch only when needed
    from metrics.embedding_file import load_scores
    from metrics.genre_scores import OVERALL

    scores = {i: load_scores(path) for i, path in enumerate(evaluations) if path is not None}
    for i, score in scores.items():  # the overall KAD's interval only: no other group or metric is scored
        interval = bootstrap_kad(*score.embedding_sets(OVERALL))
        if interval.defined:
            rows[i]["val/kad_low"], rows[i]["val/kad_high"] = _round(interval.low, 5), _round(interval.high, 5)
    ranked = [i for i in scores if rows[i].get("val/kad") is not None]
    if not ranked:
        return
    best = min(ranked, key=lambda i: rows[i]["val/kad"])
    reference, best_clips = scores[best].embedding_sets(OVERALL)
    for i in ranked:
        if i == best:
            rows[i]["vs_best"] = "best"
            continue
        other_reference, clips = scores[i].embedding_sets(OVERALL)
        if clips.shape != best_clips.shape or other_reference.shape != reference.shape:
            rows[i]["vs_best"] = "not paired (another evaluation set)"
            continue
        difference = paired_distance_difference("kad", reference, best_clips, clips)
        rows[i]["kad_minus_best_low"], rows[i]["kad_minus_best_high"] = _round(difference.low, 5), _round(
            difference.high, 5)
        rows[i]["vs_best"] = "worse" if difference.excludes_zero else "~best"


def collect(runs_dir: str | Path) -> list[dict[str, Any]]:
    """A row for every point folder (one with ``status.json``) under ``runs_dir``."""
    rows, evaluations = [], []
    for directory in sorted(p for p in Path(runs_dir).iterdir() if (p / "status.json").is_file()):
        status = read_status(directory)
        params = status.get("params", {})
        info_path = directory / "logs" / "version_0" / ADAPTER / "adapter_info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        weights = sum(f.stat().st_size for f in info_path.parent.rglob("*.safetensors")) if info else None
        metrics = last_logged(directory / "logs" / "version_0" / "metrics.csv",
                              ["val/clap", "val/clap_delta", "val/kad", "val/kad_delta"])
        rows.append({
            "point": directory.name,
            "state": status.get("state"),
            **{short_name(key): value for key, value in params.items()},
            "trainable_params": info.get("trainable_parameters"),
            "adapter_mb": round(weights / 2**20, 4) if weights else None,
            "steps_per_s": _round(info.get("steps_per_second")),
            "peak_memory_mib": _round(info.get("peak_memory_mib"), 1),
            **{key: _round(value, 5) for key, value in metrics.items()},
            "error": status.get("summary", ""),
        })
        evaluations.append(last_evaluation(directory))
    for row in rows:
        row.update({key: row.get(key) for key in RESULT_COLUMNS})  # every row has every column
    _with_intervals(rows, evaluations)
    return rows


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def parameter_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The parameter columns of the rows, in sweep-file order."""
    return list(dict.fromkeys(key for row in rows for key in row if key not in ("point", "state", *RESULT_COLUMNS)))


def swept_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The parameter columns with more than one value over the rows (a parameter held at one value is not swept)."""
    return [c for c in parameter_columns(rows) if len({json.dumps(row.get(c), default=str) for row in rows}) > 1]


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of the report, in order."""
    return ["point", "state", *parameter_columns(rows), *RESULT_COLUMNS]


def markdown(rows: list[dict[str, Any]]) -> str:
    names = columns(rows)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        cells = ("" if row.get(c) is None else str(row[c]).replace("|", "/") for c in names)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _axis_values(rows: list[dict[str, Any]], column: str | None) -> list[Any]:
    """The distinct values of one heatmap axis: numbers ascending, anything else in the order the rows have it."""
    values = list(dict.fromkeys(json.dumps(row.get(column), default=str) for row in rows)) if column else ["null"]
    decoded = [json.loads(value) for value in values]
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in decoded):
        decoded.sort()
    return decoded


def heatmap(rows: list[dict[str, Any]], metric: str = "val/kad"):
    """A grid of ``metric`` over the first two swept parameters, rows x columns (``failed`` where a point failed
    or is missing): rank x alpha for configs/sweep.yaml, text-encoder target x rank for the authors' grid. With
    one swept parameter the grid is a single row."""
    plt = _pyplot()
    swept = swept_columns(rows)
    row_key, column_key = (swept + [None, None])[:2] if len(swept) != 1 else (None, swept[0])
    row_values, column_values = _axis_values(rows, row_key), _axis_values(rows, column_key)
    grid = [[math.nan] * len(column_values) for _ in row_values]
    for row in rows:
        i = row_values.index(row.get(row_key)) if row_key else 0
        j = column_values.index(row.get(column_key)) if column_key else 0
        if row.get(metric) is not None:
            grid[i][j] = row[metric]
    figure, axis = plt.subplots(figsize=(1.2 * len(column_values) + 2.5, 0.9 * len(row_values) + 1.8),
                                constrained_layout=True)
    image = axis.imshow(grid, cmap="viridis_r", aspect="auto")
    axis.set_xticks(range(len(column_values)), [str(v) for v in column_values])
    axis.set_yticks(range(len(row_values)), [str(v) for v in row_values] if row_key else [""])
    axis.set_xlabel(column_key or "")
    axis.set_ylabel(row_key or "")
    digits = distinguishing_digits([value for line in grid for value in line if not math.isnan(value)])
    near_best = {(row_values.index(row.get(row_key)) if row_key else 0,
                  column_values.index(row.get(column_key)) if column_key else 0): row.get("vs_best")
                 for row in rows}
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            label = "failed" if math.isnan(value) else f"{value:.{digits}g}"
            if near_best.get((i, j)) in ("best", "~best"):
                label += "\n" + near_best[(i, j)]
            axis.text(j, i, label, ha="center", va="center", color="w")
    figure.colorbar(image, ax=axis, label=f"{metric} (lower is better)")
    axis.set_title(f"{metric} over {row_key} x {column_key}" if row_key else f"{metric} over {column_key}")
    if any(kind in ("best", "~best") for kind in near_best.values()):
        axis.set_xlabel(f"{column_key or ''}\n~best: paired 95% interval of the KAD difference to the best holds 0")
    return figure


def distinguishing_digits(values: list[float], least: int = 3, most: int = 8) -> int:
    """The fewest significant digits (at least ``least``) at which the distinct values print distinctly: cells that
    differ in the fourth decimal must not all read 83.3."""
    distinct = set(values)
    for digits in range(least, most + 1):
        if len({f"{value:.{digits}g}" for value in distinct}) == len(distinct):
            return digits
    return most


def write_report(runs_dir: str | Path) -> dict[str, Path]:
    """Write ``sweep_report.csv``, ``sweep_report.md`` and ``sweep_kad_heatmap.png`` into ``runs_dir``."""
    runs_dir = Path(runs_dir)
    rows = collect(runs_dir)
    if not rows:
        raise FileNotFoundError(f"No sweep points (folders with status.json) under {runs_dir}.")
    out = {"csv": runs_dir / "sweep_report.csv", "md": runs_dir / "sweep_report.md",
           "heatmap": runs_dir / "sweep_kad_heatmap.png"}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(rows))
    writer.writeheader()
    writer.writerows(rows)
    figure = heatmap(rows)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    _pyplot().close(figure)
    for key, data in (("csv", buffer.getvalue().encode()), ("md", markdown(rows).encode()), ("heatmap", png.getvalue())):
        atomic_write_bytes(out[key], data)
    return out
