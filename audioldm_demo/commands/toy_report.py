"""``audioldm-lora toy-report --adapter RUN/adapters/final``: the demo's table for the held-out genre F and A..E.

Generates every genre's prompt with and without the adapter (same seeds), scores both against reference clips that
no training saw (mel-statistics KAD and FAD; ``--settings.extra_embedders "[crepe]"`` adds the same table under
another embedder) and prints the paper-style table (base, LoRA, delta), the verdict on the demo's targets (KAD on F
at least 30% lower, A..E at most 10% worse) and where the wavs and the adapter are. A toy base built on a
real-music catalogue is scored on that catalogue's captions and reference clips.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from audioldm_demo.toy_settings import ToyEvalSettings
from audioldm_lora.tool_convention import run_tool, tool_parser
from datamodules.atomic_files import atomic_write_json, atomic_write_text


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("toy-report", __doc__)
    parser.add_argument("--base", type=str, default=".cache/toy-audioldm", help="the toy base (build-toy-base)")
    parser.add_argument("--adapter", type=str, required=True, help="adapter folder, e.g. runs/demo/adapters/final")
    parser.add_argument("--out", type=str | None, default=None,
                        help="where the report and wavs go (default: <adapter>/../../toy-report)")
    parser.add_argument("--settings", type=ToyEvalSettings, default=ToyEvalSettings(), help="what is generated and scored")
    parser.add_argument("--check", type=bool, default=False, help="exit with status 1 when a target fails")
    return parser


def run(args: Namespace) -> int:
    """Evaluate the adapter against the toy base; returns 1 only with ``--check`` when a target fails."""
    settings = args.settings if isinstance(args.settings, ToyEvalSettings) else ToyEvalSettings(**vars(args.settings))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from audioldm_demo.toy_eval import evaluate_adapter, result_markdown  # torch and the model: after parsing

    adapter = Path(args.adapter)
    out = Path(args.out) if args.out else adapter.resolve().parent.parent / "toy-report"
    start = time.monotonic()
    result = evaluate_adapter(args.base, adapter, settings, wav_dir=out / "wavs")
    markdown = result_markdown(result)
    atomic_write_text(out / "report.md", markdown)
    record = {"base": args.base, "adapter": str(adapter), "settings": dataclasses.asdict(result.settings),
              "rows": result.rows, "rows_by_extra_embedder": result.other_rows, "failures": result.failures,
              "passed": result.passed}
    atomic_write_json(out / "report.json", record)
    print(markdown)
    print(f"Adapter: {adapter}")
    print(f"Wavs: {out / 'wavs'}/{{base,lora}}/<genre>_seed<N>.wav; report: {out / 'report.md'} "
          f"({time.monotonic() - start:.0f} s)")
    return 1 if args.check and not result.passed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 a target failed under --check, 2 bad input)."""
    return run_tool("toy-report", build_parser(), argv, run)
