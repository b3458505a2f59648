"""The streaming path: an IterableDataset over any source, sharded over DDP ranks and dataloader workers.

Records (an item and its audio, or a bad item) come from a stream object: :class:`ItemStream` for indexed sources
(folder, manifest, Hugging Face), :class:`ShardStream` for WebDataset shards. Either way each item is read once
per epoch over all consumers (see :mod:`datamodules.sharding`), passes a seeded shuffle buffer, is decoded into a
log-mel, and a bad one is replaced by repeating the consumer's last good sample, so that every rank still yields
its planned number of samples and no epoch ends early or crashes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol, Union

import torch
import webdataset as wds
from torch.utils.data import IterableDataset

from datamodules.audio import AudioSource
from datamodules.bad_items import BadItem, BadItemError
from datamodules.dataset import BadItemCounter, read_clip
from datamodules.manifest import AudioItem
from datamodules.ordering import epoch_order
from datamodules.sharding import (
    Consumer,
    current_consumer,
    mix_seed,
    plan_shards,
    seeded_generator,
    split_items,
)
from datamodules.webdataset_source import WebDatasetSource, genre_from_members

log = logging.getLogger(__name__)

Record = Union[tuple[AudioItem, AudioSource], BadItem]


def item_records(items: Iterable[AudioItem], reader: Callable[[AudioItem], AudioSource]) -> Iterator[Record]:
    """``(item, audio)`` per item; an item whose audio cannot be fetched becomes its :class:`BadItem`."""
    for item in items:
        try:
            yield item, reader(item)
        except BadItemError as error:
            yield error.item


class RecordPlan(NamedTuple):
    """One consumer's records for one epoch, and how many repeated samples to add to match the busiest rank."""

    records: Iterator[Record]
    pad: int = 0


class RecordStream(Protocol):
    """What :class:`StreamingClipDataset` reads from."""

    def plan(self, consumer: Consumer, seed: int, epoch: int, shuffle: bool) -> RecordPlan:
        """This consumer's records for this epoch."""


class ItemStream:
    """An indexed source's items as a stream: epoch order (optionally genre-balanced), split by item."""

    def __init__(self, items: list[AudioItem], reader: Callable[[AudioItem], AudioSource], balance: bool = False) -> None:
        self.items = items
        self.reader = reader
        self.balance = balance

    def plan(self, consumer: Consumer, seed: int, epoch: int, shuffle: bool) -> RecordPlan:
        order = epoch_order([item.genre for item in self.items], seed, epoch, shuffle, self.balance and shuffle)
        return RecordPlan(item_records((self.items[i] for i in split_items(order, consumer)), self.reader))


class ShardStream:
    """A WebDataset source's samples as a stream, split by shard (or by sample where shards are too few).

    ``keep`` selects the samples of one split by key (so train and validation never share a clip) and ``genres``
    the wanted genres; both act before the split across consumers, identically in the advance count.
    """

    def __init__(
        self, source: WebDatasetSource, keep: Callable[[str], bool] | None = None, genres: set[str] | None = None
    ) -> None:
        self.source = source
        self.keep = keep
        self.wanted_genres = genres

    def _wanted(self, key: str, genre: str | None) -> bool:
        return (self.keep is None or self.keep(key)) and (self.wanted_genres is None or genre in self.wanted_genres)

    def counts(self) -> dict[str, int] | None:
        """Samples of this stream per shard, from the shard index; ``None`` when any shard cannot be indexed."""
        counts = {}
        for url in self.source.urls:
            entries = self.source.index(url)
            if entries is None:
                return None
            counts[url] = sum(1 for key, genre in entries if self._wanted(key, genre))
        return counts

    def genres(self) -> list[str]:
        """Genres of this stream's samples, from the shard index (local shards only)."""
        found = set()
        for url in self.source.urls:
            for key, genre in self.source.index(url) or []:
                if genre is not None and self._wanted(key, genre):
                    found.add(genre)
        return sorted(found)

    def plan(self, consumer: Consumer, seed: int, epoch: int, shuffle: bool) -> RecordPlan:
        counts = self.counts() if consumer.world_size > 1 else None
        if consumer.world_size > 1 and counts is None and consumer.worker == 0 and epoch == 0:
            log.warning(
                "Remote or unreadable shards cannot be counted in advance, so DDP ranks may read different numbers "
                "of samples; stop training by max_steps (not epochs) or use local shards."
            )
        shard_plan = plan_shards(self.source.urls, consumer, seed, epoch, shuffle, counts)

        def records() -> Iterator[Record]:
            errors: list[BadItem] = []
            index = 0
            for sample in self.source.raw_samples(shard_plan.urls, errors.append):
                yield from errors
                errors.clear()
                if not self._wanted(sample["__key__"], genre_from_members(sample)):
                    continue
                mine = index % shard_plan.modulo == shard_plan.remainder
                index += 1
                if not mine:
                    continue
                try:
                    yield self.source.to_record(sample)
                except BadItemError as error:
                    yield error.item
            yield from errors

        return RecordPlan(records(), shard_plan.pad)


class StreamingClipDataset(IterableDataset):
    """Log-mel clips streamed from a :class:`RecordStream`; samples as :class:`~datamodules.dataset.AudioClipDataset`.

    The epoch is counted per dataset copy (each ``__iter__`` is one epoch); with persistent workers every worker's
    copy counts the same, so all consumers agree on the epoch's order. Lightning does not call ``set_epoch`` on
    iterable datasets; call it yourself when iterating outside Lightning with fresh workers.
    """

    def __init__(
        self,
        stream: RecordStream,
        duration: float,
        random_crop: bool,
        shuffle: bool,
        seed: int = 0,
        shuffle_buffer: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        """
        Args:
            stream: the records.
            duration: clip length in seconds.
            random_crop: random crops (training) or the segment start (evaluation).
            shuffle: a new order every epoch (training); off for evaluation.
            seed: seed of orders, shuffle buffers and crops.
            shuffle_buffer: samples held by the seeded shuffle buffer (0 or 1: none).
            rank, world_size: simulate DDP (tests); ``None`` reads ``torch.distributed``.
        """
        super().__init__()
        self.stream = stream
        self.duration = duration
        self.random_crop = random_crop
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.bad = BadItemCounter()

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the next iteration."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        consumer = current_consumer(self.rank, self.world_size)
        epoch = self.epoch
        self.epoch += 1
        plan = self.stream.plan(consumer, self.seed, epoch, self.shuffle)
        records: Iterator[Record] = iter(plan.records)
        if self.shuffle and self.shuffle_buffer > 1:
            rng = random.Random(mix_seed(self.seed, epoch, consumer.id, "buffer"))
            records = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(records)
        generator = seeded_generator(self.seed, epoch, consumer.id, "crop")
        yield from self._samples(records, plan.pad, generator)

    def _samples(self, records: Iterator[Record], pad: int, generator: torch.Generator) -> Iterator[dict[str, Any]]:
        """One sample per record: a bad record is counted and stands in as a repeat of the last good sample (owed
        until the first good one), so the consumer yields its planned count; then ``pad`` repeats."""
        last: dict[str, Any] | None = None
        owed = skipped = 0
        for record in records:
            owed += 1
            if isinstance(record, BadItem):
                self.bad.note(None, BadItemError(*record))
                skipped += 1
            else:
                item, audio = record
                try:
                    last = read_clip(item, audio, self.duration, self.random_crop, generator)
                except Exception as error:  # one bad item must not end the epoch; counted and logged
                    self.bad.note(item, error)
                    skipped += 1
            if last is None:
                continue
            for _ in range(owed):
                yield {**last, "skipped": skipped}
                skipped = 0
            owed = 0
        if last is not None:
            for _ in range(pad):
                yield {**last, "skipped": 0}
