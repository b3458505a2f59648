"""Test-only probes: the source files each rank trained on (DDP sharding), a signal sent mid-step, and a checkpoint
writer that pauses inside its write (so a test can kill a run there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer

from callbacks.checkpoint_io import AtomicCheckpointIO
from callbacks.evaluation import GenreEvaluation


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


class SendSignal(Callback):
    """Sends ``signal`` to this process (rank ``rank`` only) when training batch ``at_step`` starts, as a user's
    Ctrl-C, a scheduler's SIGTERM or SLURM's SIGUSR1 would arrive in the middle of a step."""

    def __init__(self, signal: str, at_step: int, rank: int = 0) -> None:
        self.signal = signal
        self.at_step = at_step
        self.rank = rank

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        import os
        import signal as signals

        if trainer.global_step == self.at_step and trainer.global_rank == self.rank:
            os.kill(os.getpid(), getattr(signals, self.signal))


class SlowCheckpointIO(AtomicCheckpointIO):
    """The project's atomic checkpoint writer with a pause inside every write: after the temporary file's bytes are
    written and before they are synced and renamed into place, it creates ``<checkpoint dir>/.writing`` and sleeps,
    so that a test can kill the process in the middle of a real checkpoint write."""

    def __init__(self, pause: float = 0.5) -> None:
        super().__init__()
        self.pause = pause

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        import os
        import time

        marker = Path(path).parent / ".writing"
        real_fsync = os.fsync

        def slow_fsync(descriptor: int) -> None:
            marker.touch()
            time.sleep(self.pause)
            real_fsync(descriptor)

        os.fsync = slow_fsync
        try:
            super().save_checkpoint(checkpoint, path, storage_options)
        finally:
            os.fsync = real_fsync
            marker.unlink(missing_ok=True)


class EmbedderFailsOnRankOne(GenreEvaluation):
    """GenreEvaluation whose embedder cannot load on rank 1 only: one rank's failure, which must stop every rank
    with its message instead of leaving the others waiting."""

    def embedder(self, pl_module: LightningModule):
        if pl_module.global_rank == 1:
            raise OSError("probe: this rank's CLAP weights are missing")
        return super().embedder(pl_module)


class RankZeroWritesAlone(Callback):
    """Records every file that a rank other than zero opens for writing (or renames into place) under the run's
    ``trainer.default_root_dir``, through Python's audit hooks, so whichever function writes is caught; at teardown
    it writes the list to ``<output_dir>/rank<k>-writes.json`` (outside the run folder). Rank zero is not watched."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.writes: list[str] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        import os
        import sys

        if trainer.global_rank == 0:
            return
        root = str(Path(trainer.default_root_dir).resolve())
        writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

        def under_root(path: Any) -> bool:
            return isinstance(path, (str, os.PathLike)) and str(Path(os.fspath(path)).resolve()).startswith(root)

        def hook(event: str, args: tuple) -> None:
            if event == "open" and under_root(args[0]):
                mode, flags = args[1], args[2]
                if (isinstance(mode, str) and set(mode) & set("wax+")) or (isinstance(flags, int) and flags & writing):
                    self.writes.append(str(args[0]))
            elif event in ("os.rename", "os.replace") and under_root(args[1]):
                self.writes.append(str(args[1]))

        sys.addaudithook(hook)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.global_rank == 0:
            return
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{trainer.global_rank}-writes.json").write_text(json.dumps(self.writes))
