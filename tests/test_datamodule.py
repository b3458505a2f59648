"""GenreAudioDataModule: sources, file-level splits, crops, captions and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from datamodules import GenreAudioDataModule
from datamodules.dataset import clip_to_log_mel
from datamodules.features import num_frames
from datamodules.manifest import DataSourceError, read_csv_manifest, scan_genre_folders
from audioldm_demo.synthetic import STYLES, synthesize_clip, write_synthetic_dataset


def test_synthetic_dataset_is_deterministic_and_labelled(tmp_path: Path) -> None:
    a = write_synthetic_dataset(tmp_path / "a", clips_per_genre=2, duration=1.0, seed=3)
    b = write_synthetic_dataset(tmp_path / "b", clips_per_genre=2, duration=1.0, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(files) == 2 * len(STYLES)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    data, rate = sf.read(a / files[0])
    assert rate == 16000 and len(data) == 16000 and 0.8 < np.abs(data).max() <= 0.91


def test_synthetic_genres_are_told_apart_by_mel_statistics() -> None:
    """Leave-one-out nearest-centroid on per-band log-mel mean and deviation recognises the genre of most clips."""
    def features(genre: str, seed: int) -> torch.Tensor:
        mel = clip_to_log_mel(torch.from_numpy(synthesize_clip(genre, 2.0, seed)), 2.0)
        return torch.cat([mel.mean(0), mel.std(0)])

    genres = list(STYLES)
    feats = {g: [features(g, s) for s in range(4)] for g in genres}
    correct = 0
    for genre in genres:
        for i in range(4):
            centroids = {h: torch.stack([f for j, f in enumerate(feats[h]) if (h, j) != (genre, i)]).mean(0) for h in genres}
            correct += min(genres, key=lambda h: (feats[genre][i] - centroids[h]).norm()) == genre
    assert correct >= 20  # of 24 (chance: 4)


def test_folder_scan_uses_sidecar_captions_and_templates(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "d", genres=["gugak", "boom_bap"], clips_per_genre=2, duration=1.0)
    (root / "gugak" / "gugak_000.txt").write_text("a calm court piece\n")
    items = {Path(i.path).name: i for i in scan_genre_folders(root)}
    assert items["gugak_000.wav"].caption == "a calm court piece"
    assert items["gugak_001.wav"].caption == "gugak music"
    assert items["boom_bap_000.wav"].genre == "boom_bap"
    both = {Path(i.path).name: i for i in scan_genre_folders(root, "{caption}, {genre}")}
    assert both["gugak_000.wav"].caption == "a calm court piece, gugak"


def test_manifest_rows_and_errors(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "d", genres=["gugak"], clips_per_genre=2, duration=1.0)
    items = read_csv_manifest(root / "manifest.csv")
    assert [Path(i.path).name for i in items] == ["gugak_000.wav", "gugak_001.wav"]
    assert items[0].caption.startswith("gugak music, ")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,caption,genre,start,end\na.wav,x,jazz,0,1\nb.wav,y,jazz,two,3\n")
    with pytest.raises(DataSourceError, match=r"bad.csv row 3: column 'start' must be a number"):
        read_csv_manifest(bad)
    bad.write_text("path,caption,genre,start,end\na.wav,x,jazz,2,1\n")
    with pytest.raises(DataSourceError, match=r"row 2: end \(1.0\) must be greater than start"):
        read_csv_manifest(bad)
    bad.write_text("file,caption\na.wav,x\n")
    with pytest.raises(DataSourceError, match=r"missing column\(s\) \['path', 'genre'\]"):
        read_csv_manifest(bad)


def test_split_is_by_file_and_crops_are_right(synthetic_root: Path) -> None:
    dm = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, val_fraction=0.25, test_fraction=0.2,
                              batch_size=2)
    dm.setup("fit")
    train, val, test = ({i.path for i in dm.splits[name]} for name in ("train", "val", "test"))
    # Per genre of 5 files: ceil(0.25 * 5) = 2 val, ceil(0.2 * 5) = 1 test, 2 train; no file on two sides.
    assert (len(train), len(val), len(test)) == (6, 6, 3) and not train & val and not test & (train | val)
    batch = next(iter(dm.train_dataloader()))
    assert batch["mel"].shape == (2, num_frames(0.64), 64)
    assert all(0.0 <= o <= 2.0 - 0.64 + 1e-6 for o in batch["offset"].tolist())
    val_batch = next(iter(dm.val_dataloader()))
    assert val_batch["offset"].tolist() == [0.0, 0.0]
    again = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(val_batch["mel"], again["mel"])  # fixed crops for validation
    assert dm.genres == ["boom_bap", "chiptune", "gugak"]


def test_unreadable_file_is_skipped_and_reported(synthetic_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    (root / "gugak" / "broken.wav").write_bytes(b"not audio at all")
    dm = GenreAudioDataModule(root=str(root), duration=0.64)
    with pytest.warns(UserWarning, match="Skipping 1 unreadable file.*broken.wav"):
        dm.setup("fit")
    assert len(dm.bad_items) == 1
    assert sum(len(v) for v in dm.splits.values()) == 15


def test_source_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="exactly one data source"):
        GenreAudioDataModule()
    with pytest.raises(DataSourceError, match="exactly one data source"):
        GenreAudioDataModule(root="a", manifest="b.csv")
    with pytest.raises(DataSourceError, match="does not exist"):
        GenreAudioDataModule(root=str(tmp_path / "missing")).setup("fit")


def test_genre_filter_and_predict_prompts(synthetic_root: Path, tmp_path: Path) -> None:
    dm = GenreAudioDataModule(root=str(synthetic_root), genres=["gugak"], duration=0.64, val_fraction=0.0)
    dm.setup("fit")
    assert dm.genres == ["gugak"] and len(dm.splits["train"]) == 4
    assert dm.predict_prompts() == ["gugak music"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n\ntwo\n")
    dm = GenreAudioDataModule(root=str(synthetic_root), predict_prompts_file=str(prompts), predict_seeds_per_prompt=2)
    batch = next(iter(dm.predict_dataloader()))
    assert batch["prompt"] == ["one", "one"] and batch["seed"].tolist() == [0, 1]
    with pytest.raises(DataSourceError, match=r"Genre\(s\) \['jazz'\] have no clips"):
        GenreAudioDataModule(root=str(synthetic_root), genres=["jazz"]).setup("fit")
