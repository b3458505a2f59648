"""Map-style dataset of fixed-length AudioLDM log-mel clips cut from audio-caption items."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from datamodules.audio import AudioInfo, load_audio
from datamodules.features import SAMPLE_RATE, log_mel_spectrogram, normalize_waveform, num_frames, num_samples, pad_or_crop
from datamodules.manifest import AudioItem


def clip_to_log_mel(waveform: torch.Tensor, duration: float) -> torch.Tensor:
    """A decoded 16 kHz clip -> normalised, padded to ``duration`` -> log-mel [duration * 100, 64]."""
    waveform = pad_or_crop(normalize_waveform(waveform), num_samples(duration))
    return log_mel_spectrogram(waveform, frames=num_frames(duration))


class AudioClipDataset(Dataset):
    """One item per source segment: a random crop (training) or the crop at its start (validation, test).

    Each sample is ``{"mel": [frames, 64], "caption", "genre", "path", "offset"}`` where ``offset`` is the crop's
    start in seconds within the file.
    """

    def __init__(
        self, items: list[AudioItem], infos: list[AudioInfo], duration: float, random_crop: bool
    ) -> None:
        if len(items) != len(infos):
            raise ValueError("items and infos must align")
        self.items = items
        self.infos = infos
        self.duration = duration
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.items)

    def crop_offset(self, index: int) -> float:
        """Start of the crop in seconds: uniform over the segment when random, else the segment's start."""
        item, info = self.items[index], self.infos[index]
        end = info.duration if item.end is None else min(item.end, info.duration)
        slack = max(0.0, end - item.start - self.duration)
        if self.random_crop and slack > 0:
            return item.start + float(torch.rand(()).item()) * slack
        return item.start

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        offset = self.crop_offset(index)
        end = self.infos[index].duration if item.end is None else item.end
        length = min(self.duration, max(end - offset, 0.0))
        waveform = load_audio(item.path, SAMPLE_RATE, offset=offset, duration=length)
        return {
            "mel": clip_to_log_mel(waveform, self.duration),
            "caption": item.caption,
            "genre": item.genre,
            "path": item.path,
            "offset": offset,
        }


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
