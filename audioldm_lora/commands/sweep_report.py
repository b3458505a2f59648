"""``audioldm-lora sweep-report RUNS_DIR``: CSV, markdown and a val/kad heatmap over rank x alpha of a sweep."""

from __future__ import annotations

import sys

from jsonargparse import ArgumentParser

from audioldm_lora.sweep.report import collect, markdown, write_report


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="audioldm-lora sweep-report", description=__doc__)
    parser.add_argument("runs_dir", type=str, help="the sweep's runs folder (one sub-folder per point)")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.runs_dir)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(collect(args.runs_dir)))
    print(f"Written: {', '.join(str(p) for p in paths.values())}")
    return 0
