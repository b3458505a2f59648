"""One atomic file writer for every file the project publishes (caches, reports, checkpoints).

It lives in the lowest package (data knows no model) so that metrics, the model, callbacks and tools can all share it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, even after ``kill -9``.

    A hidden temporary file in the same directory (so the rename never crosses file systems) is written, flushed to
    disk and renamed over ``path`` with ``os.replace``, atomic on POSIX; the directory is then synced so that the
    rename itself survives a power cut. A failure removes the temporary file and leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """fsync a directory's entries (where the OS allows opening a directory; a no-op elsewhere)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
