"""``audioldm-lora build-tiny DIR``: write the tiny offline AudioLDM (random weights, real geometry)."""

from __future__ import annotations

from jsonargparse import ArgumentParser



def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="audioldm-lora build-tiny", description=__doc__)
    parser.add_argument("directory", type=str, help="output directory (diffusers AudioLDM layout)")
    parser.add_argument("--seed", type=int, default=0, help="weights are identical for the same seed")
    parser.add_argument("--overwrite", type=bool, default=False, help="replace an existing directory")
    args = parser.parse_args(argv)
    from audioldm_demo.tiny import build_tiny_audioldm  # torch and diffusers: only after parsing

    try:
        path = build_tiny_audioldm(args.directory, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as error:
        parser.error(str(error))
    print(f"Tiny AudioLDM written to {path}")
    return 0
