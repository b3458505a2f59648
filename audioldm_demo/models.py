"""The LightningModules of the offline recipes: AudioLDMLoRA on the tiny random AudioLDM or AudioLDM2, built on first
use."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar

from lightning.pytorch.utilities import rank_zero_info

from audioldm_demo.tiny import build_tiny_audioldm
from audioldm_demo.tiny_audioldm2 import build_tiny_audioldm2
from lightning_modules.backbone import Backbone
from lightning_modules.module import AudioLDMLoRA


class TinyAudioLDMLoRA(AudioLDMLoRA):
    """:class:`~lightning_modules.module.AudioLDMLoRA` whose ``pretrained_model`` directory is built when missing.

    ``configs/tiny.yaml`` uses it so that ``lightning fit --config configs/tiny.yaml`` runs on a fresh clone with
    no weights; the core class never writes a model. Every other behaviour is the core class's.
    """

    tiny_model: ClassVar[str] = "AudioLDM"
    build_tiny: ClassVar[Callable[[Path], Path]] = staticmethod(build_tiny_audioldm)

    @classmethod
    def load_backbone(cls, pretrained_model: str, revision: str | None) -> Backbone:
        """Build the tiny model into ``pretrained_model`` if that directory does not exist, then load it."""
        directory = Path(pretrained_model).expanduser()
        if not directory.exists():
            rank_zero_info(f"Building the tiny offline {cls.tiny_model} in {directory} (first run only).")
            try:
                cls.build_tiny(directory)
            except OSError:
                # Another process (a DDP rank) published the same deterministic model first.
                if not (directory / "model_index.json").is_file():
                    raise
        return super().load_backbone(pretrained_model, revision)


class TinyAudioLDM2LoRA(TinyAudioLDMLoRA):
    """:class:`TinyAudioLDMLoRA` on the tiny AudioLDM2 (``configs/tiny_audioldm2.yaml``)."""

    tiny_model: ClassVar[str] = "AudioLDM2"
    build_tiny: ClassVar[Callable[[Path], Path]] = staticmethod(build_tiny_audioldm2)
