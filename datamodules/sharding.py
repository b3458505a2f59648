"""Deterministic sharding of a stream over DDP ranks and dataloader workers: each item once per epoch overall.

Lightning gives map-style datasets a DistributedSampler under DDP, but it cannot sample an IterableDataset (an
iterable has no indices to hand out), so the streaming path splits the work itself: first across ranks, then across
the workers of a rank, by items or by whole shards. Every rank and worker computes the same epoch order from the
same seed, so nobody needs to talk to anybody.

DDP also needs every rank to yield the same number of samples, or the ranks that finish first wait forever in the
next gradient all-reduce. The plans here therefore say how many samples each consumer must yield; a consumer with
fewer items fills up by repeating samples (as DistributedSampler pads with repeated indices).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import get_worker_info


@dataclass(frozen=True)
class Consumer:
    """One reader of the stream: a dataloader worker of a DDP rank."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @property
    def id(self) -> int:
        """Global consumer index, rank-major."""
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        """Number of consumers over all ranks."""
        return self.world_size * self.num_workers


def current_consumer(rank: int | None = None, world_size: int | None = None) -> Consumer:
    """The consumer this code runs in: rank and world size from ``torch.distributed`` (or the explicit values,
    which tests use to simulate ranks), worker from the dataloader's worker info."""
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            rank, world_size = 0, 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    info = get_worker_info()
    worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return Consumer(rank, world_size, worker, num_workers)


def mix_seed(*parts: int | str) -> int:
    """A 63-bit seed from several parts (seed, epoch, consumer), stable across processes and Python runs."""
    digest = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def split_items(order: list[int], consumer: Consumer) -> list[int]:
    """This consumer's share of an epoch order: padded to a multiple of the world size by repeating its head
    (so ranks yield equally many), then every ``world_size``-th from ``rank``, then every ``num_workers``-th."""
    padded = list(order)
    if consumer.world_size > 1 and padded and len(padded) % consumer.world_size:
        extra = consumer.world_size - len(padded) % consumer.world_size
        padded += (padded * (extra // len(padded) + 1))[:extra]
    rank_share = padded[consumer.rank :: consumer.world_size]
    return rank_share[consumer.worker :: consumer.num_workers]


@dataclass(frozen=True)
class ShardPlan:
    """What one consumer reads of a sharded stream: these shards, and of their samples (in order) those with
    ``index % modulo == remainder``; then ``pad`` repeated samples to match the busiest rank."""

    urls: list[str]
    modulo: int = 1
    remainder: int = 0
    pad: int = 0

    def count(self, counts: dict[str, int]) -> int:
        """Samples this plan yields from the shards (without padding), given per-shard counts."""
        total = sum(counts[url] for url in self.urls)
        return len(range(self.remainder, total, self.modulo))


def _base_plan(urls: list[str], consumer: Consumer) -> ShardPlan:
    """Whole shards where there are enough, sample-level modulo where there are not (exactly once either way)."""
    ranks, workers = consumer.world_size, consumer.num_workers
    if len(urls) >= ranks:
        rank_urls, modulo, remainder = urls[consumer.rank :: ranks], 1, 0
    else:  # fewer shards than ranks: every rank reads all shards and keeps every ranks-th sample
        rank_urls, modulo, remainder = urls, ranks, consumer.rank
    if modulo == 1 and len(rank_urls) >= workers:
        return ShardPlan(rank_urls[consumer.worker :: workers])
    # Kept indices are remainder + modulo * j; keeping every workers-th j composes into one modulo.
    return ShardPlan(rank_urls, modulo * workers, remainder + modulo * consumer.worker)


def plan_shards(
    urls: list[str], consumer: Consumer, seed: int, epoch: int, shuffle: bool, counts: dict[str, int] | None = None
) -> ShardPlan:
    """The consumer's plan for one epoch. Shard order is shuffled by ``(seed, epoch)`` (the same on every rank).

    With per-shard ``counts`` (local shards), ``pad`` makes every rank yield as many samples as the busiest one,
    shared among that rank's workers that have samples.
    """
    ordered = list(urls)
    if shuffle:
        random.Random(mix_seed(seed, epoch, "shards")).shuffle(ordered)
    plan = _base_plan(ordered, consumer)
    if counts is None or consumer.world_size == 1:
        return plan
    rank_counts = []
    for rank in range(consumer.world_size):
        workers = [
            _base_plan(ordered, Consumer(rank, consumer.world_size, w, consumer.num_workers)).count(counts)
            for w in range(consumer.num_workers)
        ]
        rank_counts.append(workers)
    target = max(sum(workers) for workers in rank_counts)
    mine = rank_counts[consumer.rank]
    deficit = target - sum(mine)
    able = [w for w, n in enumerate(mine) if n > 0]
    if deficit <= 0 or consumer.worker not in able:
        return plan
    position = able.index(consumer.worker)
    pad = deficit // len(able) + (1 if position < deficit % len(able) else 0)
    return ShardPlan(plan.urls, plan.modulo, plan.remainder, pad)


def key_fraction(key: str, seed: int) -> float:
    """A stable number in [0, 1) per sample key: the split of a stream by key (no clip leaks between splits)."""
    return mix_seed(seed, "split", key) / float(1 << 63)


def seeded_generator(*parts: int | str) -> torch.Generator:
    """A torch generator seeded from parts (random crops that are reproducible per epoch and consumer)."""
    return torch.Generator().manual_seed(mix_seed(*parts))
