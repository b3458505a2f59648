"""``audioldm-lora model-card``: write a README.md model card into an adapter folder, and optionally upload it.

    audioldm-lora model-card ADAPTER_DIR [--metrics FILE] [--base-model HUB_ID] [--license L]
        [--push-to-hub REPO_ID [--private]]

The card is built offline from ``adapter_info.json`` (base, rank, alpha, targets, genres, steps, data) and the
metrics JSON (``audioldm-lora evaluate``'s report, or any ``{set: {metric: value}}``). ``--push-to-hub`` uploads the
whole folder (weights, adapter_info.json, README.md) with ``huggingface_hub``. Exit status 0, or 2 for bad input.
"""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.tool_convention import run_tool, tool_parser
from lightning_modules.adapter_files import parse_adapter_spec, read_adapter


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("model-card", __doc__.split("\n\n")[0])
    parser.add_argument("adapter_dir", type=str, help="adapter folder (pytorch_lora_weights.safetensors inside).")
    parser.add_argument("--metrics", type=str | None, default=None, help="metrics JSON to tabulate.")
    parser.add_argument(
        "--base-model", type=str | None, default=None, help="hub id of the base, when training used a local copy."
    )
    parser.add_argument("--license", type=str, default="other", help="license in the card (that of the base).")
    parser.add_argument("--push-to-hub", type=str | None, default=None, metavar="REPO_ID", help="upload the folder.")
    parser.add_argument("--private", action="store_true", help="create the hub repository as private.")
    return parser


def run(args: Namespace) -> int:
    """Check the adapter, write its card, push when asked."""
    from lightning_modules.hub import push_folder
    from lightning_modules.model_card import adapter_card, read_metrics, write_card

    adapter = read_adapter(parse_adapter_spec(args.adapter_dir))
    metrics = read_metrics(args.metrics) if args.metrics else None
    text = adapter_card(
        adapter.info, metrics, base_model=args.base_model, license=args.license, repo_id=args.push_to_hub
    )
    path = write_card(adapter.spec.directory, text)
    print(f"Model card written to {path}")
    if args.push_to_hub:
        print(f"Uploaded: {push_folder(adapter.spec.directory, args.push_to_hub, private=args.private)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    return run_tool("model-card", build_parser(), argv, run)
