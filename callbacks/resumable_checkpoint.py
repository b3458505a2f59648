"""``last.ckpt`` on every stop: the end of ``max_steps``/``max_epochs``, Ctrl-C, SIGTERM and SIGUSR1.

Lightning's ``ModelCheckpoint`` writes ``last.ckpt`` only when its schedule says so (``every_n_train_steps``,
validation ends), so a run whose last step is not on that schedule, or that is stopped by a signal, leaves an older
checkpoint behind and a resume silently repeats steps. Its end-of-training save happens after the fit loop has
closed the epoch, a loop state from which Lightning 2.6 resumes one epoch too far. This subclass writes
``last.ckpt`` at the end of the final optimizer step instead, the same point in the loop as every scheduled
checkpoint, so a resume continues exactly (tests/test_stop_checkpoint.py).

Signals: Ctrl-C (SIGINT) and SIGUSR1 (SLURM's pre-emption warning) ask the run to stop after the current optimizer
step; a second Ctrl-C aborts at once. SIGTERM is Lightning's: it raises ``SIGTERMException`` after the step, and
this callback saves just before. Under DDP the ranks agree on stopping (one signalled rank stops them all), so
every rank takes part in the checkpoint. When Lightning's SLURM auto-requeue owns SIGUSR1, its handler still runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

Handler = Callable[[int, FrameType | None], Any] | int | None
STOP_SIGNALS = ("SIGINT", "SIGUSR1")


def is_final_step(trainer: Trainer) -> bool:
    """Whether the optimizer step that just ended is the run's last (``max_steps`` or the last epoch's last batch)."""
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return True
    max_epochs = trainer.max_epochs
    return (max_epochs is not None and max_epochs != -1 and trainer.current_epoch >= max_epochs - 1
            and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def ends_optimizer_step(trainer: Trainer, batch_idx: int) -> bool:
    """Whether this batch ended an optimizer step (not a micro-batch whose gradients are still accumulating)."""
    return ((batch_idx + 1) % trainer.accumulate_grad_batches == 0
            or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also writes ``last.ckpt`` when training stops (see the module docstring).

    Takes every ``ModelCheckpoint`` argument; ``save_last`` defaults to ``True``.
    """

    def __init__(self, *args: Any, save_last: bool | str | None = True, **kwargs: Any) -> None:
        super().__init__(*args, save_last=save_last, **kwargs)
        self.stop_requested = False
        self._previous_handlers: dict[int, Handler] = {}

    # ------------------------------------------------------------------------------------------------ signals
    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and self.stop_requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.stop_requested = True
        hint = " (Ctrl-C again aborts without a checkpoint)" if signum == signal.SIGINT else ""
        print(f"\n{name}: stopping after this optimizer step and writing last.ckpt{hint}", flush=True)
        previous = self._previous_handlers.get(signum)
        if callable(previous) and signum != signal.SIGINT:
            previous(signum, frame)  # e.g. Lightning's SLURM requeue on SIGUSR1

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:  # SIGUSR1 does not exist on Windows
                continue
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._request_stop)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    # -------------------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.stop_requested = False
        self._install_handlers()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not ends_optimizer_step(trainer, batch_idx):
            return
        signalled = self.stop_requested or trainer.received_sigterm
        stop = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if stop:
            trainer.should_stop = True
        if (stop or is_final_step(trainer)) and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            if stop:
                rank_zero_info(f"Stopped at step {trainer.global_step}; resume with --ckpt_path {self.last_model_path}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._restore_handlers()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        self._restore_handlers()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self._restore_handlers()
