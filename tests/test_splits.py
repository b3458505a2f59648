"""Train, validation and test splits: held out by file, per genre, deterministic, and never a copy of another."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamodules import GenreAudioDataModule
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem
from datamodules.splits import SPLIT_NAMES, held_out_counts, split_by_file


def _items(files_per_genre: dict[str, int], crops: int = 1) -> list[AudioItem]:
    return [AudioItem(f"{genre}/{n}.wav", "c", genre, start=float(c))
            for genre, count in files_per_genre.items() for n in range(count) for c in range(crops)]


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 12), min_size=1),
    st.sampled_from([0.0, 0.1, 0.2, 0.3]),
    st.sampled_from([0.0, 0.1, 0.25]),
    st.integers(0, 3),
    st.integers(1, 3),
)
def test_splits_are_disjoint_by_file_stratified_and_deterministic(files_per_genre, val_fraction, test_fraction,
                                                                  seed, crops) -> None:
    items = _items(files_per_genre, crops)
    plan = split_by_file(items, val_fraction, test_fraction, seed)
    files = {name: {item.path for item in plan.items[name]} for name in SPLIT_NAMES}
    assert not files["train"] & files["val"] and not files["train"] & files["test"] and not files["val"] & files["test"]
    assert sum(len(plan.items[name]) for name in SPLIT_NAMES) == len(items)  # every crop of a file on its side
    for genre, count in files_per_genre.items():
        per_split = [sum(path.startswith(f"{genre}/") for path in files[name]) for name in SPLIT_NAMES]
        assert per_split[0] >= 1  # every genre trains
        assert (per_split[1], per_split[2]) == held_out_counts(count, val_fraction, test_fraction)
        if count >= 3 and val_fraction and test_fraction:
            assert per_split[1] >= 1 and per_split[2] >= 1  # a genre with enough files is in both held-out splits
    again = split_by_file(list(reversed(items)), val_fraction, test_fraction, seed)
    assert {n: {i.path for i in again.items[n]} for n in SPLIT_NAMES} == files  # input order does not matter


def test_held_out_counts_round_up_and_leave_training_a_file() -> None:
    assert held_out_counts(10, 0.1, 0.1) == (1, 1)
    assert held_out_counts(3, 0.1, 0.1) == (1, 1)
    assert held_out_counts(2, 0.1, 0.1) == (1, 0)  # test gives way first
    assert held_out_counts(1, 0.1, 0.1) == (0, 0)
    assert held_out_counts(20, 0.2, 0.0) == (4, 0)


def test_adding_a_genre_moves_no_file_of_another() -> None:
    before = split_by_file(_items({"a": 9, "b": 7}), 0.2, 0.1, seed=0).items
    after = split_by_file(_items({"a": 9, "b": 7, "c": 5}), 0.2, 0.1, seed=0).items
    for name in SPLIT_NAMES:
        assert {i.path for i in after[name] if i.genre != "c"} == {i.path for i in before[name]}


def test_marked_rows_keep_their_split() -> None:
    items = _items({"a": 6}) + [AudioItem("held/x.wav", "c", "a", split="test")]
    plan = split_by_file(items, 0.0, 0.0, seed=0)
    assert [i.path for i in plan.items["test"]] == ["held/x.wav"] and not plan.items["val"]


def test_fractions_that_leave_nothing_to_train_on_are_refused() -> None:
    with pytest.raises(DataSourceError, match="val_fraction \\+ test_fraction must be below 1"):
        split_by_file(_items({"a": 4}), 0.6, 0.5, seed=0)
    with pytest.raises(DataSourceError, match="test_fraction must be in"):
        GenreAudioDataModule(root="unused", test_fraction=-0.1)


def test_test_is_never_a_copy_of_validation(synthetic_root: Path) -> None:
    """The folder recipe gets a held-out test split; with no test files `lightning test` stops with what to do."""
    dm = GenreAudioDataModule(root=str(synthetic_root), duration=0.64)
    dm.setup("test")
    test, val = ({i.path for i in dm.splits[name]} for name in ("test", "val"))
    assert test and not test & val and {i.genre for i in dm.splits["test"]} == set(dm.genres)
    without = GenreAudioDataModule(root=str(synthetic_root), duration=0.64, test_fraction=0.0)
    with pytest.warns(UserWarning, match="There is no test split"):
        without.setup("test")
    with pytest.raises(DataSourceError, match="There is no test split.*Set data.init_args.test_fraction"):
        without.test_dataloader()


def test_a_genre_without_held_out_files_is_named(tmp_path: Path, synthetic_root: Path) -> None:
    import shutil

    root = tmp_path / "genres"
    shutil.copytree(synthetic_root, root)
    for extra in sorted((root / "gugak").glob("*.wav"))[2:]:
        extra.unlink()  # gugak: 2 files -> 1 train, 1 val, no test
    dm = GenreAudioDataModule(root=str(root), duration=0.64)
    with pytest.warns(UserWarning, match=r"Genre\(s\) \['gugak'\] have no test file"):
        dm.setup("fit")


def test_a_folder_root_beside_a_manifest_with_splits_warns_that_they_are_not_read(tmp_path: Path,
                                                                                   synthetic_root: Path) -> None:
    """build-real-music marks its reference clips split=test in manifest.csv; a root pointed at the folder would
    train on them, so the data module says so and what to set."""
    import shutil

    root = tmp_path / "genres"
    shutil.copytree(synthetic_root, root)
    (root / "manifest.csv").write_text("path,caption,genre,split\n")
    with pytest.warns(UserWarning, match=r"has a split column, which data.init_args.root does not read.*set "
                                         r"data.init_args.manifest=.*manifest.csv and data.init_args.root=null"):
        GenreAudioDataModule(root=str(root), duration=0.64).setup("fit")
