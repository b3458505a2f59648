"""``audioldm-lora synth-data DIR``: write the procedural genre dataset (folder per genre plus manifest.csv)."""

from __future__ import annotations

from jsonargparse import ArgumentParser

from audioldm_demo.synthetic import STYLES, write_synthetic_dataset


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="audioldm-lora synth-data", description=__doc__)
    parser.add_argument("directory", type=str, help="output directory")
    parser.add_argument("--genres", type=list[str] | None, default=None, help=f"subset of {sorted(STYLES)}")
    parser.add_argument("--clips_per_genre", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", type=bool, default=False)
    args = parser.parse_args(argv)
    try:
        path = write_synthetic_dataset(
            args.directory, args.genres, args.clips_per_genre, args.duration, args.seed, args.overwrite
        )
    except (FileExistsError, ValueError) as error:
        parser.error(str(error))
    print(f"Synthetic genre dataset written to {path}")
    return 0
