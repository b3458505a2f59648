"""Builders of small data sources for the data tests: wav bytes, WebDataset shards, a saved Hugging Face dataset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from audioldm_demo.synthetic import synthesize_clip

GENRES = ("boom_bap", "gugak", "chiptune")


def wav_bytes(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    """Encode a waveform as a wav file in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def clip(genre: str, index: int, duration: float = 1.0) -> np.ndarray:
    """A synthetic clip of ``genre`` (deterministic per index)."""
    return synthesize_clip(genre, duration, seed=1000 + index)


def write_shards(directory: Path, shards: int, per_shard: int, duration: float = 1.0) -> list[str]:
    """``shards`` tar shards of ``per_shard`` samples each (wav + json), genres cycling; returns the keys."""
    import webdataset as wds

    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for shard in range(shards):
        with wds.TarWriter(str(directory / f"train-{shard:03d}.tar")) as writer:
            for i in range(per_shard):
                n = shard * per_shard + i
                genre = GENRES[n % len(GENRES)]
                key = f"clip{n:04d}"
                meta = {"caption": f"{genre.replace('_', ' ')} take {n}", "genre": genre}
                writer.write({"__key__": key, "wav": wav_bytes(clip(genre, n, duration)), "json": json.dumps(meta).encode()})
                keys.append(key)
    return keys


def write_hf_dataset(directory: Path, train: int = 6, validation: int = 2, bad_rows: bool = False) -> Path:
    """A DatasetDict (train, validation) with an Audio column (bytes), captions and a ClassLabel genre, saved with
    ``save_to_disk``. ``bad_rows`` adds a row with undecodable audio and one without a genre."""
    import datasets
    from datasets import Audio, ClassLabel

    datasets.disable_progress_bars()
    parts = {}
    n = 0
    for split, count in (("train", train), ("validation", validation)):
        rows: dict[str, list] = {"audio": [], "caption": [], "genre": []}
        for _ in range(count):
            genre = n % len(GENRES)
            rows["audio"].append({"bytes": wav_bytes(clip(GENRES[genre], n)), "path": f"song_{n:03d}.wav"})
            rows["caption"].append(f"take {n}" if n % 2 else None)
            rows["genre"].append(genre)
            n += 1
        if bad_rows and split == "train":
            rows["audio"].append({"bytes": b"not audio", "path": "broken.wav"})
            rows["caption"].append("broken")
            rows["genre"].append(0)
            rows["audio"].append({"bytes": wav_bytes(clip("gugak", 99)), "path": "nogenre.wav"})
            rows["caption"].append("no genre")
            rows["genre"].append(-1)
        part = datasets.Dataset.from_dict(rows)
        part = part.cast_column("audio", Audio(decode=False)).cast_column("genre", ClassLabel(names=list(GENRES)))
        parts[split] = part
    datasets.DatasetDict(parts).save_to_disk(str(directory))
    return directory
