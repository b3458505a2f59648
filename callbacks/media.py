"""Logging audio, figures and tables to whichever loggers a run has, and always to files in the run directory.

W&B gets ``wandb.Audio``/``wandb.Image``/``wandb.Table`` through Lightning's WandbLogger; TensorBoard gets
``add_audio``/``add_figure``; every logger (CSV included) also finds the files under ``<run dir>/samples``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files and loggers
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning import Trainer  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

from callbacks.wandb_logger import wandb_loggers  # noqa: E402
from datamodules.atomic_files import atomic_write_bytes  # noqa: E402
from datamodules.audio import save_audio  # noqa: E402


def save_figure(figure: "plt.Figure", path: Path) -> Path:
    """Write a figure as PNG (atomically) and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def log_media(
    trainer: Trainer,
    key: str,
    step: int,
    audio: dict[str, torch.Tensor],
    figures: dict[str, "plt.Figure"],
    sample_rate: int,
    table_columns: list[str],
    table_rows: list[list[Any]],
    directory: Path,
) -> None:
    """Log one round of samples. ``audio``/``figures`` map a file stem to a waveform [samples] / a figure.

    Table cells that name a stem in ``audio`` or ``figures`` become W&B media in the table.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stem, waveform in audio.items():
        save_audio(directory / f"{stem}.wav", waveform, sample_rate)
    figure_paths = {stem: save_figure(figure, directory / f"{stem}.png") for stem, figure in figures.items()}
    with (directory / "samples.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table_columns)
        writer.writerows(table_rows)

    for logger in wandb_loggers(trainer):
        import wandb

        def cell(value: Any) -> Any:
            if isinstance(value, str) and value in audio:
                return wandb.Audio(audio[value].float().cpu().numpy(), sample_rate=sample_rate, caption=value)
            if isinstance(value, str) and value in figure_paths:
                return wandb.Image(str(figure_paths[value]))
            return value

        logger.log_table(f"{key}/table", columns=table_columns, data=[[cell(v) for v in row] for row in table_rows],
                         step=step)
        stems = list(audio)
        if stems:
            logger.log_audio(f"{key}/audio", audios=[audio[s].float().cpu().numpy() for s in stems], step=step,
                             sample_rate=[sample_rate] * len(stems), caption=stems)
        if figure_paths:
            logger.log_image(f"{key}/mel", images=[str(p) for p in figure_paths.values()], step=step,
                             caption=list(figure_paths))
    for logger in (lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)):
        for stem, waveform in audio.items():
            logger.experiment.add_audio(f"{key}/{stem}", waveform.float().cpu().unsqueeze(0), step, sample_rate)
        for stem, figure in figures.items():
            logger.experiment.add_figure(f"{key}/{stem}", figure, step, close=False)
    for figure in figures.values():
        plt.close(figure)
