"""Training-time services: adapter export, prediction writing, W&B logging."""

from callbacks.adapter_export import AdapterExport
from callbacks.prediction_writer import WaveformWriter
from callbacks.wandb_logger import AutoOfflineWandbLogger

__all__ = ["AdapterExport", "AutoOfflineWandbLogger", "WaveformWriter"]
