"""One module per command-line tool, each exposing ``main(argv) -> int``."""
