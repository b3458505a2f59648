"""Start-up screening of a source: the cheap checks the data module runs in ``setup``, before any loader exists.

Why at start-up: a source whose files are all unreadable (a wrong folder, a broken mount, shards of another
format) should fail in ``setup`` with a message that names ``audioldm-lora prepare``, not at training step N inside
a worker. These are the cheap checks only (a header read per file, or decoding records until one is good); the
full scan of every sample is the validator's job (``datamodules.validate``).
"""

from __future__ import annotations

from collections.abc import Iterator

from datamodules.audio import AudioDecodeError, AudioInfo, audio_info
from datamodules.bad_items import MIN_DURATION, BadItem, BadItemError, Reason
from datamodules.dataset import read_clip
from datamodules.errors import DataSourceError
from datamodules.manifest import AudioItem
from datamodules.streaming import Record


def check_files(items: list[AudioItem], bad_items: list[BadItem]) -> tuple[list[AudioItem], dict[str, AudioInfo]]:
    """Read every file's header once: unreadable, empty and too short files are left out and appended to
    ``bad_items``. Returns the kept items and the header of each kept file, by path."""
    infos: dict[str, AudioInfo | None] = {}
    kept = []
    for item in items:
        if item.path not in infos:
            try:
                info = audio_info(item.path)
                if info.frames == 0:
                    raise BadItemError(item.path, Reason.ZERO_LENGTH, "the file holds no samples")
                if info.duration < MIN_DURATION:
                    raise BadItemError(item.path, Reason.TOO_SHORT, f"{info.duration:.3f} s")
                infos[item.path] = info
            except AudioDecodeError as error:
                bad_items.append(BadItem(item.path, Reason.UNREADABLE, str(error)))
                infos[item.path] = None
            except BadItemError as error:
                bad_items.append(error.item)
                infos[item.path] = None
        if infos[item.path] is not None:
            kept.append(item)
    return kept, {path: info for path, info in infos.items() if info is not None}


def probe(records: Iterator[Record], duration: float) -> None:
    """Decode records until one is good; a source without any fails here, at start, not at step N."""
    tried = 0
    for record in records:
        tried += 1
        if isinstance(record, BadItem):
            continue
        item, audio = record
        try:
            read_clip(item, audio, duration, random_crop=False)
            return
        except Exception:  # noqa: BLE001, S112 - any failure means "not this one"; the next record is tried
            continue
    raise DataSourceError(
        f"No valid item in the data source ({tried} tried, every one bad). Run `audioldm-lora prepare` on it "
        "to see each item's reason."
    )
