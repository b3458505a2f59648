"""Train, validation and test splits: which items (or which stream samples) each split holds.

The split is decided once, from the settings alone (seed, fraction, the source's own ``split`` column), so that
every run, rank and tool that reads the same source with the same settings sees the same splits; the latent cache
relies on this (it checks :meth:`~datamodules.datamodule.GenreAudioDataModule.identity`). Indexed sources split by
source file, never by crop, so that no file's audio is on both sides; WebDataset shards, which have no item list,
split by a stable hash of the sample key or take their validation from separate shards.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from datamodules.captions import CaptionPolicy
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem
from datamodules.sharding import key_fraction
from datamodules.streaming import ShardStream
from datamodules.webdataset_source import WebDatasetSource


def select_genres(items: list[AudioItem], wanted: Iterable[str] | None) -> list[AudioItem]:
    """The items of the ``wanted`` genres (all items when ``None`` or empty); a wanted genre without items fails."""
    if not wanted:
        return items
    wanted = set(wanted)
    present = {item.genre for item in items}
    missing = sorted(wanted - present)
    if missing:
        raise DataSourceError(f"Genre(s) {missing} have no clips in the data source; present: {sorted(present)}.")
    return [item for item in items if item.genre in wanted]


def split_by_file(items: list[AudioItem], val_fraction: float, seed: int) -> dict[str, list[AudioItem]]:
    """Explicit ``split`` column first; the rest split by source file with a seeded shuffle.

    ``val_fraction`` of the unassigned files (rounded up, but never all of them) go to validation; the test split
    is a copy of validation when no item is marked ``test``.
    """
    splits: dict[str, list[AudioItem]] = {"train": [], "val": [], "test": []}
    unassigned = [item for item in items if item.split is None]
    for item in items:
        if item.split is not None:
            splits[item.split].append(item)
    files = sorted({item.path for item in unassigned})
    random.Random(seed).shuffle(files)
    n_val = math.ceil(val_fraction * len(files)) if val_fraction > 0 else 0
    if n_val >= len(files) and files:
        n_val = len(files) - 1
    val_files = set(files[:n_val])
    for item in unassigned:
        splits["val" if item.path in val_files else "train"].append(item)
    if not splits["test"]:
        splits["test"] = list(splits["val"])
    return splits


class KeySplit:
    """Picklable split of a stream by sample key: validation when the key's stable fraction is below ``fraction``."""

    def __init__(self, seed: int, fraction: float, validation: bool) -> None:
        self.seed, self.fraction, self.validation = seed, fraction, validation

    def __call__(self, key: str) -> bool:
        return (key_fraction(key, self.seed) < self.fraction) == self.validation


def shard_streams(
    source: WebDatasetSource,
    captions: CaptionPolicy,
    genres: Iterable[str] | None,
    val_shards: str | list[str] | None,
    val_fraction: float,
    split_seed: int,
) -> dict[str, ShardStream]:
    """Train and validation streams of the shards: validation from ``val_shards``, else the ``val_fraction`` of
    sample keys that :class:`KeySplit` assigns it, else none."""
    wanted = set(genres) if genres else None
    if val_shards:
        val_source = WebDatasetSource(val_shards, captions)
        return {"train": ShardStream(source, None, wanted), "val": ShardStream(val_source, None, wanted)}
    if val_fraction > 0:
        return {
            "train": ShardStream(source, KeySplit(split_seed, val_fraction, validation=False), wanted),
            "val": ShardStream(source, KeySplit(split_seed, val_fraction, validation=True), wanted),
        }
    return {"train": ShardStream(source, None, wanted)}
