"""WebDataset tar shards as a streamed source: local paths, brace patterns (``shards-{000..099}.tar``) or URLs.

A sample is the group of tar members sharing a key: one audio member (``.flac``, ``.wav``, ``.mp3``, ``.ogg``) and
its metadata as ``.json`` (``caption``, ``genre``, optional ``start``, ``end``) or as ``.txt`` (caption) and
``.cls`` (genre) members. Reading the tars is the ``webdataset`` library's job; this module turns its samples into
items and reports bad ones with the shared reasons.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import webdataset as wds
from webdataset.tariterators import base_plus_ext

from datamodules.bad_items import BadItem, BadItemError, Reason
from datamodules.captions import CaptionPolicy
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem, parse_seconds, text_field
from datamodules.sources import DataSource

AUDIO_MEMBERS = ("flac", "wav", "mp3", "ogg")
METADATA_MEMBERS = ("json", "txt", "cls", "genre")
_MAX_METADATA_BYTES = 1 << 20  # metadata members larger than this are not read by the index pass


def expand_shards(shards: str | list[str]) -> list[str]:
    """Brace patterns and ``::``-separated lists -> shard URLs; local shards must exist."""
    patterns = [shards] if isinstance(shards, str) else list(shards)
    urls = [url for pattern in patterns for url in wds.shardlists.expand_urls(pattern)]
    if not urls:
        raise DataSourceError(f"`data.shards` {shards!r} names no shard.")
    missing = [url for url in urls if is_local(url) and not Path(local_path(url)).is_file()]
    if missing:
        raise DataSourceError(
            f"{len(missing)} WebDataset shard(s) do not exist (first: {missing[0]}). Check `data.shards`."
        )
    return urls


def is_local(url: str) -> bool:
    """True for a plain path or a ``file:`` URL (shards that can be listed and stat-ed)."""
    scheme = urlparse(url).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def local_path(url: str) -> str:
    """The filesystem path of a local shard URL."""
    return urlparse(url).path if url.startswith("file:") else url


def _decode_text(data: bytes, member: str, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadItemError(where, Reason.NOT_UTF8, f"member .{member}") from None


def genre_from_members(members: dict[str, Any]) -> str | None:
    """The genre a sample's metadata names (``.json`` ``genre``, else ``.genre``, else ``.cls``), best effort:
    ``None`` when there is none or it cannot be read (:meth:`WebDatasetSource.to_record` reports why)."""
    try:
        if "json" in members:
            meta = json.loads(members["json"].decode("utf-8"))
            if isinstance(meta, dict) and isinstance(meta.get("genre"), str) and meta["genre"].strip():
                return meta["genre"].strip()
        for member in ("genre", "cls"):
            if member in members:
                return members[member].decode("utf-8").strip() or None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


class WebDatasetSource(DataSource):
    """Tar shards read as a stream (never indexed): the data can be larger than a disk or a node."""

    kind = "webdataset"
    indexed = False

    def __init__(self, shards: str | list[str], captions: CaptionPolicy) -> None:
        super().__init__(captions)
        self.shards = shards
        self.urls = expand_shards(shards)
        self._index: dict[str, list[tuple[str, str | None]]] = {}

    def describe(self) -> dict[str, Any]:
        urls = [str(Path(local_path(u)).resolve()) if is_local(u) else u for u in self.urls]
        return {"kind": self.kind, "shards": urls, "captions": vars(self.captions)}

    def files_to_watch(self) -> list[str]:
        return [local_path(u) for u in self.urls if is_local(u)]

    def index(self, url: str) -> list[tuple[str, str | None]] | None:
        """``(key, genre)`` of each sample of a local shard in stream order, from the tar headers and the small
        metadata members only (audio is skipped); ``None`` for a remote or damaged shard.

        It tells each rank and worker its sample count in advance (equal counts keep DDP ranks in step) and lists
        the genres without decoding audio.
        """
        if not is_local(url):
            return None
        if url not in self._index:
            entries: list[tuple[str, str | None]] = []
            current: str | None = None
            members: dict[str, bytes] = {}
            try:
                with tarfile.open(local_path(url), "r:*") as tar:
                    for member in tar:
                        if not member.isfile() or Path(member.name).name.startswith("__"):
                            continue
                        key, suffix = base_plus_ext(member.name)
                        if key is None:
                            continue
                        if key != current:
                            if current is not None:
                                entries.append((current, genre_from_members(members)))
                            current, members = key, {}
                        suffix = suffix.lower()
                        if suffix in METADATA_MEMBERS and member.size <= _MAX_METADATA_BYTES:
                            handle = tar.extractfile(member)
                            members[suffix] = handle.read() if handle is not None else b""
                if current is not None:
                    entries.append((current, genre_from_members(members)))
            except (tarfile.TarError, OSError):
                return None  # a damaged shard: its samples are counted as bad when streamed
            self._index[url] = entries
        return self._index[url]

    def raw_samples(self, urls: Iterable[str], on_error: Callable[[BadItem], None]) -> Iterator[dict[str, Any]]:
        """The library's sample dicts (``__key__``, ``__url__``, one entry per member) from ``urls`` in order.

        A damaged shard or member does not stop the stream: it is passed to ``on_error`` and reading goes on.
        """

        def handler(error: Exception) -> bool:
            url = next((a for a in reversed(error.args) if isinstance(a, str) and a in set(self.urls)), "shard")
            on_error(BadItem(url, Reason.UNREADABLE, f"tar error: {error.args[0] if error.args else error}"))
            return True

        yield from wds.tarfile_samples(({"url": url} for url in urls), handler=handler)

    def to_record(self, sample: dict[str, Any]) -> tuple[AudioItem, bytes]:
        """One library sample -> (item, encoded audio); raises :class:`BadItemError` naming ``shard#key``."""
        key, url = sample["__key__"], sample["__url__"]
        audio_member = next((m for m in AUDIO_MEMBERS if m in sample), None)
        where = f"{url}#{key}" + (f".{audio_member}" if audio_member else "")
        if audio_member is None:
            others = sorted(m for m in sample if not m.startswith("__") and m not in METADATA_MEMBERS)
            if others:
                raise BadItemError(where, Reason.UNSUPPORTED, f"members {others}; audio must be {AUDIO_MEMBERS}")
            raise BadItemError(where, Reason.UNREADABLE, "no audio member")
        meta: dict[str, Any] = {}
        if "json" in sample:
            try:
                meta = json.loads(_decode_text(sample["json"], "json", where))
            except json.JSONDecodeError as error:
                raise BadItemError(where, Reason.MALFORMED_ROW, f".json is not JSON: {error.msg}") from None
            if not isinstance(meta, dict):
                raise BadItemError(where, Reason.MALFORMED_ROW, ".json must hold an object")
        given = meta.get("caption", meta.get("text"))
        if given is None and "txt" in sample:
            given = _decode_text(sample["txt"], "txt", where)
        genre = meta.get("genre")
        for member in ("genre", "cls"):
            if genre is None and member in sample:
                genre = _decode_text(sample[member], member, where)
        given = text_field(given, "caption", where)
        genre = text_field(genre, "genre", where)
        if not genre:
            raise BadItemError(where, Reason.UNKNOWN_GENRE, "no genre in .json, .genre or .cls")
        start = parse_seconds(meta.get("start"), "start", where) or 0.0
        end = parse_seconds(meta.get("end"), "end", where)
        caption = self.captions.render(genre, given, where)
        return AudioItem(where, caption, genre, start, end, None, given), sample[audio_member]
