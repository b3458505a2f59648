"""Bar chart of MOS per system and genre with t-interval error bars, rendered to PNG bytes.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend or figure state), so it works
headless and does not disturb a caller that uses pyplot itself.
"""

from __future__ import annotations

import io
import math

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .analysis import Analysis


def mos_chart(analysis: Analysis, scale: str, confidence: float = 0.95) -> bytes:
    """PNG of the MOS of each system (bars) per genre (groups) on ``scale``, error bars = t-interval."""
    scale_label = next((s["label"] for s in analysis.scales if s["id"] == scale), scale)
    rows = {(row.genre, row.system): row for row in analysis.mos if row.scale == scale}
    genres = [genre for genre in analysis.genres if any((genre, s) in rows for s in analysis.systems)]
    n_systems = len(analysis.systems)
    width = 0.8 / max(n_systems, 1)
    figure = Figure(figsize=(max(4.8, 2.2 + 0.55 * len(genres) * n_systems), 3.6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    top = 5.0
    for index, system in enumerate(analysis.systems):
        xs, means, low_err, high_err = [], [], [], []
        for position, genre in enumerate(genres):
            row = rows.get((genre, system))
            if row is None:
                continue
            summary = row.summary
            xs.append(position - 0.4 + width * (index + 0.5))
            means.append(summary.mean)
            low_err.append(0.0 if math.isnan(summary.t_low) else summary.mean - summary.t_low)
            high_err.append(0.0 if math.isnan(summary.t_high) else summary.t_high - summary.mean)
        axes.bar(
            xs,
            means,
            width * 0.92,
            yerr=[low_err, high_err],
            capsize=3,
            label=system,
            color=colours(index % 10),
            error_kw={"elinewidth": 1.0},
        )
        for x, mean, up in zip(xs, means, high_err):
            top = max(top, mean + up)
            if mean > 1.2:
                axes.text(x, 1.04, f"{mean:.2f}", ha="center", va="bottom", fontsize=7, color="white", weight="bold")
    axes.set_xticks(range(len(genres)), genres)
    axes.set_ylim(1.0, max(5.1, top + 0.1))
    axes.set_ylabel(f"{scale_label} (1-5)")
    axes.set_title(f"{scale_label}: mean and {confidence:.0%} t-interval")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
