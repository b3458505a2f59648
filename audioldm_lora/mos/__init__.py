"""Listening-test kit: blind MOS and A/B pages from folders of generated clips, and their statistics.

``build_page`` (module :mod:`.page`) writes a static, self-contained page and a separate key; listeners send back
answer files, which ``analyze_answers`` (module :mod:`.pipeline`) screens and turns into MOS tables with
confidence intervals, paired Wilcoxon tests and a bar chart. The command line is ``audioldm-lora mos``
(:mod:`audioldm_lora.commands.mos`).

The names below are imported on first use, so that ``mos build`` does not pay for matplotlib and the analysis
does not pay for the audio stack.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import MosInputError

_LAZY = {
    "BuildOptions": "page",
    "BuildResult": "page",
    "build_page": "page",
    "AnalyzeResult": "pipeline",
    "analyze_answers": "pipeline",
    "ScreeningRules": "screening",
}

__all__ = [
    "AnalyzeResult",
    "BuildOptions",
    "BuildResult",
    "MosInputError",
    "ScreeningRules",
    "analyze_answers",
    "build_page",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
