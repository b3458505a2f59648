"""The latent cache: VAE posterior parameters and the text conditioning computed once, stored in safetensors shards.

This is the one place where data meets frozen model parts, and it meets them only as functions handed in
(:class:`Encoders`): nothing here imports model code. ``audioldm-lora cache`` builds the functions from the model and
calls :func:`build_latent_cache`; the data module trains from
:class:`datamodules.latent_cache_reader.LatentCacheDataset`.

The text side stores whatever fields the backbone's conditioning is made of (:class:`TextLayout`: AudioLDM's one
``text_embeds`` vector, or variable-length streams with their masks, each row kept at its own length); the index
records the layout and the backbone kind, so a cache for another backbone is refused before training.

Keys make staleness impossible to miss: a latent is keyed by the audio's content hash, the crop offset, every
preprocessing setting and the VAE's weight fingerprint; a text entry by the caption, the text encoder's fingerprint
and the layout. Changing any of them is a cache miss. The index also records each audio file's size and mtime (so
training notices an edited file without re-hashing) and the source's identity and split settings.

What the cache gives up: training crops come from ``crops_per_file`` fixed, evenly spaced crops per file (one of
them drawn per epoch) instead of a fresh random crop each time; the VAE posterior is still sampled every step.
Validation and test use the crop at the segment start, as without the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from safetensors.torch import save
from torch.nn.utils.rnn import pad_sequence

from datamodules.atomic_files import atomic_write_bytes, atomic_write_json
from datamodules.audio import AudioSource, audio_info
from datamodules.bad_items import BadItem, BadItemError, Reason
from datamodules.dataset import read_clip
from datamodules.features import (
    F_MAX,
    F_MIN,
    HOP_LENGTH,
    LOG_FLOOR,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WIN_LENGTH,
)
from datamodules.manifest import AudioItem

CACHE_FORMAT = 1
INDEX_NAME = "index.json"
SplitRecord = Union[tuple[str, AudioItem, AudioSource], BadItem]


def preprocessing_settings(duration: float, crops_per_file: int) -> dict[str, Any]:
    """Every setting that shapes a cached latent (a change is a miss)."""
    return {
        "recipe": "audioldm-train-logmel",  # docs/mel-recipe.md: reflect pad 432, |STFT|, Slaney mel, log clamp
        "normalize": "mean0-peak0.5",
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "hop_length": HOP_LENGTH,
        "win_length": WIN_LENGTH,
        "n_mels": N_MELS,
        "f_min": F_MIN,
        "f_max": F_MAX,
        "log_floor": LOG_FLOOR,
        "duration": float(duration),
        "crops_per_file": int(crops_per_file),
    }


@dataclass(frozen=True)
class TextLayout:
    """The fields a cache stores per caption, and which of them are variable-length streams with their masks.

    A stream field holds ``[B, L, D]`` with its mask ``[B, L]``; each row is stored at its own length (the mask's
    last token) and padded back to the batch's longest row when read (``LatentCacheDataset.collate``).
    """

    fields: tuple[str, ...] = ("text_embeds",)
    streams: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, model: dict[str, Any]) -> "TextLayout":
        """The layout an index's ``model`` records (caches written before layouts: AudioLDM's ``text_embeds``)."""
        return cls(tuple(model.get("text_fields") or ("text_embeds",)), dict(model.get("text_streams") or {}))

    def record(self) -> dict[str, Any]:
        """What the index's ``model`` records."""
        return {"text_fields": list(self.fields), "text_streams": dict(self.streams)}

    def row(self, tensors: dict[str, torch.Tensor], index: int) -> tuple[torch.Tensor, ...]:
        """Row ``index`` of each field, streams and masks cut to the row's own length."""
        values = {name: tensors[name][index] for name in self.fields}
        for stream, mask in self.streams.items():
            present = values[mask].nonzero()
            length = int(present.max()) + 1 if present.numel() else 0
            values[stream], values[mask] = values[stream][:length], values[mask][:length]
        return tuple(values[name] for name in self.fields)


@dataclass(frozen=True)
class Encoders:
    """The frozen model parts the cache needs, as functions (so that data code never imports the model).

    ``encode_audio``: log-mel ``[B, frames, 64]`` -> (posterior mean, posterior log-variance) ``[B, C, h, w]``,
    unscaled. ``encode_text``: captions -> the layout's fields (``[B, ...]`` each). ``model``: the model's identity,
    with ``audio_id`` and ``text_id`` weight fingerprints (see :func:`fingerprint_module`), the backbone kind and
    the text layout (:meth:`TextLayout.record`).
    """

    encode_audio: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    encode_text: Callable[[list[str]], dict[str, torch.Tensor]]
    model: dict[str, Any]

    @property
    def layout(self) -> TextLayout:
        """The text fields this model's conditioning is stored as."""
        return TextLayout.of(self.model)


def fingerprint_module(module: torch.nn.Module) -> str:
    """A hash of a module's state (names, dtypes, shapes, values): equal weights, equal fingerprint."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_stat(path: str | Path) -> list[int]:
    """``[size, mtime_ns]``: the cheap test of whether a file changed."""
    stat = os.stat(path)
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def content_hash(audio: AudioSource) -> str:
    """Hash of the encoded audio (file bytes), the part of a latent key that says which audio it came from."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(audio, (bytes, bytearray)):
        digest.update(audio)
    else:
        with open(audio, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _key(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()


def crop_offsets(item: AudioItem, file_duration: float, duration: float, crops: int) -> list[float]:
    """``crops`` evenly spaced crop starts over the segment (the first at its start; fewer when it is short)."""
    end = file_duration if item.end is None else min(item.end, file_duration)
    slack = max(0.0, end - item.start - duration)
    if crops <= 1 or slack <= 0:
        return [item.start]
    return [round(item.start + slack * i / (crops - 1), 6) for i in range(crops)]


class _ShardWriter:
    """Buffers rows of named tensors and writes them as safetensors shards with their keys in the metadata."""

    def __init__(self, directory: Path, prefix: str, names: tuple[str, ...], rows_per_shard: int) -> None:
        self.directory, self.prefix, self.names, self.rows = directory, prefix, names, rows_per_shard
        self.refs: dict[str, list[Any]] = {}
        self._keys: list[str] = []
        self._tensors: list[tuple[torch.Tensor, ...]] = []
        taken = [int(p.stem.rsplit("-", 1)[-1]) for p in directory.glob(f"{prefix}-*.safetensors")
                 if p.stem.rsplit("-", 1)[-1].isdigit()]
        self._next = max(taken, default=-1) + 1

    def add(self, key: str, tensors: tuple[torch.Tensor, ...]) -> None:
        self._keys.append(key)
        self._tensors.append(tuple(t.detach().float().cpu() for t in tensors))
        if len(self._keys) >= self.rows:
            self.flush()

    def flush(self) -> None:
        if not self._keys:
            return
        name = f"{self.prefix}-{self._next:06d}.safetensors"
        self._next += 1
        stacked = {n: _stacked([row[i] for row in self._tensors]) for i, n in enumerate(self.names)}
        atomic_write_bytes(self.directory / name, save(stacked, metadata={"keys": json.dumps(self._keys)}))
        for row, key in enumerate(self._keys):
            self.refs[key] = [name, row]
        self._keys, self._tensors = [], []


def _stacked(rows: list[torch.Tensor]) -> torch.Tensor:
    """Rows stacked; rows of a variable-length stream (or its mask) padded with zeros to the longest first."""
    return pad_sequence(rows, batch_first=True).contiguous()


@dataclass
class CacheReport:
    """What a cache build did."""

    latents_reused: int = 0
    latents_computed: int = 0
    texts_reused: int = 0
    texts_computed: int = 0
    items: dict[str, int] = field(default_factory=dict)
    bad: list[BadItem] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the console."""
        items = ", ".join(f"{n} {s}" for s, n in self.items.items())
        return (
            f"latent cache: items {items or 'none'}; latents {self.latents_computed} computed, "
            f"{self.latents_reused} reused; text embeddings {self.texts_computed} computed, {self.texts_reused} "
            f"reused; {len(self.bad)} bad item(s) left out"
        )


def load_cache_index(directory: str | Path) -> dict[str, Any] | None:
    """The cache's index, or ``None`` when there is none (or it is another format)."""
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        return None
    index = json.loads(path.read_text(encoding="utf-8"))
    return index if index.get("format") == CACHE_FORMAT else None


def build_latent_cache(
    directory: str | Path,
    records: Iterable[SplitRecord],
    encoders: Encoders,
    duration: float,
    crops_per_file: int,
    identity: dict[str, Any],
    watch_files: list[str] | None = None,
    batch_size: int = 8,
    rows_per_shard: int = 512,
    progress: Callable[[int, int | None], None] | None = None,
) -> CacheReport:
    """Encode every ``(split, item, audio)`` record (training items at ``crops_per_file`` crops, the others at
    their start) and write the cache. Entries whose key is already stored are reused; unreferenced shards are
    deleted; the index is replaced only when everything is written.

    Args:
        directory: the cache folder (created).
        records: the data module's records; :class:`BadItem` records are reported, not cached.
        encoders: the frozen model parts as functions.
        duration: clip length in seconds.
        crops_per_file: crops cached per training file.
        identity: the source and split settings the splits came from (checked when training from the cache).
        watch_files: source files (manifest, shards, tables) whose change makes the cache stale.
        batch_size: clips per encoder call.
        rows_per_shard: rows per safetensors shard.
        progress: called as ``progress(done, total)`` after each record (``total``: ``len(records)`` when
            ``records`` has a length, else None), and at the end with ``done == total``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    settings = preprocessing_settings(duration, crops_per_file)
    old = load_cache_index(directory) or {}
    old_latents, old_texts, old_files = old.get("latents", {}), old.get("texts", {}), old.get("files", {})
    latent_writer = _ShardWriter(directory, "latents", ("latent_mean", "latent_logvar"), rows_per_shard)
    layout = encoders.layout
    text_writer = _ShardWriter(directory, "texts", layout.fields, rows_per_shard)
    report = CacheReport()
    latents: dict[str, Any] = {}
    texts: dict[str, Any] = {}
    files: dict[str, Any] = {}
    items: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    audio_queue: list[tuple[str, torch.Tensor]] = []
    text_queue: list[tuple[str, str]] = []

    def flush_audio() -> None:
        if audio_queue:
            mean, logvar = encoders.encode_audio(torch.stack([mel for _, mel in audio_queue]))
            for row, (key, _) in enumerate(audio_queue):
                latent_writer.add(key, (mean[row], logvar[row]))
            audio_queue.clear()

    def flush_text() -> None:
        if text_queue:
            fields = encoders.encode_text([caption for _, caption in text_queue])
            missing = [name for name in layout.fields if name not in fields]
            if missing:
                raise ValueError(f"The text encoder gave {sorted(fields)}, not the layout's fields {missing}.")
            for row, (key, _) in enumerate(text_queue):
                text_writer.add(key, layout.row(fields, row))
            text_queue.clear()

    for record in _reporting(records, progress):
        if isinstance(record, BadItem):
            report.bad.append(record)
            continue
        split, item, audio = record
        try:
            if isinstance(audio, (bytes, bytearray)):
                audio_hash = content_hash(audio)
            else:
                stat = file_stat(audio)
                known = files.get(str(audio)) or old_files.get(str(audio))
                audio_hash = known["hash"] if known and known["stat"] == stat else content_hash(audio)
                files[str(audio)] = {"stat": stat, "hash": audio_hash}
            info = audio_info(audio, name=item.path)
            offsets = crop_offsets(item, info.duration, duration, crops_per_file if split == "train" else 1)
            crops = []
            for offset in offsets:
                key = _key("latent", audio_hash, offset, item.end, settings, encoders.model.get("audio_id"))
                if key in latents:
                    pass
                elif key in old_latents and (directory / old_latents[key][0]).is_file():
                    latents[key] = old_latents[key]
                    report.latents_reused += 1
                else:
                    try:
                        mel = read_clip(item, audio, duration, random_crop=False, info=info, offset=offset)["mel"]
                    except BadItemError as error:
                        if error.item.reason is Reason.SILENT and len(offsets) > 1:
                            continue  # a silent stretch of a longer file: keep the other crops
                        raise
                    audio_queue.append((key, mel))
                    latents[key] = None  # filled from the writer's refs
                    report.latents_computed += 1
                crops.append({"offset": offset, "latent": key})
            if not crops:
                raise BadItemError(item.path, Reason.SILENT, "every cached crop is silence")
        except Exception as error:  # one bad file is reported and left out, never the end of the build
            bad = error.item if isinstance(error, BadItemError) else BadItem(item.path, Reason.UNREADABLE, str(error))
            report.bad.append(bad)
            continue
        text = _key("text", item.caption, encoders.model.get("text_id"), layout.record())
        if text not in texts:
            if text in old_texts and (directory / old_texts[text][0]).is_file():
                texts[text] = old_texts[text]
                report.texts_reused += 1
            else:
                text_queue.append((text, item.caption))
                texts[text] = None
                report.texts_computed += 1
        items[split].append({"path": item.path, "caption": item.caption, "genre": item.genre, "text": text, "crops": crops})
        if len(audio_queue) >= batch_size:
            flush_audio()
        if len(text_queue) >= batch_size:
            flush_text()
    flush_audio()
    flush_text()
    latent_writer.flush()
    text_writer.flush()
    latents = {k: v if v is not None else latent_writer.refs[k] for k, v in latents.items()}
    texts = {k: v if v is not None else text_writer.refs[k] for k, v in texts.items()}
    index = {
        "format": CACHE_FORMAT,
        "settings": settings,
        "identity": identity,
        "model": encoders.model,
        "watch": {path: file_stat(path) for path in (watch_files or [])},
        "files": files,
        "latents": latents,
        "texts": texts,
        "items": items,
    }
    atomic_write_json(directory / INDEX_NAME, index, indent=None)
    referenced = {ref[0] for ref in latents.values()} | {ref[0] for ref in texts.values()}
    for shard in list(directory.glob("latents-*.safetensors")) + list(directory.glob("texts-*.safetensors")):
        if shard.name not in referenced:
            shard.unlink()
    report.items = {split: len(entries) for split, entries in items.items()}
    return report


def _reporting(records: Iterable[SplitRecord], progress: Callable[[int, int | None], None] | None
               ) -> Iterator[SplitRecord]:
    """``records``, calling ``progress(done, total)`` once each one is handled and ``progress(n, n)`` at the end."""
    if progress is None:
        yield from records
        return
    total = len(records) if isinstance(records, Sized) else None
    done = 0
    for record in records:
        yield record
        done += 1
        progress(done, total)
    if total != done:
        progress(done, done)
