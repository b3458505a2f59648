"""Reading a JSON file that must hold one object, with the project's kind of error: which file, what is wrong, and
what to do (each caller raises its own error class so that its tool reports it as bad input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: Path, error: type[Exception], fix: str) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        error: the file is not UTF-8 JSON, or holds something other than an object; the message names ``path``
            and ends with ``fix``.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{path} is not valid JSON ({problem}); {fix}") from problem
    if not isinstance(value, dict):
        raise error(f"{path} must hold a JSON object, not {type(value).__name__}; {fix}")
    return value
