"""Training-time services: resumable checkpoints, adapter export, A/B sampling, evaluation, conditioning gain, adapter health, prediction writing, W&B."""

from callbacks.ab_sampling import ABSampling
from callbacks.adapter_export import AdapterExport
from callbacks.adapter_health import AdapterHealth
from callbacks.conditioning_gain import ConditioningGain
from callbacks.evaluation import GenreEvaluation
from callbacks.prediction_writer import WaveformWriter
from callbacks.progress_bar import StepProgressBar
from callbacks.resumable_checkpoint import ResumableCheckpoint
from callbacks.wandb_logger import AutoOfflineWandbLogger

__all__ = ["ABSampling", "AdapterExport", "AdapterHealth", "AutoOfflineWandbLogger", "ConditioningGain", "GenreEvaluation", "ResumableCheckpoint", "StepProgressBar",
           "WaveformWriter"]
