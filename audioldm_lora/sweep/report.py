"""The sweep summary: one row per point (rank, alpha, size, speed, memory, final scores) as CSV, markdown and a
heatmap of val/kad over rank x alpha."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from audioldm_lora.sweep.local import read_status
from datamodules.atomic_files import atomic_write_bytes


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported when a figure is drawn (half a second of start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

COLUMNS = ["point", "state", "rank", "alpha", "trainable_params", "adapter_mb", "steps_per_s", "peak_memory_mib",
           "val/clap", "val/clap_delta", "val/kad", "val/kad_delta", "error"]
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


def collect(runs_dir: str | Path) -> list[dict[str, Any]]:
    """A row for every point folder (one with ``status.json``) under ``runs_dir``."""
    rows = []
    for directory in sorted(p for p in Path(runs_dir).iterdir() if (p / "status.json").is_file()):
        status = read_status(directory)
        params = status.get("params", {})
        info_path = directory / "logs" / "version_0" / ADAPTER / "adapter_info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        weights = info_path.with_name("pytorch_lora_weights.safetensors")
        metrics = last_logged(directory / "logs" / "version_0" / "metrics.csv",
                              ["val/clap", "val/clap_delta", "val/kad", "val/kad_delta"])
        rows.append({
            "point": directory.name,
            "state": status.get("state"),
            "rank": info.get("rank", _param(params, "lora_rank")),
            "alpha": info.get("alpha", _param(params, "lora_alpha")),
            "trainable_params": info.get("trainable_parameters"),
            "adapter_mb": round(weights.stat().st_size / 2**20, 4) if weights.is_file() else None,
            "steps_per_s": _round(info.get("steps_per_second")),
            "peak_memory_mib": _round(info.get("peak_memory_mib"), 1),
            **{key: _round(value, 5) for key, value in metrics.items()},
            "error": status.get("summary", ""),
        })
    return rows


def _param(params: dict[str, Any], name: str) -> Any:
    return next((v for k, v in params.items() if k.endswith(name)), None)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join("" if row[c] is None else str(row[c]).replace("|", "/") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def heatmap(rows: list[dict[str, Any]], metric: str = "val/kad"):
    """A rank x alpha grid of ``metric`` (blank where a point failed or is missing)."""
    plt = _pyplot()
    ranks = sorted({r["rank"] for r in rows if r["rank"] is not None})
    alphas = sorted({r["alpha"] for r in rows if r["alpha"] is not None})
    grid = [[math.nan] * len(alphas) for _ in ranks]
    for row in rows:
        if row["rank"] in ranks and row["alpha"] in alphas and row[metric] is not None:
            grid[ranks.index(row["rank"])][alphas.index(row["alpha"])] = row[metric]
    figure, axis = plt.subplots(figsize=(1.2 * len(alphas) + 2.5, 0.9 * len(ranks) + 1.8), constrained_layout=True)
    image = axis.imshow(grid, cmap="viridis_r", aspect="auto")
    axis.set_xticks(range(len(alphas)), [str(a) for a in alphas])
    axis.set_yticks(range(len(ranks)), [str(r) for r in ranks])
    axis.set_xlabel("LoRA alpha")
    axis.set_ylabel("LoRA rank")
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            axis.text(j, i, "failed" if math.isnan(value) else f"{value:.3g}", ha="center", va="center", color="w")
    figure.colorbar(image, ax=axis, label=f"{metric} (lower is better)")
    axis.set_title(f"{metric} over rank x alpha")
    return figure


def write_report(runs_dir: str | Path) -> dict[str, Path]:
    """Write ``sweep_report.csv``, ``sweep_report.md`` and ``sweep_kad_heatmap.png`` into ``runs_dir``."""
    runs_dir = Path(runs_dir)
    rows = collect(runs_dir)
    if not rows:
        raise FileNotFoundError(f"No sweep points (folders with status.json) under {runs_dir}.")
    out = {"csv": runs_dir / "sweep_report.csv", "md": runs_dir / "sweep_report.md",
           "heatmap": runs_dir / "sweep_kad_heatmap.png"}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    figure = heatmap(rows)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    _pyplot().close(figure)
    for key, data in (("csv", buffer.getvalue().encode()), ("md", markdown(rows).encode()), ("heatmap", png.getvalue())):
        atomic_write_bytes(out[key], data)
    return out
