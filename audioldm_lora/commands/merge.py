"""``audioldm-lora merge``: fuse LoRA adapters into every site they adapt and write a complete diffusers folder.

    audioldm-lora merge --base ID|DIR --adapter PATH[=WEIGHT] ... --out DIR
        [--model-card] [--metrics FILE] [--license L] [--push-to-hub REPO_ID]

The result loads with plain diffusers, no project code and no peft: ``<Pipeline>.from_pretrained(DIR)`` with the
base's pipeline class (``AudioLDMPipeline`` for AudioLDM; ``model_index.json`` names it).
Several adapters are fused at their weights (as ``set_adapters`` mixes them). ``merge_info.json`` records the base
and the adapters; ``--model-card`` adds a README.md. The folder is written beside ``--out`` and renamed into place
at the end, so a failure leaves no partial model. Progress over the stages (load, fuse, write, upload) goes to
stderr. Exit status 0 on success, 2 for bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.adapter_inputs import (
    CommandInputError,
    add_model_arguments,
    check_output_directory,
    load_model,
    read_adapters,
    resolve_base,
)
from audioldm_lora.tool_convention import ProgressReporter, add_progress_argument, run_tool, tool_parser
from datamodules.atomic_files import staged_directory

MERGE_INFO = "merge_info.json"


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("merge", __doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--out", type=str, required=True, help="output folder (new or empty).")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out that already holds files.")
    parser.add_argument("--model-card", action="store_true", help="write a README.md model card into --out.")
    parser.add_argument("--metrics", type=str | None, default=None, help="metrics JSON for the model card.")
    parser.add_argument("--license", type=str, default="other", help="license in the card (that of the base).")
    parser.add_argument("--push-to-hub", type=str | None, default=None, metavar="REPO_ID", help="upload --out.")
    parser.add_argument("--private", action="store_true", help="create the hub repository as private.")
    add_progress_argument(parser, "the stages")
    return parser


def run(args: Namespace) -> int:
    """Load, fuse, write into a staging folder, publish; then push when asked."""
    from lightning_modules.adapters import fuse_adapters
    from lightning_modules.hub import push_folder
    from lightning_modules.model_card import merged_card, read_metrics, write_card

    if not args.adapter:
        raise CommandInputError("merge needs at least one --adapter PATH[=WEIGHT].")
    adapters = read_adapters(args.adapter)
    base = resolve_base(args.base, adapters)
    out = Path(args.out).expanduser()
    check_output_directory(out, args.overwrite)
    metrics = read_metrics(args.metrics) if args.metrics else None
    stages = 4 if args.push_to_hub else 3
    with ProgressReporter("loading", "stages", stages, enabled=args.progress, interval=0.0) as progress:
        # Fused on the CPU: in float32 wherever the base was trained, and no GPU is needed to ship an adapter.
        backbone = load_model(base, adapters, "cpu", args.allow_other_base)
        progress.describe("fusing")
        progress(1)
        fuse_adapters(backbone, [a.spec.name for a in adapters])
        progress.describe("writing")
        progress(2)
        described = [(a.spec.describe(), a.info) for a in adapters]
        with staged_directory(out, mode="folder", overwrite=args.overwrite) as staging:
            backbone.save_pretrained(staging)
            info = {"base_model": base, "adapters": [{**spec, "info": info} for spec, info in described]}
            (staging / MERGE_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
            if args.model_card:
                card = merged_card(base, described, metrics, license=args.license, repo_id=args.push_to_hub)
                write_card(staging, card)
        progress(3)
        uploaded = None
        if args.push_to_hub:
            progress.describe("uploading")
            uploaded = push_folder(out, args.push_to_hub, private=args.private)
            progress(4)
    print(f"Merged {', '.join(a.spec.name for a in adapters)} into {base}: {out}")
    if uploaded is not None:
        print(f"Uploaded: {uploaded}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    return run_tool("merge", build_parser(), argv, run)
