"""Read the model and data sections of the YAML that ``lightning fit --config`` uses, for the tools.

The tools take the same file as training (one config drives caching, validation and training) and apply
``--set key=value`` overrides in OmegaConf's dotted form, as the CLI's ``parser_mode="omegaconf"`` resolves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


class RunConfigError(ValueError):
    """The config file is missing or lacks a section the tool needs."""


def read_run_config(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The resolved config as plain data; ``overrides`` are ``section.key=value`` strings applied on top."""
    config: Any = OmegaConf.create({})
    if path is not None:
        if not Path(path).is_file():
            raise RunConfigError(f"Config file {path} does not exist.")
        config = OmegaConf.load(str(path))
    if overrides:
        config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]


def section_init_args(config: dict[str, Any], section: str) -> dict[str, Any]:
    """``config[section]["init_args"]`` (LightningCLI subclass mode) or the section itself (plain keys)."""
    value = config.get(section) or {}
    if not isinstance(value, dict):
        raise RunConfigError(f"The config's {section!r} section must be a mapping, got {value!r}.")
    return dict(value.get("init_args", {}) if "class_path" in value or "init_args" in value else value)
