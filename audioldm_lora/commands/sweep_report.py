"""``audioldm-lora sweep-report RUNS_DIR``: CSV, markdown and a val/kad heatmap over the two swept parameters
(rank x alpha, text-encoder target x rank, ...) of a sweep."""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.sweep.report import collect, markdown, write_report
from audioldm_lora.tool_convention import run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("sweep-report", __doc__)
    parser.add_argument("runs_dir", type=str, help="the sweep's runs folder (one sub-folder per point)")
    return parser


def run(args: Namespace) -> int:
    """Write the CSV, markdown and heatmap of the sweep, and print the table."""
    paths = write_report(args.runs_dir)
    print(markdown(collect(args.runs_dir)))
    print(f"Written: {', '.join(str(p) for p in paths.values())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 no sweep there)."""
    return run_tool("sweep-report", build_parser(), argv, run)
