"""The streaming path: 2 workers x 2 simulated ranks read each item exactly once; seeded, reproducible orders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from torch.utils.data import DataLoader

from datamodules import GenreAudioDataModule
from datamodules.sharding import Consumer, plan_shards, split_items
from datamodules.streaming import StreamingClipDataset
from tests.data_helpers import write_shards


def read_all(dataset: StreamingClipDataset, workers: int = 2) -> list[str]:
    loader = DataLoader(dataset, batch_size=2, num_workers=workers)
    return [path for batch in loader for path in batch["path"]]


def ranks(dm: GenreAudioDataModule, world: int = 2, **kwargs) -> list[list[str]]:
    """What each simulated rank reads of the data module's training stream, with 2 workers each."""
    stream = dm._datasets["train"].stream
    options = {"duration": 0.64, "random_crop": True, "shuffle": True, "seed": 3, "shuffle_buffer": 4, **kwargs}
    return [read_all(StreamingClipDataset(stream, rank=r, world_size=world, **options)) for r in range(world)]


def test_items_once_over_two_workers_and_two_ranks(synthetic_root: Path) -> None:
    dm = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, val_fraction=0.0, streaming=True)
    dm.setup("fit")
    per_rank = ranks(dm)
    every = [p for rank in per_rank for p in rank]
    assert sorted(every) == sorted(i.path for i in dm.splits["train"])  # 12 items, each exactly once
    assert len(per_rank[0]) == len(per_rank[1]) == 6


def test_uneven_items_are_padded_so_ranks_stay_in_step() -> None:
    order = list(range(13))
    shares = [split_items(order, Consumer(r, 2, w, 2)) for r in range(2) for w in range(2)]
    assert sum(len(s) for s in shares[:2]) == sum(len(s) for s in shares[2:]) == 7
    assert set().union(*map(set, shares)) == set(order)
    assert Counter(i for s in shares for i in s).most_common(1)[0][1] == 2  # one repeat, as DistributedSampler pads


def test_shards_once_over_two_workers_and_two_ranks(tmp_path: Path) -> None:
    keys = write_shards(tmp_path / "even", shards=4, per_shard=3, duration=0.8)
    dm = GenreAudioDataModule(shards=str(tmp_path / "even" / "train-{000..003}.tar"), duration=0.64, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    per_rank = ranks(dm)
    every = [p.split("#")[1].split(".")[0] for rank in per_rank for p in rank]
    assert sorted(every) == sorted(keys)  # 12 samples, each exactly once
    assert len(per_rank[0]) == len(per_rank[1])


def test_one_shard_is_split_by_sample(tmp_path: Path) -> None:
    keys = write_shards(tmp_path / "one", shards=1, per_shard=8, duration=0.8)
    dm = GenreAudioDataModule(shards=str(tmp_path / "one" / "train-000.tar"), duration=0.64, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    every = [p.split("#")[1].split(".")[0] for rank in ranks(dm) for p in rank]
    assert sorted(every) == sorted(keys)


def test_uneven_shards_pad_the_lighter_rank(tmp_path: Path) -> None:
    keys = write_shards(tmp_path / "odd", shards=3, per_shard=3, duration=0.8)
    dm = GenreAudioDataModule(shards=str(tmp_path / "odd" / "train-{000..002}.tar"), duration=0.64, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    counts = dm._datasets["train"].stream.counts()
    plans = [plan_shards(sorted(counts), Consumer(r, 2, w, 2), 3, 0, True, counts) for r in range(2) for w in range(2)]
    assert sum(p.count(counts) for p in plans) == 9  # without padding: each sample once
    per_rank = ranks(dm)
    assert len(per_rank[0]) == len(per_rank[1]) == 6  # 6 + 3 samples, the lighter rank repeats 3
    assert {p.split("#")[1].split(".")[0] for rank in per_rank for p in rank} == set(keys)


def test_orders_are_seeded_and_change_per_epoch(synthetic_root: Path) -> None:
    dm = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, val_fraction=0.0, streaming=True)
    dm.setup("fit")
    stream = dm._datasets["train"].stream

    def epoch(e: int, seed: int = 3) -> list[tuple[str, float]]:
        dataset = StreamingClipDataset(stream, 0.64, random_crop=True, shuffle=True, seed=seed, shuffle_buffer=4)
        dataset.set_epoch(e)
        return [(s["path"], s["offset"]) for s in dataset]

    assert epoch(0) == epoch(0)
    assert epoch(1) != epoch(0) and sorted(p for p, _ in epoch(1)) == sorted(p for p, _ in epoch(0))
    assert epoch(0, seed=4) != epoch(0)
    dataset = StreamingClipDataset(stream, 0.64, random_crop=True, shuffle=True, seed=3)
    first, second = [s["path"] for s in dataset], [s["path"] for s in dataset]  # the epoch counts itself
    assert first != second
    fixed = StreamingClipDataset(stream, 0.64, random_crop=False, shuffle=False)
    assert [s["offset"] for s in fixed] == [0.0] * 12 and [s["path"] for s in fixed] == [i.path for i in dm.splits["train"]]
