"""Audio-caption items from a folder-per-genre tree or a CSV/JSONL manifest, with errors that name file and row.

Every reader has two modes. Strict (``problems=None``): the first bad row raises :class:`DataSourceError` naming
the file, the row and the fix. Lenient (``problems=[]``): each bad row or file is appended to ``problems`` as a
:class:`~datamodules.bad_items.BadItem` and skipped, so that the data module and the validator
(``audioldm-lora prepare``) read a whole source even when some of it is broken. Problems with the source itself
(a missing file, a header without ``path``) always raise.
"""

from __future__ import annotations

import csv
import io
import os
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamodules.atomic_files import atomic_write_text
from datamodules.bad_items import BadItem, BadItemError, Reason
from datamodules.captions import CaptionPolicy, as_policy, render_caption
from datamodules.clip_folder import AUDIO_EXTENSIONS
from datamodules.errors import DataSourceError

__all__ = [
    "MANIFEST_COLUMNS",
    "AudioItem",
    "DataSourceError",
    "read_csv_manifest",
    "read_jsonl_manifest",
    "read_manifest",
    "render_caption",
    "scan_genre_folders",
    "write_manifest",
]

MANIFEST_COLUMNS = ("path", "caption", "genre", "start", "end", "split")
SPLITS = ("train", "val", "test")
# Files that may sit beside audio in a genre folder without being reported as an unsupported format.
_COMPANION_EXTENSIONS = {".txt", ".json", ".jsonl", ".csv", ".md", ".yaml", ".yml", ".lab"}


@dataclass(frozen=True)
class AudioItem:
    """One source file (or a segment of it) with its caption and genre.

    ``caption`` is the training caption (after the caption policy); ``given_caption`` is the caption as the source
    gave it, which is what a manifest written back (``prepare``) records. ``index`` is the row of an indexed source
    (a Hugging Face dataset) and ``None`` for files.
    """

    path: str
    caption: str
    genre: str
    start: float = 0.0
    end: float | None = None
    split: str | None = None
    given_caption: str = ""
    index: int | None = None


class ProblemSink:
    """Strict (raise at the first problem) or lenient (record it and go on) handling of bad items."""

    def __init__(self, problems: list[BadItem] | None) -> None:
        self.problems = problems

    def report(self, error: BadItemError) -> None:
        """Record the problem, or raise it as a :class:`DataSourceError` in strict mode."""
        if self.problems is None:
            item = error.item
            detail = f"{item.detail} ({item.reason.value})" if item.detail else item.reason.value
            raise DataSourceError(f"{item.source}: {detail}. Fix or delete it.") from None
        self.problems.append(error.item)


def _is_surrogate_escaped(text: str) -> bool:
    """True when ``text`` was decoded with ``errors="surrogateescape"`` from bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def parse_seconds(value: Any, column: str, where: str) -> float | None:
    """A number of seconds from a manifest cell (text or JSON number); empty is ``None``."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise BadItemError(where, Reason.MALFORMED_ROW, f"column {column!r} must be a number of seconds, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadItemError(
            where, Reason.MALFORMED_ROW, f"column {column!r} must be a number of seconds, got {value!r}"
        ) from None


def text_field(value: Any, column: str, where: str) -> str:
    """A stripped text cell; rejects non-text values and bytes that were not UTF-8 (see ``surrogateescape``)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadItemError(where, Reason.MALFORMED_ROW, f"column {column!r} must be text, got {value!r}")
    if _is_surrogate_escaped(value):
        raise BadItemError(where, Reason.NOT_UTF8, f"column {column!r} holds bytes that are not UTF-8")
    return value.strip()


def row_to_item(row: dict[str, Any], where: str, base_dir: Path, captions: CaptionPolicy) -> AudioItem:
    """One manifest row (CSV or JSONL, already parsed) -> an item; raises :class:`BadItemError` naming the row."""
    path = text_field(row.get("path"), "path", where)
    genre = text_field(row.get("genre"), "genre", where)
    given = text_field(row.get("caption"), "caption", where)
    if not path:
        raise BadItemError(where, Reason.MALFORMED_ROW, "empty path")
    if not genre:
        raise BadItemError(where, Reason.UNKNOWN_GENRE, "empty genre")
    resolved = Path(path) if Path(path).is_absolute() else base_dir / path
    if resolved.suffix.lower() not in AUDIO_EXTENSIONS:
        raise BadItemError(where, Reason.UNSUPPORTED, f"{path}: supported extensions are {', '.join(AUDIO_EXTENSIONS)}")
    start = parse_seconds(row.get("start"), "start", where) or 0.0
    end = parse_seconds(row.get("end"), "end", where)
    if start < 0:
        raise BadItemError(where, Reason.MALFORMED_ROW, f"start ({start}) must not be negative")
    if end is not None and end <= start:
        raise BadItemError(where, Reason.MALFORMED_ROW, f"end ({end}) must be greater than start ({start})")
    split = text_field(row.get("split"), "split", where) or None
    if split not in (None, *SPLITS):
        raise BadItemError(where, Reason.MALFORMED_ROW, f"split must be train, val or test (or empty), got {split!r}")
    caption = captions.render(genre, given, where)
    return AudioItem(str(resolved), caption, genre, start, end, split, given)


def check_root(root: str | Path) -> None:
    """Raise :class:`DataSourceError` naming ``data.init_args.root`` unless it is a folder."""
    if not Path(root).is_dir():
        raise DataSourceError(
            f"Data root {root} (data.init_args.root) does not exist or is not a directory; point it at a folder "
            "that holds one subfolder of audio files per genre."
        )


def caption_sidecar(audio: Path) -> Path:
    """The caption file of ``audio``: ``song.txt`` beside ``song.wav``, else ``song.wav.txt`` (both spellings are in
    use). Both present with different text is an error: which caption was meant is unknown.

    Raises:
        BadItemError: both sidecars exist and differ.
    """
    by_stem, by_name = audio.with_suffix(".txt"), audio.with_name(audio.name + ".txt")
    if by_stem.is_file() and by_name.is_file() and by_stem.read_bytes() != by_name.read_bytes():
        raise BadItemError(str(audio), Reason.TWO_CAPTIONS, f"{by_stem.name} and {by_name.name}; keep one")
    return by_stem if by_stem.is_file() or not by_name.is_file() else by_name


def scan_genre_folders(
    root: str | Path, caption_template: str | CaptionPolicy = "{caption}", problems: list[BadItem] | None = None
) -> list[AudioItem]:
    """Items from ``root/<genre>/*.(wav|flac|mp3|ogg)`` (GTZAN layout).

    A sidecar ``song.txt`` or ``song.wav.txt`` beside ``song.wav`` is its caption (:func:`caption_sidecar`;
    ``{caption}`` in the template); without one the
    caption comes from the policy's fallback. In lenient mode, files with other extensions are reported as an
    unsupported format (text companions such as ``.txt`` and ``.json`` are not).
    """
    root = Path(root)
    captions = as_policy(caption_template)
    sink = ProblemSink(problems)
    check_root(root)
    items: list[AudioItem] = []
    found_any = False
    for genre_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(genre_dir.rglob("*")):
            if path.name.startswith(".") or not path.is_file():
                continue
            suffix = path.suffix.lower()
            if suffix not in AUDIO_EXTENSIONS:
                if problems is not None and suffix not in _COMPANION_EXTENSIONS:
                    found_any = True
                    sink.report(BadItemError(str(path), Reason.UNSUPPORTED, f"extension {suffix or '(none)'}"))
                continue
            found_any = True
            try:
                sidecar = caption_sidecar(path)
                try:
                    given = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
                except UnicodeDecodeError:
                    raise BadItemError(str(path), Reason.NOT_UTF8, f"sidecar caption {sidecar.name}") from None
                caption = captions.render(genre_dir.name, given, str(path))
            except BadItemError as error:
                sink.report(error)
                continue
            items.append(AudioItem(str(path), caption, genre_dir.name, given_caption=given))
    if not found_any:
        raise DataSourceError(
            f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {root}/<genre>/. Put each genre's clips in "
            "a folder named after the genre, or give a CSV manifest with `data.manifest`."
        )
    return items


def read_csv_manifest(
    manifest: str | Path, caption_template: str | CaptionPolicy = "{caption}", problems: list[BadItem] | None = None
) -> list[AudioItem]:
    """Items from a CSV with columns ``path, caption, genre`` and optional ``start, end, split``.

    Relative paths are resolved against the manifest's folder. Bad rows raise :class:`DataSourceError` naming the
    row (strict) or are recorded in ``problems`` (lenient).
    """
    manifest = Path(manifest)
    captions = as_policy(caption_template)
    sink = ProblemSink(problems)
    if not manifest.is_file():
        raise DataSourceError(f"Manifest {manifest} does not exist.")
    # surrogateescape keeps a row with non-UTF-8 bytes readable, so that only that row is reported, not the file.
    with manifest.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if any(_is_surrogate_escaped(c) for c in header):
            raise DataSourceError(f"{manifest}: the header is not UTF-8 text; save the manifest as UTF-8.")
        missing = [c for c in ("path", "genre") if c not in header]
        if missing:
            raise DataSourceError(
                f"{manifest}: missing column(s) {missing}; the header must hold path, caption, genre "
                f"(optional: start, end, split); found {header}."
            )
        unknown = [c for c in header if c not in MANIFEST_COLUMNS]
        if unknown:
            raise DataSourceError(f"{manifest}: unknown column(s) {unknown}; allowed: {list(MANIFEST_COLUMNS)}.")
        items: list[AudioItem] = []
        rows = 0
        for row in reader:
            rows += 1
            where = f"{manifest} row {reader.line_num}"
            try:
                if None in row or any(value is None for value in row.values()):
                    count = len(header) + len(row.get(None) or []) - sum(v is None for v in row.values())
                    raise BadItemError(where, Reason.MALFORMED_ROW, f"{count} fields, the header has {len(header)}")
                items.append(row_to_item(row, where, manifest.parent, captions))
            except BadItemError as error:
                sink.report(error)
    if not rows:
        raise DataSourceError(f"{manifest} has a header but no rows.")
    return items


def read_jsonl_manifest(
    manifest: str | Path, caption_template: str | CaptionPolicy = "{caption}", problems: list[BadItem] | None = None
) -> list[AudioItem]:
    """Items from a JSON-lines file: one object per line with ``path, caption, genre`` and optional
    ``start, end, split`` (other keys are ignored, as exports often carry ids and durations)."""
    manifest = Path(manifest)
    captions = as_policy(caption_template)
    sink = ProblemSink(problems)
    if not manifest.is_file():
        raise DataSourceError(f"Manifest {manifest} does not exist.")
    items: list[AudioItem] = []
    rows = 0
    for line_no, raw in enumerate(manifest.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        rows += 1
        where = f"{manifest} line {line_no}"
        try:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadItemError(where, Reason.NOT_UTF8, "the line holds bytes that are not UTF-8") from None
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                raise BadItemError(where, Reason.MALFORMED_ROW, f"not JSON: {error.msg}") from None
            if not isinstance(row, dict):
                raise BadItemError(where, Reason.MALFORMED_ROW, f"expected an object, got {type(row).__name__}")
            items.append(row_to_item(row, where, manifest.parent, captions))
        except BadItemError as error:
            sink.report(error)
    if not rows:
        raise DataSourceError(f"{manifest} holds no rows.")
    return items


def read_manifest(
    manifest: str | Path, caption_template: str | CaptionPolicy = "{caption}", problems: list[BadItem] | None = None
) -> list[AudioItem]:
    """A CSV (``.csv``) or JSON-lines (``.jsonl``, ``.json``) manifest, chosen by the file's extension."""
    suffix = Path(manifest).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl_manifest(manifest, caption_template, problems)
    return read_csv_manifest(manifest, caption_template, problems)


def write_manifest(path: str | Path, items: Iterable[AudioItem], files: bool = True) -> Path:
    """Write items as a CSV manifest (given captions) that :func:`read_csv_manifest` reads back.

    With ``files`` (items read from files), paths are written absolute: a manifest resolves relative paths against
    its own folder, so a path relative to the current folder (``prepare --root data``) would name nothing once read
    back. Items that are not files (dataset rows, stream samples) keep their names. The file appears only when
    complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(MANIFEST_COLUMNS))
    writer.writeheader()
    for item in items:
        writer.writerow(
            {
                "path": os.path.abspath(item.path) if files else item.path,
                "caption": item.given_caption,
                "genre": item.genre,
                "start": item.start if item.start else "",
                "end": "" if item.end is None else item.end,
                "split": item.split or "",
            }
        )
    atomic_write_text(path, buffer.getvalue())
    return path
