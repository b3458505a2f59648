"""``audioldm-lora prepare``: decode every item of a data source, report each bad one with its reason, and write a
clean manifest plus a summary (items and hours per genre, sample rates and channel counts seen).

The source comes from ``--config`` (the ``data`` section of a training YAML) or from the flags; flags win.
``--strict`` exits with status 1 when any item is bad (for CI and data pipelines); a source without any good item
always exits 1.
"""

from __future__ import annotations

import sys

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.run_config import read_run_config, section_init_args
from audioldm_lora.tool_convention import ProgressReporter, add_progress_argument, run_tool, tool_parser

SOURCE_KEYS = ("root", "manifest", "hf_dataset", "shards", "caption_template", "caption_fallback", "genres",
               "hf_split", "hf_config", "audio_column", "caption_column", "genre_column")
UNSET = "(from the config, else {genre} music)"


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("prepare", __doc__)
    parser.add_argument("--config", type=str | None, default=None, help="training YAML; its data section is the source")
    parser.add_argument("--set", type=list[str], default=[], help="overrides, e.g. --set+=data.init_args.root=DIR")
    parser.add_argument("--out", type=str, required=True, help="folder for the clean manifest and the summary")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any item is bad")
    parser.add_argument("--max-listed", type=int, default=50, help="bad items printed (all go to bad_items.csv)")
    parser.add_argument("--root", type=str | None, default=None, help="folder per genre")
    parser.add_argument("--manifest", type=str | None, default=None, help="CSV or JSONL manifest")
    parser.add_argument("--hf-dataset", type=str | None, default=None, help="save_to_disk directory or hub id")
    parser.add_argument("--shards", type=str | list[str] | None, default=None, help="WebDataset shards")
    parser.add_argument("--caption-template", type=str | None, default=None)
    parser.add_argument("--caption-fallback", type=str | None, default=UNSET,
                        help="template for items without a caption; null makes them bad")
    parser.add_argument("--genres", type=list[str] | None, default=None, help="known genres; others are bad")
    parser.add_argument("--hf-split", type=str | None, default=None)
    parser.add_argument("--hf-config", type=str | None, default=None)
    parser.add_argument("--audio-column", type=str | None, default=None)
    parser.add_argument("--caption-column", type=str | None, default=None)
    parser.add_argument("--genre-column", type=str | None, default=None)
    add_progress_argument(parser, "the items")
    return parser


def run(args: Namespace) -> int:
    """Validate the source and write the clean manifest; 0, or 1 with ``--strict`` and a bad item (or no good one)."""
    # The data code imports torch (audio decoding): only after parsing, so that --help answers at once.
    from datamodules.captions import CaptionPolicy
    from datamodules.sources import SourceSettings, make_source
    from datamodules.validate import validate_source, write_validation

    data = section_init_args(read_run_config(args.config, args.set), "data") if args.config or args.set else {}
    flags = {key: getattr(args, key) for key in SOURCE_KEYS if getattr(args, key) is not None}
    if args.caption_fallback != UNSET:
        flags["caption_fallback"] = args.caption_fallback  # None (null) is a choice here: missing captions are bad
    else:
        flags.pop("caption_fallback", None)
    if any(flags.get(k) for k in ("root", "manifest", "hf_dataset", "shards")):
        data = {k: v for k, v in data.items() if k not in ("root", "manifest", "hf_dataset", "shards")}
    settings = {**{k: v for k, v in data.items() if k in SOURCE_KEYS}, **flags}
    captions = CaptionPolicy(settings.get("caption_template") or CaptionPolicy.template,
                             settings.get("caption_fallback", CaptionPolicy.fallback))
    source = make_source(captions, SourceSettings.from_mapping(settings))
    with ProgressReporter("validating", "items", enabled=args.progress) as progress:
        report = validate_source(source, settings.get("genres"), progress=progress)
    paths = write_validation(report, args.out, source)
    for bad in report.bad[: args.max_listed]:
        print(f"BAD {bad}")
    if len(report.bad) > args.max_listed:
        print(f"... and {len(report.bad) - args.max_listed} more (see {paths['bad_items']})")
    print(report.markdown())
    print(f"Clean manifest: {paths['manifest']}\nBad items: {paths['bad_items']}\nSummary: {paths['summary']}")
    if not report.good:
        print("audioldm-lora prepare: error: the source has no valid item; see the bad items above", file=sys.stderr)
        return 1
    return 1 if args.strict and report.bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 bad items as above, 2 bad input)."""
    return run_tool("prepare", build_parser(), argv, run)
