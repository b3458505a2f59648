"""Bad input: `audioldm-lora prepare` names every kind with its reason; training skips and counts bad items."""

from __future__ import annotations

import csv
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioldm_lora.commands.prepare import main as prepare
from datamodules import GenreAudioDataModule
from datamodules.bad_items import Reason
from datamodules.errors import DataSourceError
from tests.data_helpers import clip, wav_bytes, write_shards

GOOD = "gugak/gugak_000.wav"


def bad_reasons(output: Path) -> dict[str, str]:
    with (output / "bad_items.csv").open(newline="", encoding="utf-8") as handle:
        return {row["source"]: row["reason"] for row in csv.DictReader(handle)}


@pytest.fixture()
def broken_folder(synthetic_root: Path, tmp_path: Path) -> Path:
    """The synthetic genres plus one file of each bad kind that a folder can hold."""
    root = tmp_path / "genres"
    shutil.copytree(synthetic_root, root)
    bad = root / "gugak"
    (bad / "corrupt.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(bad / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(bad / "short.wav", clip("gugak", 0, 0.3), 16000)
    sf.write(bad / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    nan = clip("gugak", 1)
    nan[100::4000] = np.nan  # spread out, so that every training crop holds one
    sf.write(bad / "nan.wav", nan, 16000, subtype="FLOAT")
    (bad / "song.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A ")
    sf.write(bad / "latin1.wav", clip("gugak", 2), 16000)
    (bad / "latin1.txt").write_bytes("caf\xe9 music".encode("latin-1"))
    return root


FOLDER_REASONS = {
    "corrupt.wav": Reason.UNREADABLE,
    "empty.wav": Reason.ZERO_LENGTH,
    "short.wav": Reason.TOO_SHORT,
    "silent.wav": Reason.SILENT,
    "nan.wav": Reason.NON_FINITE,
    "song.m4a": Reason.UNSUPPORTED,
    "latin1.wav": Reason.NOT_UTF8,
}


def test_prepare_reports_every_bad_file_with_its_reason(broken_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "prepared"
    assert prepare(["--root", str(broken_folder), "--out", str(out)]) == 0
    reasons = {Path(source).name: reason for source, reason in bad_reasons(out).items()}
    assert reasons == {name: reason.value for name, reason in FOLDER_REASONS.items()}
    printed = capsys.readouterr().out
    assert all(f"{name}: {reason.value}" in printed for name, reason in FOLDER_REASONS.items())
    with (out / "manifest.clean.csv").open(newline="") as handle:
        clean = [row["path"] for row in csv.DictReader(handle)]
    assert len(clean) == 15 and not any(Path(p).name in FOLDER_REASONS for p in clean)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items"] == 15 and summary["bad_items"] == 7
    assert summary["genres"]["gugak"]["items"] == 5 and summary["genres"]["gugak"]["hours"] == pytest.approx(10 / 3600)
    assert summary["sample_rates"] == {"16000": 15} and summary["channels"] == {"1": 15}
    assert prepare(["--root", str(broken_folder), "--out", str(out), "--strict"]) == 1
    # the clean manifest is a source: a second pass is clean, also under --strict
    assert prepare(["--manifest", str(out / "manifest.clean.csv"), "--out", str(tmp_path / "again"), "--strict"]) == 0


def test_prepare_reports_manifest_rows(synthetic_root: Path, tmp_path: Path) -> None:
    good = synthetic_root / GOOD
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(
        b"path,caption,genre,start,end,split\n"
        + f"{good},ok,gugak,,,\n".encode()
        + f"{good},,gugak,,,\n".encode()  # no caption (fallback null)
        + f"{good},x,,,,\n".encode()  # no genre
        + f"{good},x,jazz,,,\n".encode()  # not a known genre
        + f"{good},x,gugak,two,,\n".encode()  # start is not a number
        + f"{good},x,gugak,,,,extra\n".encode()  # too many fields
        + f"{good},caf".encode() + b"\xe9" + b",gugak,,,\n"  # not UTF-8
        + f"{tmp_path / 'clip.aac'},x,gugak,,,\n".encode()  # unsupported
        + f"{tmp_path / 'missing.wav'},x,gugak,,,\n".encode()  # no such file
    )
    out = tmp_path / "out"
    assert prepare(["--manifest", str(manifest), "--out", str(out), "--caption-fallback", "null",
                    "--genres", "[gugak, boom_bap]", "--strict"]) == 1
    reasons = bad_reasons(out)
    expected = {
        3: Reason.NO_CAPTION, 4: Reason.UNKNOWN_GENRE, 6: Reason.MALFORMED_ROW, 7: Reason.MALFORMED_ROW,
        8: Reason.NOT_UTF8, 9: Reason.UNSUPPORTED,
    }
    for row, reason in expected.items():
        assert reasons[f"{manifest} row {row}"] == reason.value, row
    assert reasons[str(tmp_path / "missing.wav")] == Reason.UNREADABLE.value
    assert reasons[str(good)] == Reason.UNKNOWN_GENRE.value  # the jazz row, after reading
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_bytes(b'{"path": "%s", "genre": "gugak"}\n{not json\n[1, 2]\n' % str(good).encode())
    assert prepare(["--manifest", str(jsonl), "--out", str(tmp_path / "j")]) == 0
    assert sorted(bad_reasons(tmp_path / "j").values()) == [Reason.MALFORMED_ROW.value] * 2


def test_prepare_reads_shards_and_a_training_config(tmp_path: Path, synthetic_root: Path) -> None:
    shards = tmp_path / "shards"
    write_shards(shards, shards=1, per_shard=3)
    with tarfile.open(shards / "train-001.tar", "w") as tar:
        for name, data in {"a.txt": b"caption only", "b.flac": wav_bytes(clip("gugak", 5)), "b.json": b"{oops",
                           "c.wav": wav_bytes(clip("gugak", 6)), "c.json": b'{"caption": "no genre"}'}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    out = tmp_path / "out"
    assert prepare(["--shards", str(shards / "train-{000..001}.tar"), "--out", str(out)]) == 0
    reasons = {source.split("#")[1]: reason for source, reason in bad_reasons(out).items()}
    assert reasons == {"a": Reason.UNREADABLE.value, "b.flac": Reason.MALFORMED_ROW.value,
                       "c.wav": Reason.UNKNOWN_GENRE.value}
    assert json.loads((out / "summary.json").read_text())["items"] == 3
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  class_path: datamodules.GenreAudioDataModule\n  init_args:\n    root: {synthetic_root}\n")
    assert prepare(["--config", str(config), "--out", str(tmp_path / "cfg"), "--strict"]) == 0


def test_training_skips_and_counts_bad_items(broken_folder: Path) -> None:
    """nan.wav and silent.wav pass the header check at start; reading them fails, so they are replaced and counted."""
    for name in ("corrupt.wav", "empty.wav", "short.wav", "song.m4a"):
        (broken_folder / "gugak" / name).unlink()
    for streaming in (False, True):
        dm = GenreAudioDataModule(root=str(broken_folder), duration=0.64, val_fraction=0.0, batch_size=7,
                                  streaming=streaming, num_workers=2)
        with pytest.warns(UserWarning, match="latin1.wav: text that is not UTF-8"):
            dm.setup("fit")
        batches = list(dm.train_dataloader())
        for batch in batches:
            assert batch["mel"].isfinite().all() and (batch["mel"] > -11.5).any(dim=(1, 2)).all()
        # nan.wav and silent.wav, counted in the workers (map-style may meet one twice: a bad item is replaced by
        # the next index, which can be the other bad one)
        assert dm.bad_items_seen == 2 if streaming else dm.bad_items_seen in (2, 3, 4)
        assert sum(int(b["skipped"].sum()) for b in batches) == dm.bad_items_seen  # as the samples say
        assert sum(len(b["path"]) for b in batches) == 14  # bad items are replaced: batches keep their size


def test_a_source_without_valid_items_fails_at_start(tmp_path: Path) -> None:
    root = tmp_path / "bad" / "gugak"
    root.mkdir(parents=True)
    (root / "a.wav").write_bytes(b"junk")
    sf.write(root / "b.wav", np.zeros(100, dtype=np.float32), 16000)
    with pytest.raises(DataSourceError, match="No readable audio in the data source"):
        GenreAudioDataModule(root=str(tmp_path / "bad")).setup("fit")
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "s.tar", "w") as tar:
        data = wav_bytes(np.zeros(16000, dtype=np.float32))
        info = tarfile.TarInfo("x.wav")
        info.size = len(data)
        tar.addfile(info, __import__("io").BytesIO(data))
    with pytest.raises(DataSourceError, match=r"No valid item in the data source \(1 tried"):
        GenreAudioDataModule(shards=str(shards / "s.tar")).setup("fit")
    assert prepare(["--shards", str(shards / "s.tar"), "--out", str(tmp_path / "o")]) == 1


def test_a_manifest_prepared_from_a_relative_root_reads_back(synthetic_root: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests resolve relative paths against their own folder, so `prepare --root data` must not write paths
    relative to the current folder."""
    shutil.copytree(synthetic_root, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert prepare(["--root", "data", "--out", "prepared"]) == 0
    clean = tmp_path / "prepared" / "manifest.clean.csv"
    assert prepare(["--manifest", str(clean), "--out", "again", "--strict"]) == 0
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["items"] == 15
    monkeypatch.chdir(tmp_path / "prepared")  # and from another folder, as `fit --data.init_args.manifest` reads it
    dm = GenreAudioDataModule(manifest="manifest.clean.csv", duration=0.64)
    dm.setup("fit")
    assert sum(len(items) for items in dm.splits.values()) == 15 and not dm.bad_items


def test_caption_sidecars_in_either_spelling(synthetic_root: Path, tmp_path: Path) -> None:
    from datamodules.manifest import scan_genre_folders

    root = tmp_path / "genres"
    shutil.copytree(synthetic_root, root)
    first, second, third = sorted((root / "gugak").glob("*.wav"))[:3]
    first.with_suffix(".txt").write_text("by stem")
    second.with_name(second.name + ".txt").write_text("by file name")
    third.with_suffix(".txt").write_text("one")
    third.with_name(third.name + ".txt").write_text("another")
    problems: list = []
    items = {Path(i.path).name: i.given_caption for i in scan_genre_folders(root, "{caption}", problems)}
    assert items[first.name] == "by stem" and items[second.name] == "by file name"
    assert third.name not in items and [p.reason for p in problems] == [Reason.TWO_CAPTIONS]
