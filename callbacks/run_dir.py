"""Where a run writes its files."""

from __future__ import annotations

from pathlib import Path

from lightning import Trainer


def run_directory(trainer: Trainer) -> Path:
    """The run's directory: the logger's versioned folder when there is one, else ``default_root_dir``."""
    return Path(trainer.log_dir or trainer.default_root_dir)
