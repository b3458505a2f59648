"""A Hugging Face ``datasets`` dataset (hub id or a directory written by ``save_to_disk``) with an Audio column.

The Audio column is read as its stored bytes/path through the Arrow format, never through ``datasets``' own
decoding: since datasets 4 that decoding needs torchcodec and FFmpeg, and decoding here with soundfile (as every
other source does) keeps one decoder, one resampler and one set of bad-item reasons for all sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datamodules.audio import AudioSource
from datamodules.bad_items import BadItem, BadItemError, Reason
from datamodules.captions import CaptionPolicy
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem, parse_seconds, text_field
from datamodules.sources import IndexedSource

# Split names of a DatasetDict -> the data module's splits (others are split by file like unassigned rows).
_SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val", "test": "test"}


def _is_saved_directory(path: Path) -> bool:
    """True for a directory that ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` wrote."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


class HFSource(IndexedSource):
    """Rows of a Hugging Face dataset as items; the audio of a row is read by its index."""

    kind = "huggingface"

    def __init__(
        self,
        name: str,
        captions: CaptionPolicy,
        split: str | None = None,
        config: str | None = None,
        audio_column: str = "audio",
        caption_column: str = "caption",
        genre_column: str = "genre",
    ) -> None:
        """
        Args:
            name: a directory written by ``save_to_disk`` or a hub id (``load_dataset``; downloads once).
            captions: the caption policy.
            split: one split of the dataset; ``None`` takes every split of a DatasetDict and maps ``train``,
                ``validation``/``val``/``dev`` and ``test`` to the data module's splits.
            config: the hub dataset's configuration name.
            audio_column: the Audio column (or a column of paths or of encoded bytes).
            caption_column: the caption column (optional in the data; the policy's fallback covers it).
            genre_column: the genre column (text or ClassLabel).
        """
        super().__init__(captions)
        self.name = name
        self.split = split
        self.config = config
        self.audio_column = audio_column
        self.caption_column = caption_column
        self.genre_column = genre_column
        self._dataset: Any = None
        self._audio_view: Any = None  # the audio column in Arrow format: rows are read without decoding
        self._row_splits: list[tuple[int, str | None]] = []  # (first row, split) per concatenated part

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": str(Path(self.name).resolve()) if Path(self.name).exists() else self.name,
            "split": self.split,
            "config": self.config,
            "columns": [self.audio_column, self.caption_column, self.genre_column],
            "captions": vars(self.captions),
        }

    def _load(self) -> Any:
        if self._dataset is not None:
            return self._dataset
        import datasets

        path = Path(self.name).expanduser()
        try:
            if _is_saved_directory(path):
                loaded = datasets.load_from_disk(str(path))
                if self.split is not None and isinstance(loaded, datasets.DatasetDict):
                    loaded = loaded[self.split]
            else:
                loaded = datasets.load_dataset(self.name, self.config, split=self.split)
        except KeyError as error:
            raise DataSourceError(f"Hugging Face dataset {self.name!r} has no split {error}.") from None
        except Exception as error:  # hub, network and file errors come in many types
            raise DataSourceError(
                f"Cannot load the Hugging Face dataset {self.name!r}: {error}. Give a directory written by "
                "save_to_disk, or a hub id (online, or cached with HF_DATASETS_OFFLINE=1)."
            ) from error
        if isinstance(loaded, datasets.DatasetDict):
            parts = [(name, loaded[name]) for name in loaded]
        else:
            parts = [(self.split, loaded)]
        first = 0
        for split_name, part in parts:
            self._row_splits.append((first, _SPLIT_NAMES.get(split_name or "")))
            first += len(part)
        dataset = datasets.concatenate_datasets([part for _, part in parts]) if len(parts) > 1 else parts[0][1]
        for column in (self.audio_column, self.genre_column):
            if column not in dataset.column_names:
                raise DataSourceError(
                    f"Hugging Face dataset {self.name!r} has no column {column!r}; columns: {dataset.column_names}. "
                    "Set data.audio_column / data.genre_column."
                )
        self._dataset = dataset
        return dataset

    def files_to_watch(self) -> list[str]:
        return [entry["filename"] for entry in self._load().cache_files]

    def _split_of_row(self, row: int) -> str | None:
        split = None
        for first, name in self._row_splits:
            if row >= first:
                split = name
        return split

    def _column(self, table: pa.Table, name: str) -> list[Any]:
        if name not in table.column_names:
            return [None] * table.num_rows
        return table.column(name).to_pylist()

    def items(self, problems: list[BadItem]) -> list[AudioItem]:
        dataset = self._load()
        table = dataset.with_format("arrow")[:]  # zero-copy view; nothing is decoded
        audio = table.column(self.audio_column)
        if pa.types.is_struct(audio.type):
            audio_paths = pc.struct_field(audio, "path").to_pylist()
        elif pa.types.is_string(audio.type) or pa.types.is_large_string(audio.type):
            audio_paths = audio.to_pylist()
        else:
            audio_paths = [None] * table.num_rows
        genre_feature = dataset.features[self.genre_column]
        genres = self._column(table, self.genre_column)
        captions = self._column(table, self.caption_column)
        starts, ends, splits = (self._column(table, c) for c in ("start", "end", "split"))
        items = []
        for row in range(table.num_rows):
            where = f"{self.name} row {row}"
            path = audio_paths[row] or f"{self.name}[{row}]"
            try:
                genre = genres[row]
                if isinstance(genre, int) and hasattr(genre_feature, "int2str"):
                    genre = genre_feature.int2str(genre) if genre >= 0 else None
                genre = text_field(genre, self.genre_column, where)
                if not genre:
                    raise BadItemError(where, Reason.UNKNOWN_GENRE, "empty genre")
                given = text_field(captions[row], self.caption_column, where)
                start = parse_seconds(starts[row], "start", where) or 0.0
                end = parse_seconds(ends[row], "end", where)
                split = text_field(splits[row], "split", where) or self._split_of_row(row)
                if split not in (None, "train", "val", "test"):
                    raise BadItemError(where, Reason.MALFORMED_ROW, f"split must be train, val or test, got {split!r}")
                caption = self.captions.render(genre, given, where)
            except BadItemError as error:
                problems.append(error.item)
                continue
            items.append(AudioItem(path, caption, genre, start, end, split, given, index=row))
        return items

    def read(self, item: AudioItem) -> AudioSource:
        if item.index is None:
            raise BadItemError(item.path, Reason.UNREADABLE, "not a row of this dataset")
        if self._audio_view is None:
            self._audio_view = self._load().select_columns([self.audio_column]).with_format("arrow")
        cell = self._audio_view[item.index].column(0)[0].as_py()
        if isinstance(cell, dict):
            data, path = cell.get("bytes"), cell.get("path")
        elif isinstance(cell, (bytes, bytearray)):
            data, path = cell, None
        else:
            data, path = None, cell
        if data:
            return bytes(data)
        if path and Path(path).is_file():
            return path
        raise BadItemError(item.path, Reason.UNREADABLE, "the audio cell holds no bytes and no existing file path")
