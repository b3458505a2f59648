"""A test-only callback: each rank records the source files it trained on (to check DDP sharding)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer


class RecordSources(Callback):
    """Writes ``<output_dir>/rank<k>.json`` with the paths of every training batch seen by rank k."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.paths: list[str] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self.paths.extend(batch["path"])

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.paths))
