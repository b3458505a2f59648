"""The reading side of the latent cache: check that a cache matches the run, and serve its items to training.

Kept apart from the builder (:mod:`datamodules.latent_cache`), which encodes and writes: training only opens the
index and the safetensors shards (lazily, one handle per shard and process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, default_collate

from datamodules.errors import DataSourceError
from datamodules.latent_cache import TextLayout, file_stat, preprocessing_settings
from datamodules.ordering import SampleKey, crop_generator, key_index


def check_cache(index: dict[str, Any] | None, directory: str | Path, duration: float, crops_per_file: int,
                identity: dict[str, Any]) -> dict[str, Any]:
    """Raise :class:`DataSourceError` (saying how to rebuild) unless the cache matches this configuration and
    its audio and source files are unchanged; returns the index."""
    rebuild = "Rebuild it with `audioldm-lora cache --config <your config>`."
    if index is None:
        raise DataSourceError(f"No latent cache at {directory}. {rebuild}")
    settings = preprocessing_settings(duration, crops_per_file)
    if index["settings"] != settings:
        changed = sorted(k for k in settings if index["settings"].get(k) != settings[k])
        raise DataSourceError(f"The latent cache at {directory} was built with other settings ({changed}). {rebuild}")
    if index["identity"] != identity:
        changed = sorted(k for k in identity if index["identity"].get(k) != identity[k])
        raise DataSourceError(f"The latent cache at {directory} was built from another source or split ({changed}). {rebuild}")
    stale = [path for path, entry in {**index["watch"], **{p: e["stat"] for p, e in index["files"].items()}}.items()
             if not Path(path).is_file() or file_stat(path) != entry]
    if stale:
        raise DataSourceError(
            f"{len(stale)} file(s) changed since the latent cache at {directory} was built (first: {stale[0]}). {rebuild}"
        )
    return index


class LatentCacheDataset(Dataset):
    """Cached items of one split: ``{"latent_mean", "latent_logvar", <the layout's text fields>, "caption", "genre",
    "path", "offset", "skipped"}`` (the module's latent-cache batch contract; AudioLDM's text field is
    ``text_embeds``). Training draws one of the file's cached crops at random; evaluation always takes the first (the
    segment start). Batch them with :meth:`collate`, which pads variable-length streams."""

    def __init__(self, directory: str | Path, index: dict[str, Any], split: str, random_crop: bool) -> None:
        self.directory = Path(directory)
        self.entries = index["items"][split]
        self.latents = index["latents"]
        self.texts = index["texts"]
        self.layout = TextLayout.of(index["model"])
        self.random_crop = random_crop
        self._handles: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def genres(self) -> list[str]:
        """Genre of each entry (for balancing)."""
        return [entry["genre"] for entry in self.entries]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}  # safetensors handles are per process; workers open their own
        return state

    def _rows(self, ref: list[Any], names: tuple[str, ...]) -> list[torch.Tensor]:
        shard, row = ref
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.directory / shard), framework="pt")
        handle = self._handles[shard]
        return [handle.get_slice(name)[row : row + 1][0] for name in names]

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        """The cached sample of an index, or of an :class:`~datamodules.ordering.SampleKey` (whose seed picks the
        crop)."""
        entry = self.entries[key_index(key)]
        crops = entry["crops"]
        if self.random_crop and len(crops) > 1:
            crop = crops[int(torch.randint(len(crops), (), generator=crop_generator(key)))]
        else:
            crop = crops[0]
        mean, logvar = self._rows(self.latents[crop["latent"]], ("latent_mean", "latent_logvar"))
        text = self._rows(self.texts[entry["text"]], self.layout.fields)
        stored = dict(zip(self.layout.fields, text))
        # A shard pads its rows to its longest; each row is served at its own length (its mask's last token).
        rows = self.layout.row({name: value[None] for name, value in stored.items()}, 0)
        return {
            "latent_mean": mean,
            "latent_logvar": logvar,
            **dict(zip(self.layout.fields, rows)),
            "caption": entry["caption"],
            "genre": entry["genre"],
            "path": entry["path"],
            "offset": crop["offset"],
            "skipped": 0,
        }

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """``default_collate``, with each stream field and its mask padded with zeros to the batch's longest row."""
        padded = [name for pair in self.layout.streams.items() for name in pair]
        batch = default_collate([{k: v for k, v in item.items() if k not in padded} for item in items])
        batch.update({name: pad_sequence([item[name] for item in items], batch_first=True) for name in padded})
        return batch
