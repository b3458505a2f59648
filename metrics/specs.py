"""The names a user picks metrics by, without importing torch (tools print them in ``--help``)."""

from __future__ import annotations

EMBEDDER_SPECS = ("mel-stats", "crepe", "crepe:full", "clap", "clap:<hub id or dir>", "laion:<checkpoint.pt>")
"""Embedder specifications :func:`metrics.embedders.build_embedder` accepts."""

CLAP_CONVENTIONS: tuple[str, ...] = ("raw", "shifted")
"""CLAP score conventions: the raw cosine, or (1 + cosine) / 2 (see :mod:`metrics.clap`)."""
