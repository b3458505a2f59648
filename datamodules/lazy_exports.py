"""Package attributes imported on first use (PEP 562), so that importing one light module of a package does not
import the package's heavy ones (torch, Lightning, diffusers) through its ``__init__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module path) when ``name`` is read.

    No submodule of the package may share a name with an export: importing it would replace the attribute.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
