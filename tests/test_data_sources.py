"""Every source type (folder, CSV, JSONL, saved Hugging Face dataset, WebDataset shards) gives the same sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from datamodules import GenreAudioDataModule
from datamodules.captions import CaptionPolicy
from datamodules.features import num_frames
from datamodules.manifest import DataSourceError, read_manifest
from datamodules.ordering import EpochSampler, balanced_order
from tests.data_helpers import GENRES, write_hf_dataset, write_shards

SAMPLE_KEYS = {"mel", "caption", "genre", "path", "offset", "skipped"}


def first_batch(dm: GenreAudioDataModule, split: str = "train") -> dict:
    dm.setup("fit")
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    return next(iter(loader))


def check_batch(batch: dict, size: int, duration: float = 0.64) -> None:
    assert set(batch) == SAMPLE_KEYS
    assert batch["mel"].shape == (size, num_frames(duration), 64) and batch["mel"].isfinite().all()
    assert len(batch["caption"]) == size and all(batch["caption"]) and all(g in GENRES for g in batch["genre"])
    assert batch["offset"].dtype == torch.float64 and len(batch["path"]) == size


def test_folder_and_manifests_give_the_same_samples(synthetic_root: Path, tmp_path: Path) -> None:
    folder = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, val_fraction=0.0, test_fraction=0.0, batch_size=3)
    check_batch(first_batch(folder), 3)
    csv_dm = GenreAudioDataModule(manifest=str(synthetic_root / "manifest.csv"), duration=0.64, val_fraction=0.0, test_fraction=0.0,
                                  batch_size=3)
    check_batch(first_batch(csv_dm), 3)
    jsonl = tmp_path / "manifest.jsonl"
    rows = [{"path": str(synthetic_root / "gugak" / f"gugak_{i:03d}.wav"), "caption": f"court music {i}", "genre": "gugak",
             "start": 0.5, "end": 1.5, "split": "val" if i == 3 else None, "id": i} for i in range(4)]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dm = GenreAudioDataModule(manifest=str(jsonl), duration=0.64, batch_size=3, val_fraction=0.0, test_fraction=0.0)
    batch = first_batch(dm)
    check_batch(batch, 3)
    assert all(0.5 <= o <= 1.5 - 0.64 + 1e-6 for o in batch["offset"].tolist())  # crops stay inside the segment
    assert [Path(i.path).name for i in dm.splits["val"]] == ["gugak_003.wav"]
    assert first_batch(dm, "val")["offset"].tolist() == [0.5]


def test_caption_policy_as_given_template_or_both(synthetic_root: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    wav = synthetic_root / "gugak" / "gugak_000.wav"
    manifest.write_text(f"path,caption,genre\n{wav},a calm court piece,gugak\n{wav},,gugak\n")
    assert [i.caption for i in read_manifest(manifest)] == ["a calm court piece", "gugak music"]
    assert [i.caption for i in read_manifest(manifest, "{genre} music")] == ["gugak music", "gugak music"]
    assert [i.caption for i in read_manifest(manifest, "{caption}, {genre}")] == ["a calm court piece, gugak", "gugak music"]
    problems: list = []
    assert [i.caption for i in read_manifest(manifest, CaptionPolicy("{caption}", None), problems)] == ["a calm court piece"]
    assert problems[0].reason.value == "missing or empty caption"
    with pytest.raises(DataSourceError, match="unknown field"):
        GenreAudioDataModule(root=str(synthetic_root), caption_template="{mood} music")


def test_saved_hugging_face_dataset(tmp_path: Path) -> None:
    root = write_hf_dataset(tmp_path / "hf", train=6, validation=2)
    dm = GenreAudioDataModule(hf_dataset=str(root), duration=0.64, batch_size=2)
    batch = first_batch(dm)
    check_batch(batch, 2)
    assert len(dm.splits["train"]) == 6 and len(dm.splits["val"]) == 2  # the dataset's validation split is val
    captions = {i.path: i.caption for i in dm.splits["train"]}
    assert captions["song_001.wav"] == "take 1" and captions["song_000.wav"] == "boom bap music"  # ClassLabel names
    assert dm.genres == sorted(GENRES)
    check_batch(first_batch(GenreAudioDataModule(hf_dataset=str(root), hf_split="train", duration=0.64,
                                                 batch_size=2, streaming=True)), 2)


def test_webdataset_shards_from_a_brace_pattern(tmp_path: Path) -> None:
    keys = write_shards(tmp_path / "shards", shards=2, per_shard=8)
    pattern = str(tmp_path / "shards" / "train-{000..001}.tar")
    dm = GenreAudioDataModule(shards=pattern, duration=0.64, batch_size=2, val_fraction=0.2, test_fraction=0.2,
                              split_seed=5)  # a seed whose key hashes put every genre in training (not stratified)
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), 2)
    train_keys, val_keys, test_keys = ({p.split("#")[1].split(".")[0] for b in loader for p in b["path"]}
                                       for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()))
    assert val_keys and test_keys  # split by key: no clip on two sides, every clip on one
    assert not train_keys & val_keys and not train_keys & test_keys and not val_keys & test_keys
    assert train_keys | val_keys | test_keys <= set(keys)
    assert len(val_keys) + len(test_keys) + sum(dm._datasets["train"].stream.counts().values()) == len(keys) == 16
    assert dm.genres == sorted(GENRES)
    with pytest.raises(DataSourceError, match=r"shard\(s\) do not exist"):
        GenreAudioDataModule(shards=str(tmp_path / "nope-{0..1}.tar")).setup("fit")


def test_exactly_one_source_and_streaming_rules(tmp_path: Path, synthetic_root: Path) -> None:
    with pytest.raises(DataSourceError, match="exactly one data source"):
        GenreAudioDataModule(root=str(synthetic_root), hf_dataset="x")
    with pytest.raises(DataSourceError, match="read as a stream"):
        GenreAudioDataModule(shards="a.tar", streaming=False)
    with pytest.raises(DataSourceError, match="balance_genres needs an indexed source"):
        GenreAudioDataModule(shards="a.tar", balance_genres=True)


def test_genre_balancing(synthetic_root: Path, tmp_path: Path) -> None:
    import random

    genres = ["a"] * 6 + ["b"] * 2 + ["c"]
    order = balanced_order(genres, random.Random(0))
    drawn = [genres[i] for i in order]
    assert drawn.count("a") == drawn.count("b") == drawn.count("c") == 6
    assert sorted(set(order) & {6, 7}) == [6, 7]  # every item of a small genre is used
    root = tmp_path / "uneven"
    shutil.copytree(synthetic_root, root)
    for extra in ("gugak_001", "gugak_002", "gugak_003"):
        (root / "gugak" / f"{extra}.wav").unlink()
    dm = GenreAudioDataModule(root=str(root), duration=0.64, val_fraction=0.0, test_fraction=0.0, batch_size=3, balance_genres=True)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler) and len(loader.sampler) == 15
    seen = [g for b in loader for g in b["genre"]]
    assert seen.count("gugak") == seen.count("boom_bap") == 5
    streamed = GenreAudioDataModule(root=str(root), duration=0.64, val_fraction=0.0, test_fraction=0.0, batch_size=3,
                                    balance_genres=True, streaming=True)
    streamed.setup("fit")
    seen = [g for b in streamed.train_dataloader() for g in b["genre"]]
    assert seen.count("gugak") == seen.count("chiptune") == 5
