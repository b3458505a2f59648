"""``audioldm-lora build-tiny DIR [--model audioldm2]``: write a tiny offline AudioLDM or AudioLDM2 (random weights,
real geometry)."""

from __future__ import annotations

from typing import Literal

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.tool_convention import run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("build-tiny", __doc__)
    parser.add_argument("directory", type=str, help="output directory (the pipeline's diffusers layout)")
    parser.add_argument("--model", type=Literal["audioldm", "audioldm2"], default="audioldm",
                        help="audioldm (AudioLDMPipeline layout) or audioldm2 (AudioLDM2Pipeline layout)")
    parser.add_argument("--seed", type=int, default=0, help="weights are identical for the same seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    return parser


def run(args: Namespace) -> int:
    """Write the model (an existing directory without ``--overwrite`` is a FileExistsError: exit status 2)."""
    if args.model == "audioldm2":  # torch and diffusers: imported only after parsing
        from audioldm_demo.tiny_audioldm2 import build_tiny_audioldm2 as build
    else:
        from audioldm_demo.tiny import build_tiny_audioldm as build

    path = build(args.directory, seed=args.seed, overwrite=args.overwrite)
    print(f"Tiny {'AudioLDM2' if args.model == 'audioldm2' else 'AudioLDM'} written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    return run_tool("build-tiny", build_parser(), argv, run)
