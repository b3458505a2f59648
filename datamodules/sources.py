"""Data sources: where audio-caption items come from, behind one small interface.

Indexed sources (a folder per genre, a CSV/JSONL manifest, a Hugging Face dataset) list their items up front and
read one on demand, so they serve both the map-style and the streaming path. A streamed source (WebDataset tar
shards) can only be iterated. Every source gives the same thing per item: an :class:`AudioItem` and the audio as a
path or encoded bytes, which :mod:`datamodules.audio` decodes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

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


class FolderSource(IndexedSource):
    """``root/<genre>/*.wav|flac|mp3|ogg`` with optional sidecar ``.txt`` captions (GTZAN layout)."""

    kind = "folder"

    def __init__(self, root: str | Path, captions: CaptionPolicy) -> None:
        super().__init__(captions)
        self.root = Path(root)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root.resolve()), "captions": vars(self.captions)}

    def items(self, problems: list[BadItem]) -> list[AudioItem]:
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


def make_source(
    captions: CaptionPolicy,
    root: str | None = None,
    manifest: str | None = None,
    hf_dataset: str | None = None,
    shards: str | list[str] | None = None,
    hf_options: dict[str, Any] | None = None,
) -> DataSource:
    """The one source that is configured; raises :class:`DataSourceError` unless exactly one is given."""
    check_one_source(root, manifest, hf_dataset, shards)
    if root:
        return FolderSource(root, captions)
    if manifest:
        return ManifestSource(manifest, captions)
    if hf_dataset:
        from datamodules.hf_source import (
            HFSource,  # `datasets` is imported only when it is used
        )

        return HFSource(hf_dataset, captions, **(hf_options or {}))
    from datamodules.webdataset_source import WebDatasetSource

    return WebDatasetSource(shards, captions)  # type: ignore[arg-type]
