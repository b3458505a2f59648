"""Data sources: where audio-caption items come from, behind one small interface.

Indexed sources (a folder per genre, a CSV/JSONL manifest, a Hugging Face dataset) list their items up front and
read one on demand, so they serve both the map-style and the streaming path. A streamed source (WebDataset tar
shards) can only be iterated. Every source gives the same thing per item: an :class:`AudioItem` and the audio as a
path or encoded bytes, which :mod:`datamodules.audio` decodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from datamodules.audio import AudioSource
from datamodules.bad_items import BadItem
from datamodules.captions import CaptionPolicy
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem, read_manifest, scan_genre_folders


class DataSource(ABC):
    """A configured source of audio-caption items."""

    kind: str = "source"
    indexed: bool = True

    def __init__(self, captions: CaptionPolicy) -> None:
        self.captions = captions

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-able identity of the source and its caption policy (reports, cache keys)."""

    def files_to_watch(self) -> list[str]:
        """Files whose change means the source changed beyond its audio (manifests, shards, arrow tables)."""
        return []


class IndexedSource(DataSource):
    """A source that lists its items and reads any one of them."""

    @abstractmethod
    def items(self, problems: list[BadItem]) -> list[AudioItem]:
        """Every good item; bad rows and files are appended to ``problems`` (never raised)."""

    def read(self, item: AudioItem) -> AudioSource:
        """The item's audio: a path (files) or encoded bytes (datasets)."""
        return item.path


def first_line(path: Path) -> str:
    """The first line of a text file (a manifest's header), without reading the rest."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return handle.readline()


class FolderSource(IndexedSource):
    """``root/<genre>/*.wav|flac|mp3|ogg`` with optional sidecar ``.txt`` captions (GTZAN layout)."""

    kind = "folder"

    def __init__(self, root: str | Path, captions: CaptionPolicy) -> None:
        super().__init__(captions)
        self.root = Path(root)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root.resolve()), "captions": vars(self.captions)}

    def items(self, problems: list[BadItem]) -> list[AudioItem]:
        manifest = self.root / "manifest.csv"  # build-real-music writes one beside its genre folders, with a split
        if manifest.is_file() and "split" in first_line(manifest):
            rank_zero_warn(
                f"{manifest} has a split column, which data.init_args.root does not read (a folder splits by "
                f"fraction, and takes captions from sidecar .txt files or the fallback). To keep its held-out rows "
                f"out of training, set data.init_args.manifest={manifest} and data.init_args.root=null.")
        return scan_genre_folders(self.root, self.captions, problems)


class ManifestSource(IndexedSource):
    """A CSV or JSON-lines manifest: ``path, caption, genre`` and optional ``start, end, split``."""

    kind = "manifest"

    def __init__(self, manifest: str | Path, captions: CaptionPolicy) -> None:
        super().__init__(captions)
        self.manifest = Path(manifest)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "manifest": str(self.manifest.resolve()), "captions": vars(self.captions)}

    def files_to_watch(self) -> list[str]:
        return [str(self.manifest)]

    def items(self, problems: list[BadItem]) -> list[AudioItem]:
        return read_manifest(self.manifest, self.captions, problems)


def check_one_source(
    root: str | None, manifest: str | None, hf_dataset: str | None, shards: str | list[str] | None
) -> None:
    """Raise :class:`DataSourceError` unless exactly one data source is given (naming those that are)."""
    given = {name: value for name, value in
             {"root": root, "manifest": manifest, "hf_dataset": hf_dataset, "shards": shards}.items() if value}
    if len(given) != 1:
        raise DataSourceError(
            "Give exactly one data source: `data.root` (folder per genre), `data.manifest` (CSV or JSONL), "
            f"`data.hf_dataset` (Hugging Face) or `data.shards` (WebDataset tars); got {sorted(given) or 'none'}."
        )


@dataclass(frozen=True)
class SourceSettings:
    """Which data source to read and how: the source keys of ``data.init_args`` with the data module's defaults.

    The one place these keys and defaults live: :class:`datamodules.datamodule.GenreAudioDataModule` and
    ``audioldm-lora prepare`` both build their source from it (:meth:`from_mapping` reads a config's data section,
    the module's hyper-parameters or a tool's flags, and ignores other keys).
    """

    root: str | None = None
    manifest: str | None = None
    hf_dataset: str | None = None
    shards: str | list[str] | None = None
    hf_split: str | None = None
    hf_config: str | None = None
    audio_column: str = "audio"
    caption_column: str = "caption"
    genre_column: str = "genre"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SourceSettings:
        """The settings named in ``values``; a key that is absent or None keeps its default."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if values.get(f.name) is not None})

    def hf_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`datamodules.hf_source.HFSource` besides the dataset."""
        return {"split": self.hf_split, "config": self.hf_config, "audio_column": self.audio_column,
                "caption_column": self.caption_column, "genre_column": self.genre_column}


def make_source(captions: CaptionPolicy, settings: SourceSettings) -> DataSource:
    """The one source that is configured; raises :class:`DataSourceError` unless exactly one is given."""
    check_one_source(settings.root, settings.manifest, settings.hf_dataset, settings.shards)
    if settings.root:
        return FolderSource(settings.root, captions)
    if settings.manifest:
        return ManifestSource(settings.manifest, captions)
    if settings.hf_dataset:
        from datamodules.hf_source import HFSource  # `datasets` is imported only when it is used

        return HFSource(settings.hf_dataset, captions, **settings.hf_options())
    from datamodules.webdataset_source import WebDatasetSource

    return WebDatasetSource(settings.shards, captions)  # type: ignore[arg-type]
