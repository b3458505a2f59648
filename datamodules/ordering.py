"""Epoch orders: plain seeded shuffles and per-genre balancing, for both the map-style and the streaming path."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator

from torch.utils.data import Sampler

from datamodules.sharding import mix_seed


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


class GenreBalancedSampler(Sampler[int]):
    """Map-style sampler over :func:`balanced_order`; under DDP Lightning wraps it in a distributed sampler."""

    def __init__(self, genres: list[str], seed: int = 0) -> None:
        self.genres = list(genres)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start: a new balanced order per epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_order(self.genres, self.seed, self.epoch, shuffle=True, balance=True))

    def __len__(self) -> int:
        counts: dict[str, int] = defaultdict(int)
        for genre in self.genres:
            counts[genre] += 1
        return max(counts.values(), default=0) * len(counts)
