"""Audio-caption items from a folder-per-genre tree or a CSV manifest, with errors that name file and row."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from datamodules.audio import AUDIO_EXTENSIONS

MANIFEST_COLUMNS = ("path", "caption", "genre", "start", "end", "split")


class DataSourceError(ValueError):
    """A data source that cannot be used; the message names the file (and row) and the fix."""


@dataclass(frozen=True)
class AudioItem:
    """One source file (or a segment of it) with its caption and genre."""

    path: str
    caption: str
    genre: str
    start: float = 0.0
    end: float | None = None
    split: str | None = None


def render_caption(template: str, genre: str, caption: str = "") -> str:
    """Fill a caption template; ``{genre}`` gets spaces for underscores, ``{caption}`` the given caption."""
    try:
        return template.format(genre=genre.replace("_", " "), caption=caption).strip(" ,")
    except KeyError as error:
        raise DataSourceError(
            f"Caption template {template!r} uses the unknown field {error}; only {{genre}} and {{caption}} exist."
        ) from None


def scan_genre_folders(root: str | Path, caption_template: str = "{caption}") -> list[AudioItem]:
    """Items from ``root/<genre>/*.(wav|flac|mp3|ogg)`` (GTZAN layout).

    A sidecar ``<file>.txt`` beside an audio file is its caption (``{caption}`` in the template); without one the
    caption comes from the genre alone.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataSourceError(f"Data root {root} does not exist or is not a directory.")
    items = []
    for genre_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(genre_dir.rglob("*")):
            if path.suffix.lower() not in AUDIO_EXTENSIONS or path.name.startswith("."):
                continue
            sidecar = path.with_suffix(".txt")
            given = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
            template = caption_template if given or "{caption}" not in caption_template else "{genre} music"
            items.append(AudioItem(str(path), render_caption(template, genre_dir.name, given), genre_dir.name))
    if not items:
        raise DataSourceError(
            f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {root}/<genre>/. Put each genre's clips in "
            "a folder named after the genre, or give a CSV manifest with `data.manifest`."
        )
    return items


def _float_or_none(value: str | None, column: str, where: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise DataSourceError(f"{where}: column {column!r} must be a number of seconds, got {value!r}.") from None


def read_csv_manifest(manifest: str | Path, caption_template: str = "{caption}") -> list[AudioItem]:
    """Items from a CSV with columns ``path, caption, genre`` and optional ``start, end, split``.

    Relative paths are resolved against the manifest's folder. Raises :class:`DataSourceError` naming the row.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DataSourceError(f"Manifest {manifest} does not exist.")
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in ("path", "genre") if c not in header]
        if missing:
            raise DataSourceError(
                f"{manifest}: missing column(s) {missing}; the header must hold path, caption, genre "
                f"(optional: start, end, split); found {header}."
            )
        unknown = [c for c in header if c not in MANIFEST_COLUMNS]
        if unknown:
            raise DataSourceError(f"{manifest}: unknown column(s) {unknown}; allowed: {list(MANIFEST_COLUMNS)}.")
        items = []
        for line, row in enumerate(reader, start=2):
            where = f"{manifest} row {line}"
            path = (row.get("path") or "").strip()
            genre = (row.get("genre") or "").strip()
            if not path or not genre:
                raise DataSourceError(f"{where}: empty path or genre. Fill it in or delete the row.")
            resolved = Path(path) if Path(path).is_absolute() else manifest.parent / path
            start = _float_or_none(row.get("start"), "start", where) or 0.0
            end = _float_or_none(row.get("end"), "end", where)
            if end is not None and end <= start:
                raise DataSourceError(f"{where}: end ({end}) must be greater than start ({start}).")
            caption = (row.get("caption") or "").strip()
            template = caption_template if caption or "{caption}" not in caption_template else "{genre} music"
            split = (row.get("split") or "").strip() or None
            if split not in (None, "train", "val", "test"):
                raise DataSourceError(f"{where}: split must be train, val or test (or empty), got {split!r}.")
            items.append(AudioItem(str(resolved), render_caption(template, genre, caption), genre, start, end, split))
    if not items:
        raise DataSourceError(f"{manifest} has a header but no rows.")
    return items
