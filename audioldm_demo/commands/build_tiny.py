"""``audioldm-lora build-tiny DIR``: write the tiny offline AudioLDM (random weights, real geometry)."""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.tool_convention import run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("build-tiny", __doc__)
    parser.add_argument("directory", type=str, help="output directory (diffusers AudioLDM layout)")
    parser.add_argument("--seed", type=int, default=0, help="weights are identical for the same seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    return parser


def run(args: Namespace) -> int:
    """Write the model (an existing directory without ``--overwrite`` is a FileExistsError: exit status 2)."""
    from audioldm_demo.tiny import build_tiny_audioldm  # torch and diffusers: only after parsing

    path = build_tiny_audioldm(args.directory, seed=args.seed, overwrite=args.overwrite)
    print(f"Tiny AudioLDM written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    return run_tool("build-tiny", build_parser(), argv, run)
