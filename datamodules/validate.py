"""The validator behind ``audioldm-lora prepare``: decode every item of a source, report each bad one with its
reason, and write a clean manifest and a summary (items and hours per genre, sample rates and channels seen)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamodules.bad_items import (
    AudioStats,
    BadItem,
    BadItemError,
    Reason,
    inspect_audio,
)
from datamodules.manifest import AudioItem, write_manifest
from datamodules.sharding import Consumer
from datamodules.sources import DataSource, FolderSource, IndexedSource, ManifestSource
from datamodules.streaming import Record, ShardStream, item_records


@dataclass
class ValidationReport:
    """Good items with what their decode found, and bad items with their reasons."""

    source: dict[str, Any]
    good: list[tuple[AudioItem, AudioStats]] = field(default_factory=list)
    bad: list[BadItem] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Items and hours per genre, sample rates and channel counts seen, bad items per reason."""
        genres: dict[str, dict[str, float]] = defaultdict(lambda: {"items": 0, "hours": 0.0})
        for item, stats in self.good:
            genres[item.genre]["items"] += 1
            genres[item.genre]["hours"] += stats.duration / 3600.0
        return {
            "source": self.source,
            "items": len(self.good),
            "bad_items": len(self.bad),
            "hours": sum(g["hours"] for g in genres.values()),
            "genres": {g: {"items": int(v["items"]), "hours": v["hours"]} for g, v in sorted(genres.items())},
            "sample_rates": dict(sorted(Counter(stats.sample_rate for _, stats in self.good).items())),
            "channels": dict(sorted(Counter(stats.channels for _, stats in self.good).items())),
            "bad_reasons": dict(Counter(bad.reason.value for bad in self.bad).most_common()),
        }

    def markdown(self) -> str:
        """The summary as the console shows it."""
        summary = self.summary()
        lines = [
            f"{summary['items']} good item(s), {summary['hours']:.3f} h; {summary['bad_items']} bad item(s)",
            "",
            "| genre | items | hours |",
            "|---|---:|---:|",
        ]
        lines += [f"| {g} | {v['items']} | {v['hours']:.4f} |" for g, v in summary["genres"].items()]
        lines += [
            "",
            "sample rates seen: " + (", ".join(f"{r} Hz x{n}" for r, n in summary["sample_rates"].items()) or "none"),
            "channel counts seen: " + (", ".join(f"{c} ch x{n}" for c, n in summary["channels"].items()) or "none"),
        ]
        if summary["bad_reasons"]:
            lines.append("bad items by reason: " + ", ".join(f"{r}: {n}" for r, n in summary["bad_reasons"].items()))
        return "\n".join(lines)


def source_records(source: DataSource, problems: list[BadItem]) -> Iterator[Record]:
    """Every record of a source in its natural order: items with their audio, or bad items."""
    if isinstance(source, IndexedSource):
        yield from item_records(source.items(problems), source.read)
        return
    from datamodules.webdataset_source import WebDatasetSource

    assert isinstance(source, WebDatasetSource)
    yield from ShardStream(source).plan(Consumer(), seed=0, epoch=0, shuffle=False).records


def validate_source(
    source: DataSource,
    genres: list[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> ValidationReport:
    """Decode every item of ``source`` fully and check it (:func:`~datamodules.bad_items.inspect_audio`); items of
    genres outside ``genres`` (when given) are bad with :attr:`Reason.UNKNOWN_GENRE`.

    ``progress(done, total)`` is called after each item (``total``: the item count of a listed source, None for a
    stream), and at the end with ``done == total``.
    """
    report = ValidationReport(source.describe())
    problems: list[BadItem] = []
    allowed = set(genres) if genres else None
    if isinstance(source, IndexedSource):
        items = source.items(problems)
        records, total = item_records(items, source.read), len(items)
    else:
        records, total = source_records(source, problems), None
    done = 0
    for done, record in enumerate(records, start=1):
        _check_record(record, allowed, report)
        if progress is not None:
            progress(done, total)
    if progress is not None and total != done:
        progress(done, done)
    report.bad = problems + report.bad  # rows rejected while reading come first, in file order
    return report


def _check_record(record: Record, allowed: set[str] | None, report: ValidationReport) -> None:
    """Add one record to ``report``: good with its stats, or bad with its reason."""
    if isinstance(record, BadItem):
        report.bad.append(record)
        return
    item, audio = record
    if allowed is not None and item.genre not in allowed:
        report.bad.append(BadItem(item.path, Reason.UNKNOWN_GENRE, f"{item.genre!r} is not in {sorted(allowed)}"))
        return
    try:
        report.good.append((item, inspect_audio(audio, name=item.path, start=item.start, end=item.end)))
    except BadItemError as error:
        report.bad.append(error.item)


def write_validation(report: ValidationReport, output: str | Path, source: DataSource) -> dict[str, Path]:
    """Write ``summary.json``, ``bad_items.csv`` and the clean manifest into ``output``.

    For file sources the clean manifest (``manifest.clean.csv``) is a manifest to train on
    (``data.manifest``). Hugging Face rows and WebDataset samples are not files, so for them the same columns
    are written as a listing (``items.clean.csv``) that names each good item.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    file_backed = isinstance(source, (FolderSource, ManifestSource))
    manifest = write_manifest(output / ("manifest.clean.csv" if file_backed else "items.clean.csv"),
                              [item for item, _ in report.good], files=file_backed)
    bad_path = output / "bad_items.csv"
    with bad_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "reason", "detail"])
        writer.writerows([bad.source, bad.reason.value, bad.detail] for bad in report.bad)
    summary_path = output / "summary.json"
    summary_path.write_text(json.dumps(report.summary(), indent=2) + "\n", encoding="utf-8")
    return {"manifest": manifest, "bad_items": bad_path, "summary": summary_path}
