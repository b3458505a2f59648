"""The model side: the backbone and adapter-site seams, LoRA, the sampler and the LightningModule.

``AudioLDMLoRA`` is imported on first use, so that importing one light module (``lightning_modules.adapter_files``
for a tool, say) does not import Lightning, diffusers and peft.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AudioLDMLoRA"]


def __getattr__(name: str) -> Any:
    if name == "AudioLDMLoRA":
        from lightning_modules.module import AudioLDMLoRA

        return AudioLDMLoRA
    raise AttributeError(f"module 'lightning_modules' has no attribute {name!r}")
