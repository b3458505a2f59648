"""Reading a W&B-format sweep file and expanding it into the points the local runner trains."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

METHODS = ("grid", "random", "bayes")


class SweepSpecError(ValueError):
    """An unusable sweep file; the message names the file and the parameter."""


@dataclass(frozen=True)
class SweepPoint:
    """One training run of a sweep: its parameter values and a stable folder name."""

    params: dict[str, Any]

    @property
    def name(self) -> str:
        parts = [f"{short_name(key)}={value}" for key, value in self.params.items()]
        return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", ",".join(parts))

    def overrides(self) -> list[str]:
        """LightningCLI arguments that set this point's values."""
        return [f"--{key}={_cli_value(value)}" for key, value in self.params.items()]


def short_name(key: str) -> str:
    """A parameter's name in point folders and report columns: the last part of its LightningCLI key; an adapter
    setting of a site other than the UNet gets the site's initials (``model.init_args.adapters.text_encoder.rank``
    -> ``te_rank``, ``adapters.text_encoder_2.rank`` -> ``te2_rank``; ``adapters.unet.rank`` -> ``rank``)."""
    parts = key.split(".")
    last = parts[-1]
    if len(parts) >= 3 and parts[-3] == "adapters" and parts[-2] != "unet":
        initials = "".join(word if word.isdigit() else word[:1] for word in parts[-2].split("_"))
        return f"{initials}_{last}"
    return last


def _cli_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Parse and check a sweep file: method, metric and at least one parameter, each with values."""
    path = Path(path)
    if not path.is_file():
        raise SweepSpecError(f"Sweep file {path} does not exist.")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise SweepSpecError(f"{path}: not UTF-8 text (byte {error.start}); save the sweep file as UTF-8.") from None
    except yaml.YAMLError as error:
        raise SweepSpecError(f"{path}: not valid YAML ({error}).") from None
    if not isinstance(spec, dict):
        raise SweepSpecError(f"{path}: expected a mapping with method, metric and parameters, not "
                             f"{type(spec).__name__}.")
    method = spec.get("method", "grid")
    if method not in METHODS:
        raise SweepSpecError(f"{path}: method {method!r} is not one of {list(METHODS)}.")
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise SweepSpecError(f"{path}: `parameters` must map LightningCLI keys to their values, not "
                             f"{type(parameters).__name__}.")
    if not parameters:
        raise SweepSpecError(f"{path}: `parameters` is empty; list at least one LightningCLI key with values.")
    for key, rule in parameters.items():
        if not isinstance(rule, dict) or not ({"values", "value", "distribution", "min", "max"} & set(rule)):
            raise SweepSpecError(f"{path}: parameter {key!r} needs `values: [...]` (or `value`, or a distribution).")
        if "values" in rule and not (isinstance(rule["values"], list) and rule["values"]):
            raise SweepSpecError(f"{path}: parameter {key!r} needs a non-empty list in `values`, got "
                                 f"{rule['values']!r}.")
    spec.setdefault("method", method)
    spec.setdefault("metric", {"name": "val/kad", "goal": "minimize"})
    return spec


def grid_points(spec: dict[str, Any]) -> list[SweepPoint]:
    """The cartesian product of every parameter's ``values`` (``value`` counts as one value).

    Raises:
        SweepSpecError: a parameter given only as a distribution (the local runner needs explicit values).
    """
    keys, choices = _explicit_values(spec)
    return [SweepPoint(dict(zip(keys, combo))) for combo in itertools.product(*choices)]


def covering_points(spec: dict[str, Any]) -> list[SweepPoint]:
    """The fewest points that use every value of every parameter at least once (point i takes value
    ``i mod n`` of each parameter): checking these against the training config checks every value the grid uses,
    with as many ``--print_config`` runs as the longest ``values`` list rather than one per grid point."""
    keys, choices = _explicit_values(spec)
    longest = max(len(values) for values in choices)
    return [SweepPoint({key: values[i % len(values)] for key, values in zip(keys, choices)}) for i in range(longest)]


def _explicit_values(spec: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Every parameter's key and its explicit values (see :func:`grid_points`)."""
    keys, choices = [], []
    for key, rule in spec["parameters"].items():
        if "values" in rule:
            values = list(rule["values"])
        elif "value" in rule:
            values = [rule["value"]]
        else:
            raise SweepSpecError(
                f"Parameter {key!r} is a distribution; the local runner needs an explicit `values` list."
            )
        keys.append(key)
        choices.append(values)
    return keys, choices
