"""The MOS kit's JSON files: NaN-free JSON through the project's one atomic writer (:mod:`datamodules.atomic_files`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from datamodules import atomic_files


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically; NaN is written as null so any JSON reader accepts it
    (a listening test's statistics have NaN where a system has too few answers)."""
    atomic_files.atomic_write_json(path, _nan_to_none(obj), sort_keys=True)


def _nan_to_none(obj: Any) -> Any:
    """Replace float NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(value) for value in obj]
    return obj
