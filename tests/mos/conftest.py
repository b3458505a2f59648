"""Fixtures of the listening-test kit's tests, and the browser policy.

Browser tests (marker ``browser``) need Debian's Chromium (``/usr/bin/chromium``, or ``$MOS_CHROMIUM``) and the
Python package ``playwright`` (never ``playwright install``: the system browser is used). Where either is absent
the test is skipped with the reason, unless ``REQUIRE_BROWSER=1`` is set (as CI does), in which case it fails:
a CI that silently skipped the end-to-end test would prove nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mos_helpers import write_clips


def chromium_problem() -> tuple[str | None, str]:
    """(why the browser test cannot run or None, the Chromium executable path)."""
    executable = os.environ.get("MOS_CHROMIUM", "/usr/bin/chromium")
    if shutil.which(executable) is None:
        return f"Chromium not found at {executable} (apt-get install chromium chromium-driver)", executable
    if importlib.util.find_spec("playwright") is None:
        return (
            "the Python package playwright is not installed (pip install playwright; no 'playwright install')",
            executable,
        )
    return None, executable


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """The Chromium to drive; skips (or fails under REQUIRE_BROWSER=1) when it cannot run."""
    problem, executable = chromium_problem()
    if problem is not None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    return executable


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
