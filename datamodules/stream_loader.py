"""The streaming path's training loader: a ``StatefulDataLoader`` whose saved position is the trained one.

Lightning prefetches one batch from a loader that has no length (an ``IterableDataset`` stream: Lightning 2.6
``_PrefetchDataFetcher``, so that it knows an epoch's last batch in advance). When it saves a checkpoint after
training batch k, the loader has already handed out batch k + 1, and torchdata's state counts it: a resume skips
that batch (measured: 20 steps straight against 10 + resume + 10 differed by 19%). No Lightning or torchdata
setting turns that prefetch off for an unsized loader, and a stream's batch count per epoch is not known in advance
for shards of unequal size, so this loader keeps the state as it was before the last batch it handed out and
reports that one while the prefetched batch is in flight (written by hand for that reason).

It also records the epoch of its iterator in the state: Lightning builds the loader's iterator before it knows the
restored epoch (Lightning #21938), so a resume sets the stream's epoch from the checkpoint; a checkpoint written
after an epoch's last batch resumes with the next epoch from its start.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from torchdata.stateful_dataloader import StatefulDataLoader

EPOCH_KEY = "stream_epoch"
FINISHED_KEY = "stream_epoch_finished"


class StreamLoader(StatefulDataLoader):
    """``StatefulDataLoader`` over a :class:`~datamodules.streaming.StreamingClipDataset` (see the module
    docstring). ``set_epoch`` sets the epoch of the next iteration."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch = 0
        self._current_epoch = 0
        self._before_last: dict[str, Any] | None = None
        self._finished = False

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next iteration (the data module passes the trainer's restored epoch)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        self._current_epoch = self.epoch
        self.epoch += 1
        # Fresh workers copy the dataset with this epoch; persistent workers count epochs on by themselves.
        self.dataset.set_epoch(self._current_epoch)  # type: ignore[attr-defined]
        self._finished = False
        iterator = super().__iter__()
        return self._batches(iterator)

    def _batches(self, iterator: Iterator[Any]) -> Iterator[Any]:
        previous = self._state()
        for batch in iterator:
            self._before_last = previous
            previous = self._state()
            yield batch
        self._finished = True

    def _state(self) -> dict[str, Any]:
        state = copy.deepcopy(super().state_dict())
        state[EPOCH_KEY] = self._current_epoch
        return state

    def state_dict(self) -> dict[str, Any]:
        """The position after the batch being trained: before the prefetched one, or the end of the epoch."""
        if self._finished or self._before_last is None:
            state = self._state()
            state[FINISHED_KEY] = self._finished
            return state
        return {**self._before_last, FINISHED_KEY: False}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the saved epoch at the saved position, or start the next epoch when the saved one had ended."""
        state = dict(state_dict)
        epoch, finished = int(state.pop(EPOCH_KEY, 0)), bool(state.pop(FINISHED_KEY, False))
        if finished:
            self.set_epoch(epoch + 1)
            return
        self.set_epoch(epoch)
        super().load_state_dict(state)
