"""``audioldm-lora build-toy-base DIR [--catalogue REAL_MUSIC]``: train the toy AudioLDM on genres A..E, once
(cached by recipe): a real-music catalogue's traditions, or the procedural genres.

The toy base is what ``configs/demo.yaml`` (on a catalogue; ``configs/demo_synthetic.yaml`` on the procedural
genres) adapts to the held-out genre F with LoRA (audioldm_demo/toy_base.py). ``make demo`` builds it with
``--catalogue .cache/real-music --recipe.unet_steps 1400`` (README, 'Choosing the recipe').
A second call with the same recipe finds ``DIR/toy_base.json`` and returns at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from audioldm_demo.toy_settings import ToyRecipe
from audioldm_lora.tool_convention import ToolInputError, run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("build-toy-base", __doc__)
    parser.add_argument("directory", type=str, nargs="?", default=".cache/toy-audioldm",
                        help="output directory (diffusers AudioLDM layout plus toy_base.json)")
    parser.add_argument("--recipe", type=ToyRecipe, default=ToyRecipe(),
                        help="training recipe; changing any field is a new cache key (e.g. --recipe.seed 1)")
    parser.add_argument("--catalogue", type=str | None, default=None,
                        help="train on this build-real-music folder's traditions (its held-out one is genre F) "
                             "instead of the procedural genres")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even when the cache is up to date")
    parser.add_argument("--log-every", type=int, default=100, help="log the training loss every N steps")
    return parser


def run(args: Namespace) -> int:
    """Build (or find in the cache) the toy base."""
    recipe = args.recipe if isinstance(args.recipe, ToyRecipe) else ToyRecipe(**vars(args.recipe))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Training imports torch and diffusers: only after parsing, so that --help answers at once.
    from audioldm_demo.toy_base import build_toy_base, ensure_toy_base, read_recipe, recipe_on_catalogue
    from audioldm_demo.toy_training import log_progress

    if args.catalogue is not None:
        recipe = recipe_on_catalogue(recipe, args.catalogue)

    start = time.monotonic()
    if args.overwrite:
        if read_recipe(args.directory) is None and Path(args.directory).exists():
            raise ToolInputError(f"{args.directory} exists and is not a toy AudioLDM; refusing to overwrite it "
                                 "(give another directory).")
        path = build_toy_base(args.directory, recipe, overwrite=True, progress=log_progress(args.log_every))
    else:
        path = ensure_toy_base(args.directory, recipe, progress=log_progress(args.log_every))
    print(f"Toy AudioLDM ready in {path} ({time.monotonic() - start:.0f} s; held-out genre F: {recipe.held_out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    return run_tool("build-toy-base", build_parser(), argv, run)
