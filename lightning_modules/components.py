"""Loading and writing a diffusers pipeline folder component by component, one code path for hub ids and local
directories: what every backbone's ``load`` and ``save_pretrained`` share.

Each component loads through its own library's ``from_pretrained(source, subfolder=name)``; a failure is re-raised as
:class:`~lightning_modules.backbone.ModelLoadError` naming the component, the backbone and what to do. Writing
mirrors ``DiffusionPipeline.save_pretrained``'s layout (one folder per component and a ``model_index.json`` naming
each component's library and class), so the pipeline class loads the folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import diffusers

from lightning_modules.backbone import ModelLoadError
from lightning_modules.quiet_loading import quiet_weight_loading

Loader = Callable[[str, str | None], Any]
"""``(source, revision) -> component``."""


def check_component_folders(path: Path, components: tuple[str, ...], pipeline: str, example_hub_id: str) -> None:
    """Refuse a local directory that lacks a component folder, naming the missing ones and the pipeline.

    Raises:
        ModelLoadError: one or more folders missing.
    """
    missing = [name for name in components if not (path / name).is_dir()]
    if missing:
        raise ModelLoadError(
            f"Base model directory {path} lacks the component folder(s) {', '.join(missing)}. A {pipeline} directory "
            f"holds {', '.join(components)} (as {pipeline}.save_pretrained writes them). Point "
            f"model.init_args.pretrained_model at a complete directory or at a hub id such as {example_hub_id}."
        )


def load_components(source: str, revision: str | None, loaders: Mapping[str, Loader], pipeline: str
                    ) -> dict[str, Any]:
    """Every component of ``loaders`` loaded from ``source``, by name.

    Raises:
        ModelLoadError: a component fails to load; the message names it, the pipeline and what to check.
    """
    parts = {}
    for name, load in loaders.items():
        try:
            parts[name] = load(source, revision)
        except Exception as error:  # hub and file errors come in many types; each is re-raised with context
            raise ModelLoadError(
                f"Cannot load the {name} of {pipeline} {source!r}: {error}. For a hub id, check the name and the "
                "network (or set HF_HUB_OFFLINE=1 with the model already in the cache); for a directory, check "
                f"{name}/ holds its config and weights."
            ) from error
    return parts


def write_components(directory: Path, pipeline: str, parts: Mapping[str, Any],
                     declared: Mapping[str, tuple[str, str]] | None = None) -> None:
    """Save every component to ``directory/<name>`` and write ``model_index.json``.

    ``declared`` overrides the (library, class) recorded for a component, for a part held as another class than
    the pipeline expects (AudioLDM2's language model is held as its base ``GPT2Model`` but declared
    ``GPT2LMHeadModel``, the class AudioLDM2Pipeline generates with; docs/model-facts.md, 'AudioLDM2 LoRA').
    """
    directory = Path(directory)
    with quiet_weight_loading():
        for name, part in parts.items():
            part.save_pretrained(directory / name)
    index: dict[str, object] = {"_class_name": pipeline, "_diffusers_version": diffusers.__version__}
    for name, part in parts.items():
        kind = type(part)
        index[name] = list((declared or {}).get(name, (kind.__module__.split(".")[0], kind.__name__)))
    (directory / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
