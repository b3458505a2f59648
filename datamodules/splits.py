"""Train, validation and test splits: which items (or which stream samples) each split holds.

What each split is for (docs/splits.md): train fits the adapter; validation chooses among checkpoints (the best
``val/kad``) and so is not held out once it has chosen; test is scored once, at the end, on files neither training
nor selection saw. The split is decided once, from the settings alone (seed, fractions, the source's own ``split``
column), so that every run, rank and tool that reads the same source with the same settings sees the same splits;
the latent cache relies on this (it checks :meth:`~datamodules.datamodule.GenreAudioDataModule.identity`).

Indexed sources split by source file, never by crop, so that no file's audio is on both sides, and per genre, so
that every genre with at least three files has a file in validation and one in test (a genre scored against other
genres' clips says nothing about the genre). WebDataset shards, which have no item list, split by a stable hash of
the sample key (stratified only in expectation) or take validation and test from separate shards.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from datamodules.captions import CaptionPolicy
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem
from datamodules.sharding import key_fraction
from datamodules.streaming import ShardStream
from datamodules.webdataset_source import WebDatasetSource

SPLIT_NAMES = ("train", "val", "test")

NO_TEST_SPLIT = (
    "There is no test split: data.init_args.test_fraction is 0 and no item is marked split=test (WebDataset: no "
    "test_shards). Scoring the validation split instead would report the split that chose the checkpoint as if it "
    "were held out. Set data.init_args.test_fraction (e.g. 0.1; the splits change, so retrain) or mark held-out "
    "rows split=test in the manifest; `lightning validate` scores the validation split."
)


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


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse fractions that leave no training data or are not shares.

    Raises:
        DataSourceError: naming the setting and its value.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataSourceError(f"data.init_args.{name} must be in [0, 1), got {value}.")
    if val_fraction + test_fraction >= 1.0:
        raise DataSourceError(
            f"data.init_args.val_fraction + test_fraction must be below 1 (no file would be left to train on), "
            f"got {val_fraction} + {test_fraction}."
        )


def held_out_counts(n_files: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """How many of a genre's ``n_files`` go to validation and to test.

    Each fraction is rounded up (a positive fraction of a small genre is one file, not none), and training keeps at
    least one file: test gives way first, then validation, so a genre of two files has a validation file and no
    test file, and a genre of one file trains only.
    """
    n_val = math.ceil(val_fraction * n_files) if val_fraction > 0 else 0
    n_test = math.ceil(test_fraction * n_files) if test_fraction > 0 else 0
    while n_val + n_test >= n_files and n_test:
        n_test -= 1
    while n_val >= n_files and n_val:
        n_val -= 1
    return n_val, n_test


@dataclass(frozen=True)
class SplitPlan:
    """The items of each split and the genres that a split lacks (for the run's report and the scores' notes)."""

    items: dict[str, list[AudioItem]]

    def genres(self, split: str) -> set[str]:
        """The genres with at least one item in ``split``."""
        return {item.genre for item in self.items[split]}

    def missing(self, split: str) -> list[str]:
        """Training genres without an item in ``split`` (their scores there would compare with other genres)."""
        return sorted(self.genres("train") - self.genres(split))


def report_splits(plan: SplitPlan) -> None:
    """Log the split sizes per genre; warn about genres a held-out split lacks and about a missing test split."""
    counts = {name: len(items) for name, items in plan.items.items()}
    per_genre = {genre: [sum(item.genre == genre for item in plan.items[name]) for name in SPLIT_NAMES]
                 for genre in sorted(plan.genres("train"))}
    rank_zero_info(
        f"Data: {counts['train']} train / {counts['val']} val / {counts['test']} test items; per genre "
        "(train, val, test): " + ", ".join(f"{genre} {tuple(n)}" for genre, n in per_genre.items())
    )
    if not plan.items["test"]:
        rank_zero_warn(NO_TEST_SPLIT)
    for split, label in (("val", "validation"), ("test", "test")):
        missing = plan.missing(split)
        if missing and plan.items[split]:
            rank_zero_warn(
                f"Genre(s) {missing} have no {label} file (too few files, or none marked {split}): their "
                f"{label} scores can only compare with the other genres' clips, so tables mark them 'vs all' and "
                f"no {split}/<metric>/<genre> is logged for them."
            )


def split_by_file(items: list[AudioItem], val_fraction: float, test_fraction: float, seed: int) -> SplitPlan:
    """Explicit ``split`` column first; the rest split by source file, per genre, with a seeded shuffle.

    Within each genre the files are sorted and shuffled with ``random.Random(seed)``; the first
    :func:`held_out_counts` files go to validation, the next to test, the rest to training. Adding files of one
    genre never moves another genre's files between splits.
    """
    check_fractions(val_fraction, test_fraction)
    splits: dict[str, list[AudioItem]] = {name: [] for name in SPLIT_NAMES}
    files_by_genre: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.split is not None:
            splits[item.split].append(item)
        else:
            files_by_genre[item.genre].add(item.path)
    split_of_file: dict[str, str] = {}
    for genre, paths in sorted(files_by_genre.items()):
        files = sorted(paths)
        random.Random(seed).shuffle(files)
        n_val, n_test = held_out_counts(len(files), val_fraction, test_fraction)
        for position, path in enumerate(files):
            # A file listed under two genres keeps the split its first genre gave it: its audio is on one side.
            split_of_file.setdefault(path, "val" if position < n_val else "test" if position < n_val + n_test
                                     else "train")
    for item in items:
        if item.split is None:
            splits[split_of_file[item.path]].append(item)
    return SplitPlan(splits)


class KeySplit:
    """Picklable split of a stream by sample key: the samples whose stable key fraction lies in ``[low, high)``
    (or, with ``inside=False``, outside it)."""

    def __init__(self, seed: int, low: float, high: float, inside: bool = True) -> None:
        self.seed, self.low, self.high, self.inside = seed, low, high, inside

    def __call__(self, key: str) -> bool:
        return (self.low <= key_fraction(key, self.seed) < self.high) == self.inside


def shard_streams(
    source: WebDatasetSource,
    captions: CaptionPolicy,
    genres: Iterable[str] | None,
    val_shards: str | list[str] | None,
    test_shards: str | list[str] | None,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
) -> dict[str, ShardStream]:
    """Train, validation and test streams of the shards.

    Validation comes from ``val_shards``, else from the ``val_fraction`` of sample keys in ``[0, val_fraction)``;
    test from ``test_shards``, else from the keys in the next ``test_fraction``. Training holds the keys in neither
    range. A split with no shards and a zero fraction is absent.
    """
    check_fractions(0.0 if val_shards else val_fraction, 0.0 if test_shards else test_fraction)
    wanted = set(genres) if genres else None
    val_width = 0.0 if val_shards else val_fraction
    test_width = 0.0 if test_shards else test_fraction
    streams = {"train": ShardStream(source, KeySplit(split_seed, 0.0, val_width + test_width, inside=False)
                                    if val_width + test_width else None, wanted)}
    if val_shards:
        streams["val"] = ShardStream(WebDatasetSource(val_shards, captions), None, wanted)
    elif val_width:
        streams["val"] = ShardStream(source, KeySplit(split_seed, 0.0, val_width), wanted)
    if test_shards:
        streams["test"] = ShardStream(WebDatasetSource(test_shards, captions), None, wanted)
    elif test_width:
        streams["test"] = ShardStream(source, KeySplit(split_seed, val_width, val_width + test_width), wanted)
    return streams
