"""The adapters ``audioldm-lora app`` offers when no ``--adapter`` is given: every adapter folder under ``runs/``.

An adapter folder is one that holds ``adapter_info.json`` (what training's adapter export writes). Each is offered as
``NAME=PATH=WEIGHT`` with a name made from its path below ``runs/`` and weight 0 (off), except the newest, at 1.0,
so the page opens comparing the latest adapter with the base.
"""

from __future__ import annotations

from pathlib import Path

from lightning_modules.adapter_files import safe_adapter_name

INFO_FILE = "adapter_info.json"


def discovered_adapters(root: str | Path = "runs", limit: int = 16) -> list[str]:
    """``--adapter`` arguments for the newest ``limit`` adapter folders under ``root`` (newest first)."""
    root = Path(root)
    if not root.is_dir():
        return []
    infos = sorted(root.rglob(INFO_FILE), key=lambda info: (-info.stat().st_mtime, str(info)))
    folders = [info.parent for info in infos]
    arguments = []
    taken: set[str] = set()
    for index, folder in enumerate(folders[:limit]):
        name = _name(folder.relative_to(root))
        while name in taken:
            name += "_"
        taken.add(name)
        arguments.append(f"{name}={folder}={1.0 if index == 0 else 0.0}")
    return arguments


def _name(relative: Path) -> str:
    """An adapter name (letters, digits, '_' and '-') from a path below ``runs/``, without the ``adapters`` level."""
    return safe_adapter_name("-".join(part for part in relative.parts if part != "adapters"))
