"""Fixtures of the listening-test kit's tests (the browser policy and ``chromium_executable``: tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mos_helpers import write_clips


@pytest.fixture
def clip_dirs(tmp_path: Path) -> list[str]:
    """Two systems' clips (4 prompts, 2 genres, sidecar prompts) as ``NAME=DIR`` specs."""
    return write_clips(tmp_path / "clips")


@pytest.fixture
def built(tmp_path: Path, clip_dirs: list[str]) -> dict[str, Any]:
    """A built MOS page (with a second scale): its folder, key path and loaded key."""
    from audioldm_lora.mos.page import BuildOptions, build_page

    result = build_page(clip_dirs, tmp_path / "page", BuildOptions(second_scale="Genre fidelity"))
    return {"out": result.out, "key_path": result.key, "key": json.loads(result.key.read_text()), "result": result}
