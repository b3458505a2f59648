"""Metrics: CLAP score, Kernel Audio Distance and Fréchet Audio Distance, with their embedders.

One place for the module's test step and the evaluation callback to import from (../shared/DESIGN.md section 1).
Depends on audio features (``datamodules``) only; nothing here imports the model, callbacks or the CLI, and no
embedder backend (transformers' CLAP, laion-clap) is imported until it is used.
"""

from metrics.audio_metrics import CLAPScore, FrechetAudioDistance, KernelAudioDistance
from metrics.checks import EmbeddingError
from metrics.clap_score import clap_score
from metrics.embedders import (
    AudioEmbedder,
    ClapEmbedder,
    LaionClapEmbedder,
    MelStatisticsEmbedder,
    build_embedder,
)
from metrics.fad import frechet_audio_distance
from metrics.kad import kernel_audio_distance, median_pairwise_distance

__all__ = [
    "AudioEmbedder",
    "CLAPScore",
    "ClapEmbedder",
    "EmbeddingError",
    "FrechetAudioDistance",
    "KernelAudioDistance",
    "LaionClapEmbedder",
    "MelStatisticsEmbedder",
    "build_embedder",
    "clap_score",
    "frechet_audio_distance",
    "kernel_audio_distance",
    "median_pairwise_distance",
]
