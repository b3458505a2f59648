"""The model side: the backbone and adapter-site seams, LoRA, the sampler and the LightningModule.

``AudioLDMLoRA`` is imported on first use, so that importing one light module (``lightning_modules.adapter_files``
for a tool, say) does not import Lightning, diffusers and peft.
"""

from __future__ import annotations

from datamodules.lazy_exports import lazy_exports

__all__ = ["AudioLDMLoRA"]
__getattr__ = lazy_exports(__name__, {"AudioLDMLoRA": "lightning_modules.module"})
