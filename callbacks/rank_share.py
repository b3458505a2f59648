"""Work split over the ranks of a run, and put back together in order: what the evaluation and A/B callbacks use to
generate and embed a fixed set of clips once per run instead of once per rank.

Clip ``i`` of a set of ``count`` belongs to rank ``i % world_size`` (:func:`rank_share`), so shares differ by at
most one clip whatever ``count`` is. :func:`gather_in_order` returns every rank's rows to every rank, in the set's
own order (a no-op in one process), so the values computed from them
are those of one process, bootstrap intervals and the pairing of a clip's two arms included. torchmetrics' own
``sync_on_compute`` would concatenate the states rank after rank, which reorders the rows.

:func:`raise_together` is the guard around a rank's share: if any rank failed, every rank raises the same message,
so one rank's failure stops the run instead of leaving the others waiting in the next collective.
"""

from __future__ import annotations

import torch
from lightning import Trainer

from lightning_modules.errors import SettingError


class RankFailure(SettingError):
    """Another rank failed at the same point; the message is that rank's error. A user error for the command line
    (printed without a traceback): the failing rank itself raises its own error, traceback and all when it is a
    bug, so the traceback is printed once, by the rank where it happened."""


def _distributed(trainer: Trainer | None) -> bool:
    return trainer is not None and trainer.world_size > 1 and torch.distributed.is_initialized()


def share_indices(count: int, rank: int, world_size: int) -> range:
    """The indices of a ``count``-item set that belong to ``rank`` of ``world_size``: every ``world_size``-th from
    ``rank``, so shares are disjoint, cover the set and differ in size by at most one."""
    return range(rank, count, world_size)


def rank_share(count: int, trainer: Trainer | None) -> list[int]:
    """Indices of the clips of a ``count``-clip set that this rank works on (all of them in one process)."""
    if not _distributed(trainer):
        return list(range(count))
    return list(share_indices(count, trainer.global_rank, trainer.world_size))


def gather_in_order(trainer: Trainer | None, rows: torch.Tensor, count: int) -> torch.Tensor:
    """Every rank's ``rows`` (this rank's share of a ``count``-row set, in :func:`rank_share` order) as the whole set
    ``[count, ...]`` on every rank, in the set's order, on the CPU.

    Gathered as Python objects (``all_gather_object``) rather than padded tensors: shares may differ by a row, and a
    rank with no row at all cannot know the rows' shape."""
    rows = rows.detach().cpu()
    if not _distributed(trainer):
        return rows
    shares: list[torch.Tensor | None] = [None] * trainer.world_size
    torch.distributed.all_gather_object(shares, rows)
    whole: list[torch.Tensor | None] = [None] * count
    for rank, share in enumerate(shares):
        for index, row in zip(share_indices(count, rank, trainer.world_size), share):
            whole[index] = row
    return torch.stack(whole)


def raise_together(trainer: Trainer | None, error: BaseException | None, what: str) -> None:
    """Re-raise ``error`` on this rank, or :class:`RankFailure` with the failing rank's message when another rank
    failed at ``what``; return when every rank succeeded. Every rank must call it at the same point.

    Raises:
        BaseException: this rank's own ``error``.
        RankFailure: another rank's error (``what`` and that rank named).
    """
    if not _distributed(trainer):
        if error is not None:
            raise error
        return
    messages: list[str | None] = [None] * trainer.world_size
    own = None if error is None else f"{type(error).__name__}: {error}"
    torch.distributed.all_gather_object(messages, own)
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(messages) if message]
    if failed:
        rank, message = failed[0]
        raise RankFailure(f"{what} failed on rank {rank}: {message}")
