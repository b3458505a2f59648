"""The one way files and folders are published: complete or not at all, and an error loses nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from datamodules.atomic_files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_publishable,
    staged_directory,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_single_files_are_replaced_whole_with_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    atomic_write_json(target, {"kad": 1.5, "genre": "국악"})
    assert target.read_text(encoding="utf-8") == json.dumps({"kad": 1.5, "genre": "국악"}, indent=2,
                                                            ensure_ascii=False) + "\n"
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(target) == 0o666 & ~umask  # not mkstemp's private 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


@pytest.mark.parametrize("mode", ["folder", "files"])
def test_a_staged_folder_appears_complete_and_an_error_changes_nothing(tmp_path: Path, mode: str) -> None:
    final = tmp_path / "out"
    with staged_directory(final, mode=mode) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "a.txt").write_text("1")
        (staging / "b.txt").write_text("2")
        assert not final.exists()  # nothing is visible while building
    assert (final / "sub" / "a.txt").read_text() == "1" and (final / "b.txt").read_text() == "2"
    with pytest.raises(RuntimeError, match="interrupted"):
        with staged_directory(final, mode=mode) as staging:
            (staging / "b.txt").write_text("changed")
            raise RuntimeError("interrupted")
    assert (final / "b.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the staging folder is gone


def test_folder_mode_replaces_the_whole_folder_and_files_mode_keeps_other_files(tmp_path: Path) -> None:
    for mode, kept in (("folder", False), ("files", True)):
        final = tmp_path / mode
        final.mkdir()
        (final / "old.txt").write_text("old")
        with staged_directory(final, mode=mode) as staging:
            (staging / "new.txt").write_text("new")
        assert (final / "old.txt").exists() is kept and (final / "new.txt").read_text() == "new"
        umask = os.umask(0)
        os.umask(umask)
        assert _mode(final / "new.txt") == 0o666 & ~umask
        if mode == "folder":
            assert _mode(final) == 0o777 & ~umask  # not mkdtemp's private 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files", "folder"]


def test_an_occupied_folder_is_refused_before_and_at_publishing(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=f"{final} already holds files"):
        ensure_publishable(final, overwrite=False)
    with pytest.raises(FileExistsError):
        with staged_directory(final, overwrite=False):
            pytest.fail("the block must not run")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is not a folder"):
        ensure_publishable(tmp_path / "file", overwrite=True)
    other = tmp_path / "race"
    with pytest.raises(FileExistsError):
        with staged_directory(other, overwrite=False) as staging:
            (staging / "mine.txt").write_text("mine")
            other.mkdir()
            (other / "theirs.txt").write_text("theirs")  # another process published first
    assert sorted(p.name for p in other.iterdir()) == ["theirs.txt"]
    assert (final / "keep.txt").read_text() == "mine"
