"""The model side: AudioLDM loading, LoRA injection, the sampler and the LightningModule."""

from lightning_modules.griffin_lim_vocoder import GriffinLimVocoder
from lightning_modules.module import AudioLDMLoRA

__all__ = ["AudioLDMLoRA", "GriffinLimVocoder"]
