"""``audioldm-lora build-real-music DIR``: real compositions played on sampled instruments, a folder per tradition.

Five traditions for the toy base and a held-out sixth (Han Chinese folk song on the koto), cut into clips from
pieces of music21's corpus rendered through pretty_midi's General MIDI soundfont; deterministic by seed. Needs the
demo extra (`pip install -e ".[demo]"`; `.[dev]` includes it).
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.tool_convention import ToolInputError, run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("build-real-music", __doc__.split("\n\n")[0])
    parser.add_argument("directory", type=str, help="output folder: new, a catalogue built with the same settings (kept as it is), or --overwrite")
    parser.add_argument("--genres", type=list[str] | None, default=None, help="a subset of the traditions")
    parser.add_argument("--clips-per-genre", type=int, default=40)
    parser.add_argument("--duration", type=float, default=2.56, help="seconds per clip")
    parser.add_argument("--reference-clips", type=int, default=0,
                        help="more clips per genre, from other pieces, marked split=test (the demo's references)")
    parser.add_argument("--clips-per-piece", type=int, default=4, help="most clips cut from one piece")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same files")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    return parser


def run(args: Namespace) -> int:
    """Write the catalogue."""
    try:
        from audioldm_demo.real_music.catalogue import CatalogueError, build_real_music
    except ImportError as error:
        raise ToolInputError(f"build-real-music needs the demo extra ({error.name} is missing): "
                             "pip install -e '.[demo]'.") from error
    cached = not args.overwrite and (Path(args.directory) / "catalogue.json").is_file()
    try:
        path = build_real_music(args.directory, args.clips_per_genre, args.duration, args.seed, args.genres,
                                args.clips_per_piece, overwrite=args.overwrite,
                                reference_clips=args.reference_clips)
    except CatalogueError as error:
        raise ToolInputError(str(error)) from error
    done = "is up to date (built with these settings)" if cached else "written"
    print(f"Real-music catalogue {path} {done}; sources and licences: {path}/SOURCES.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input: an unknown tradition, an existing folder, a
    tradition that cannot fill its clips)."""
    return run_tool("build-real-music", build_parser(), argv, run)
