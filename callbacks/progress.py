"""A line per batch while a callback samples clips: how many are done, and an estimate of the time left."""

from __future__ import annotations

import time
from collections.abc import Callable

from lightning.pytorch.utilities import rank_zero_info


def clip_progress(label: str, clock: Callable[[], float] = time.monotonic) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for :func:`lightning_modules.ab.generate_ab` that logs (rank zero)
    ``<label>: done/total clips, N s elapsed, about M s left``."""
    start = clock()

    def report(done: int, total: int) -> None:
        elapsed = clock() - start
        left = elapsed / done * (total - done) if done else float("nan")
        rank_zero_info(f"{label}: {done}/{total} clips, {elapsed:.0f} s elapsed, about {left:.0f} s left")

    return report
