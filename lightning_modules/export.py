"""Write AudioLDM components as a complete diffusers directory that ``AudioLDMPipeline.from_pretrained`` loads.

The layout is what ``AudioLDMPipeline.save_pretrained`` writes (one folder per component plus ``model_index.json``),
written here from the components themselves so the project does not depend on the deprecated pipeline class.
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers

from lightning_modules.components import COMPONENTS, AudioLDMComponents

PIPELINE_CLASS = "AudioLDMPipeline"


def model_index(components: AudioLDMComponents) -> dict[str, object]:
    """``model_index.json``: for each component, the library and class that ``from_pretrained`` instantiates."""
    index: dict[str, object] = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
    for name in COMPONENTS:
        cls = type(getattr(components, name))
        index[name] = [cls.__module__.split(".")[0], cls.__name__]
    return index


def write_audioldm_directory(components: AudioLDMComponents, directory: str | Path) -> Path:
    """Save every component into ``directory`` (which must exist; callers stage it and publish it atomically)."""
    directory = Path(directory)
    for name in COMPONENTS:
        getattr(components, name).save_pretrained(directory / name)
    (directory / "model_index.json").write_text(json.dumps(model_index(components), indent=2) + "\n")
    return directory
