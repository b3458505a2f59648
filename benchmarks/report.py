"""Shared by the benchmarks: a description of the machine, rewriting one section of docs/benchmarks.md, and running
each variant of a benchmark in its own process.

Each benchmark owns the section between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` and replaces only that,
so benchmarks run at different times (or on different machines) keep each other's results.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from datamodules.atomic_files import atomic_write_bytes

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nWritten by the scripts in `benchmarks/` (`make bench`); each section says how to rerun it.\n"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: cores, CPU model, load average (other work on the machine skews timings), OS, date."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    today = datetime.date.today().isoformat()
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), load average {load} at the start, "
        f"{platform.system()} {platform.release()}, {today}"
    )


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def read_section(name: str, doc: Path = DOC) -> str | None:
    """The body of section ``name`` in ``doc`` (what :func:`update_section` wrote), or None when it has none."""
    begin, end = _markers(name)
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), doc.read_text(encoding="utf-8"), re.DOTALL)
    return None if match is None else match.group(1)


def update_section(name: str, body: str, doc: Path = DOC) -> Path:
    """Replace (or append) the section ``name`` of ``doc`` with ``body``; the rest of the file is kept."""
    begin, end = _markers(name)
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = doc.read_text(encoding="utf-8") if doc.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    atomic_write_bytes(doc, text.encode("utf-8"))
    return doc


def variant_results(script: str | Path, variants: Iterable[str], *arguments: str) -> dict[str, dict]:
    """Run ``script --variant V *arguments`` in a fresh process per variant (so each variant's peak memory is its
    own) and read the JSON object each prints on its last line of output."""
    results = {}
    for variant in variants:
        out = subprocess.run([sys.executable, str(script), "--variant", variant, *arguments],
                             capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    return results
