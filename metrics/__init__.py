"""Metrics: CLAP score, Kernel Audio Distance and Fréchet Audio Distance, with their embedders.

One place for the module's test step and the evaluation callback to import from (docs/model-facts.md, 'Data flow').
Depends on audio features (``datamodules``) only; nothing here imports the model, callbacks or the CLI, and no
embedder backend (transformers' CLAP, laion-clap) is imported until it is used.
"""

from __future__ import annotations

from datamodules.lazy_exports import lazy_exports

# Imported on first use, so that a light module (``metrics.specs`` for a tool's ``--help``) imports no torch.
# (No submodule may share a name with one of these: importing it would replace the attribute; hence metrics.clap.)
_LAZY = {
    "CLAPScore": "metrics.audio_metrics",
    "FrechetAudioDistance": "metrics.audio_metrics",
    "KernelAudioDistance": "metrics.audio_metrics",
    "EmbeddingError": "metrics.checks",
    "clap_score": "metrics.clap",
    "AudioEmbedder": "metrics.embedders",
    "ClapEmbedder": "metrics.embedders",
    "LaionClapEmbedder": "metrics.embedders",
    "MelStatisticsEmbedder": "metrics.embedders",
    "build_embedder": "metrics.embedders",
    "frechet_audio_distance": "metrics.fad",
    "kernel_audio_distance": "metrics.kad",
    "median_pairwise_distance": "metrics.median_distance",
}

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

__getattr__ = lazy_exports(__name__, _LAZY)
