"""Atomic file writes: a reader (or a crash) never sees a half-written report, key or page file.

Each write goes to a hidden temporary file in the destination folder and is then renamed over the target, which
is atomic on POSIX file systems.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from datamodules.atomic_files import atomic_write_bytes


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically; NaN is written as null so any JSON reader accepts it."""
    atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _nan_to_none(obj: Any) -> Any:
    """Replace float NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(value) for value in obj]
    return obj
