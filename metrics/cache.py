"""Per-file embedding cache: one ``.npy`` per (file content, embedder), so reference sets are embedded once.

The key is the SHA-256 of the file's bytes, not its path or modification time: renamed or copied clips hit the
cache, and a re-rendered clip at the same path misses it. Entries live under a folder named after the embedder id,
so embeddings of different models (or settings) can never be mixed. Files appear atomically (temp, then rename).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from datamodules.atomic_files import atomic_write_bytes
from datamodules.audio import load_audio
from metrics.checks import EmbeddingError
from metrics.embedders.base import AudioEmbedder

CACHE_ENV = "AUDIOLDM_LORA_EMBEDDING_CACHE"


def default_cache_dir() -> Path:
    """``$AUDIOLDM_LORA_EMBEDDING_CACHE``, else ``$XDG_CACHE_HOME/audioldm-lora/embeddings``, else
    ``~/.cache/audioldm-lora/embeddings``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "audioldm-lora" / "embeddings"


def file_digest(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class EmbeddingCache:
    """``<root>/<embedder folder>/<sha256>.npy``; the folder name is the sanitised embedder id plus its hash."""

    def __init__(self, root: str | Path, embedder_id: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id)[:80]
        self.directory = Path(root) / f"{safe}-{hashlib.sha1(embedder_id.encode()).hexdigest()[:10]}"
        self.embedder_id = embedder_id

    def _path(self, digest: str) -> Path:
        return self.directory / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        """Cached embedding, or None when absent or unreadable (an unreadable entry is recomputed)."""
        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return value if value.ndim == 1 and np.isfinite(value).all() else None

    def put(self, digest: str, embedding: np.ndarray) -> None:
        """Store one embedding ``[D]`` atomically."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(embedding, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._path(digest), buffer.getvalue())


def embed_files(
    paths: Sequence[str | Path],
    embedder: AudioEmbedder,
    cache: EmbeddingCache | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> np.ndarray:
    """Embeddings ``[len(paths), D]`` (float32) of audio files, through ``cache`` when given.

    Files are decoded with :func:`datamodules.audio.load_audio` at the embedder's rate, ``batch_size`` at a time.
    ``progress(done, len(paths))`` is called once the cached files are found and after each embedded batch.

    Raises:
        AudioDecodeError: a file cannot be decoded (the message names it).
        EmbeddingError: the embedder returned NaN/inf for a file (named), or dimensions differ between files.
    """
    embedder.load()
    rows: list[np.ndarray | None] = [None] * len(paths)
    digests = [file_digest(path) for path in paths]
    missing = []
    for index, digest in enumerate(digests):
        cached = cache.get(digest) if cache is not None else None
        if cached is None:
            missing.append(index)
        else:
            rows[index] = cached
    if progress is not None:
        progress(len(paths) - len(missing), len(paths))
    step = batch_size or embedder.batch_size
    for start in range(0, len(missing), step):
        batch = missing[start : start + step]
        clips = [load_audio(paths[i], embedder.sample_rate) for i in batch]
        for index, clip in zip(batch, clips):
            if clip.numel() == 0:
                raise EmbeddingError(f"{paths[index]}: the file holds no audio samples")
        try:
            embeddings = embedder.embed_audio(clips, embedder.sample_rate).cpu().numpy()
        except (EmbeddingError, ValueError):  # find and name the file that fails
            embeddings = np.stack([_embed_one(embedder, paths[i], clip) for i, clip in zip(batch, clips)])
        for index, embedding in zip(batch, embeddings):
            rows[index] = embedding
            if cache is not None:
                cache.put(digests[index], embedding)
        if progress is not None:
            progress(len(paths) - len(missing) + start + len(batch), len(paths))
    dims = {row.shape[0] for row in rows}
    if len(dims) > 1:
        raise EmbeddingError(f"cached embeddings of different dimensions {sorted(dims)} under one embedder id")
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


def _embed_one(embedder: AudioEmbedder, path: str | Path, clip) -> np.ndarray:
    """Embed a single file, naming it when it cannot be embedded (too short, non-finite embedding)."""
    try:
        return embedder.embed_audio([clip], embedder.sample_rate).cpu().numpy()[0]
    except EmbeddingError as error:
        raise EmbeddingError(f"{path}: {error}") from error
    except ValueError as error:
        raise EmbeddingError(f"{path}: cannot be embedded ({error})") from error
