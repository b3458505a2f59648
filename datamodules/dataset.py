"""Map-style dataset of fixed-length AudioLDM log-mel clips cut from audio-caption items, and the per-item recipe
(decode a crop -> check it -> log-mel) that the streaming path shares."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from datamodules.audio import AudioInfo, AudioSource, audio_info, load_audio
from datamodules.bad_items import BadItemError, Reason, check_clip
from datamodules.errors import DataSourceError
from datamodules.features import (
    SAMPLE_RATE,
    log_mel_spectrogram,
    normalize_waveform,
    num_frames,
    num_samples,
    pad_or_crop,
)
from datamodules.manifest import AudioItem
from datamodules.ordering import SampleKey, crop_generator, key_index

log = logging.getLogger(__name__)

MAX_SUBSTITUTES = 32  # consecutive bad items tolerated before a map-style read gives up (a broken source)
WARN_FIRST = 5  # bad items logged per process; the rest are only counted


def clip_to_log_mel(waveform: torch.Tensor, duration: float) -> torch.Tensor:
    """A decoded 16 kHz clip -> normalised, padded to ``duration`` -> log-mel [duration * 100, 64]."""
    waveform = pad_or_crop(normalize_waveform(waveform), num_samples(duration))
    return log_mel_spectrogram(waveform, frames=num_frames(duration))


def crop_offset(item: AudioItem, info: AudioInfo, duration: float, random_crop: bool, generator: torch.Generator | None = None) -> float:
    """Start of the crop in seconds: uniform over the segment when random, else the segment's start."""
    end = info.duration if item.end is None else min(item.end, info.duration)
    slack = max(0.0, end - item.start - duration)
    if random_crop and slack > 0:
        return item.start + float(torch.rand((), generator=generator).item()) * slack
    return item.start


def read_clip(
    item: AudioItem,
    audio: AudioSource,
    duration: float,
    random_crop: bool,
    generator: torch.Generator | None = None,
    info: AudioInfo | None = None,
    offset: float | None = None,
) -> dict[str, Any]:
    """One training sample: ``{"mel": [frames, 64], "caption", "genre", "path", "offset"}``.

    ``info`` saves a header read when the caller has it; ``offset`` fixes the crop start (the latent cache).

    Raises:
        AudioDecodeError: the file cannot be decoded or holds NaN/inf samples.
        BadItemError: the segment is empty, shorter than 0.5 s, or the crop is silence.
    """
    info = info or audio_info(audio, name=item.path)
    end = info.duration if item.end is None else min(item.end, info.duration)
    if end - item.start <= 0:
        raise BadItemError(item.path, Reason.ZERO_LENGTH, f"no samples after {item.start} s")
    if offset is None:
        offset = crop_offset(item, info, duration, random_crop, generator)
    length = min(duration, max(end - offset, 0.0))
    waveform = load_audio(audio, SAMPLE_RATE, offset=offset, duration=length, name=item.path)
    check_clip(waveform, end - item.start, item.path)
    return {
        "mel": clip_to_log_mel(waveform, duration),
        "caption": item.caption,
        "genre": item.genre,
        "path": item.path,
        "offset": offset,
    }


class BadItemCounter:
    """Counts bad items met while loading, over all dataloader workers, and logs the first few per process.

    The count lives in shared memory created before the workers start, so the main process reads the workers'
    counts exactly (also for samples a ``drop_last`` batch leaves out, which a per-sample count would lose).
    """

    def __init__(self) -> None:
        self._count = multiprocessing.Value("q", 0)
        self._logged = 0

    @property
    def seen(self) -> int:
        """Bad items met so far, all workers together."""
        return int(self._count.value)

    def note(self, item: AudioItem | None, error: Exception) -> None:
        """Count one bad item; log its reason while fewer than :data:`WARN_FIRST` have been logged here."""
        with self._count.get_lock():
            self._count.value += 1
        self._logged += 1
        if self._logged <= WARN_FIRST:
            where = item.path if item is not None else "stream"
            log.warning("Skipping a bad item (%s): %s%s", where, error,
                        " (further bad items are only counted)" if self._logged == WARN_FIRST else "")


class AudioClipDataset(Dataset):
    """One item per source segment: a random crop (training) or the crop at its start (validation, test).

    Each sample is ``{"mel": [frames, 64], "caption", "genre", "path", "offset", "skipped"}`` where ``offset`` is
    the crop's start in seconds within the file and ``skipped`` the number of bad items passed over to produce it
    (a bad item is replaced by the next good one, so batches keep their size and the epoch goes on; the data
    module sums ``skipped`` into ``bad_items_seen``).
    """

    def __init__(
        self,
        items: list[AudioItem],
        infos: list[AudioInfo] | None,
        duration: float,
        random_crop: bool,
        reader: Callable[[AudioItem], AudioSource] | None = None,
    ) -> None:
        """
        Args:
            items: the segments, one sample each.
            infos: their files' headers when already read (setup checks files), else ``None`` (read per item).
            duration: clip length in seconds.
            random_crop: random crops (training) or the segment's start (evaluation).
            reader: the item's audio (path or bytes) from its source; default: ``item.path``.
        """
        if infos is not None and len(items) != len(infos):
            raise ValueError("items and infos must align")
        self.items = items
        self.infos = infos
        self.duration = duration
        self.random_crop = random_crop
        self.reader = reader
        self.bad = BadItemCounter()

    def __len__(self) -> int:
        return len(self.items)

    def crop_offset(self, index: int) -> float:
        """Start of the crop in seconds for item ``index`` (reads the header when not known)."""
        item = self.items[index]
        info = self.infos[index] if self.infos is not None else audio_info(self._audio(item), name=item.path)
        return crop_offset(item, info, self.duration, self.random_crop)

    def _audio(self, item: AudioItem) -> AudioSource:
        return self.reader(item) if self.reader is not None else item.path

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        """The sample of an index, or of an :class:`~datamodules.ordering.SampleKey` (whose seed draws the crop)."""
        index, generator = key_index(key), crop_generator(key)
        last_error: Exception | None = None
        for attempt in range(min(MAX_SUBSTITUTES, len(self.items))):
            item = self.items[(index + attempt) % len(self.items)]
            info = self.infos[(index + attempt) % len(self.items)] if self.infos is not None else None
            try:
                sample = read_clip(item, self._audio(item), self.duration, self.random_crop, generator, info=info)
            except Exception as error:  # any failure of one item must not end the epoch; counted and logged
                self.bad.note(item, error)
                last_error = error
                continue
            sample["skipped"] = attempt
            return sample
        raise DataSourceError(
            f"{min(MAX_SUBSTITUTES, len(self.items))} consecutive items from index {index} are bad (last: "
            f"{last_error}). The source looks broken: run `audioldm-lora prepare` on it."
        ) from last_error


class PromptDataset(Dataset):
    """Prompts and seeds for ``predict``: ``{"prompt": str, "seed": int}`` per item."""

    def __init__(self, prompts: list[str], seeds: list[int]) -> None:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        self.prompts = prompts
        self.seeds = seeds

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"prompt": self.prompts[index], "seed": self.seeds[index]}
