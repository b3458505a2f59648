"""benchmarks/report.py: a benchmark rewrites its own section of docs/benchmarks.md and nothing else."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import machine, update_section


def test_sections_are_replaced_in_place_and_others_kept(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    update_section("alpha", "## Alpha\n\nfirst", doc)
    update_section("beta", "## Beta\n\nkeep me", doc)
    update_section("alpha", "## Alpha\n\nsecond", doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "first" not in text and text.count("<!-- alpha:begin -->") == 1
    assert text.index("second") < text.index("keep me")  # replaced where it was, not appended
    assert "cores (" in machine() and "load average" in machine()
