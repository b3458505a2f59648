"""``audioldm-lora synth-data DIR``: write the procedural genre dataset (folder per genre plus manifest.csv)."""

from __future__ import annotations

from jsonargparse import ArgumentParser, Namespace

from audioldm_demo.synthetic import STYLES, write_synthetic_dataset
from audioldm_lora.tool_convention import ToolInputError, run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("synth-data", __doc__)
    parser.add_argument("directory", type=str, help="output directory")
    parser.add_argument("--genres", type=list[str] | None, default=None, help=f"subset of {sorted(STYLES)}")
    parser.add_argument("--clips-per-genre", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    return parser


def run(args: Namespace) -> int:
    """Write the dataset."""
    unknown = sorted(set(args.genres or []) - set(STYLES))
    if unknown:
        raise ToolInputError(f"--genres: Unknown synthetic genre(s) {unknown}; available: {sorted(STYLES)}.")
    path = write_synthetic_dataset(
        args.directory, args.genres, args.clips_per_genre, args.duration, args.seed, args.overwrite
    )
    print(f"Synthetic genre dataset written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input: an unknown genre, an existing directory)."""
    return run_tool("synth-data", build_parser(), argv, run)
