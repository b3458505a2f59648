"""Epoch orders: plain seeded shuffles and per-genre balancing, for both the map-style and the streaming path."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch.utils.data import DistributedSampler

from datamodules.sharding import Consumer, current_consumer, mix_seed, split_items


def balanced_order(genres: list[str], rng: random.Random) -> list[int]:
    """Indices where every genre appears as often as the largest one: smaller genres are cycled (each of their
    items as evenly as possible), then everything is shuffled."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, genre in enumerate(genres):
        groups[genre].append(index)
    if not groups:
        return []
    target = max(len(group) for group in groups.values())
    order: list[int] = []
    for genre in sorted(groups):
        group = list(groups[genre])
        rng.shuffle(group)
        order += (group * (target // len(group) + 1))[:target]
    rng.shuffle(order)
    return order


def epoch_order(genres: list[str], seed: int, epoch: int, shuffle: bool, balance: bool) -> list[int]:
    """The item order of one epoch; the same on every rank and worker for the same ``(seed, epoch)``."""
    if balance:
        return balanced_order(genres, random.Random(mix_seed(seed, epoch, "balance")))
    order = list(range(len(genres)))
    if shuffle:
        random.Random(mix_seed(seed, epoch, "order")).shuffle(order)
    return order


class SampleKey(NamedTuple):
    """What :class:`EpochSampler` yields and the map-style datasets accept in place of an index: the item and the
    seed of its random crop. Crops drawn from a per-sample seed, not the global or a worker's generator, are the
    same whatever the worker count, prefetching or a resume in the middle of the epoch."""

    index: int
    crop_seed: int


class EpochSampler(DistributedSampler):
    """The training order of a map-style dataset, this rank's share of it, and a position a resume continues from.

    The epoch's order is a function of ``(seed, epoch)`` only (:func:`epoch_order`: seeded shuffles, or per-genre
    balancing), split over DDP ranks by :func:`~datamodules.sharding.split_items`; each key carries the seed of its
    random crop, fixed by the position in the epoch's order. It subclasses ``DistributedSampler`` so that Lightning
    uses it as it is under DDP instead of wrapping it (its wrapper materialises the order when the iterator is made).

    Resuming (why this is written by hand): Lightning creates the train loader's iterator, and a worker loader
    already draws its first indices, *before* Lightning calls :meth:`set_epoch` with the restored epoch (a sampler
    that reads its epoch at ``iter()`` replays epoch 0's order after a resume, Lightning #21938). So the epoch and
    position come from the loader state torchdata's ``StatefulDataLoader`` restores (:meth:`load_state_dict`), and
    the data module sets the trainer's restored epoch when it builds the loader. A checkpoint written after an
    epoch's last batch holds an exhausted position: the resume starts the next epoch from its beginning.
    """

    def __init__(
        self,
        genres: list[str],
        seed: int = 0,
        shuffle: bool = True,
        balance: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        """
        Args:
            genres: the genre of every item (the dataset's length).
            seed: seed of orders and crops.
            shuffle: a new order every epoch; ``False`` keeps the item order (and no balancing).
            balance: every genre as often per epoch as the largest one.
            rank, world_size: this process among the DDP ranks; ``None`` reads ``torch.distributed``.
            batch_size, drop_last: the loader's batching, which tells a restored position that only a dropped
                partial batch was left (the epoch is over).
        """
        consumer = current_consumer(rank, world_size)
        super().__init__(genres, num_replicas=consumer.world_size, rank=consumer.rank, shuffle=shuffle, seed=seed)
        self.genres = list(genres)
        self.balance = balance
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._yielded = (0, 0)  # (epoch, samples of this rank) of the live iterator
        self._resume_position = 0

    def _order(self, epoch: int) -> list[int]:
        return epoch_order(self.genres, self.seed, epoch, shuffle=self.shuffle, balance=self.balance and self.shuffle)

    def __iter__(self) -> Iterator[SampleKey]:
        epoch, start = self.epoch, self._resume_position
        self._resume_position = 0
        consumer = Consumer(self.rank, self.num_replicas)
        mine = split_items(self._order(epoch), consumer)
        self._yielded = (epoch, start)
        for position in range(start, len(mine)):
            global_position = self.rank + position * self.num_replicas
            self._yielded = (epoch, position + 1)
            yield SampleKey(mine[position], mix_seed(self.seed, epoch, global_position, "crop"))

    def __len__(self) -> int:
        """Samples of this rank per epoch."""
        total = len(self.genres)
        if self.balance and self.shuffle:
            counts: dict[str, int] = defaultdict(int)
            for genre in self.genres:
                counts[genre] += 1
            total = max(counts.values(), default=0) * len(counts)
        return -(-total // self.num_replicas) if total else 0

    def state_dict(self) -> dict[str, int]:
        """The live iterator's epoch and how many of this rank's samples it has handed out."""
        epoch, position = self._yielded
        return {"epoch": epoch, "position": position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """The next iterator continues at ``state``'s epoch and position (the next epoch's start when exhausted)."""
        epoch, position = int(state["epoch"]), int(state["position"])
        usable = len(self) // self.batch_size * self.batch_size if self.drop_last else len(self)
        if position >= usable:
            epoch, position = epoch + 1, 0
        self.epoch, self._resume_position = epoch, position


def key_index(key: int | SampleKey) -> int:
    """The item index of a dataset key."""
    return key.index if isinstance(key, SampleKey) else int(key)


def crop_generator(key: int | SampleKey) -> torch.Generator | None:
    """The generator of a key's random crop; ``None`` (torch's global generator) for a plain index."""
    return torch.Generator().manual_seed(key.crop_seed) if isinstance(key, SampleKey) else None
