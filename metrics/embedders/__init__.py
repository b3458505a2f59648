"""Audio (and text) embedders behind one interface: waveforms at any sample rate in, ``[N, D]`` out.

Importing this package imports neither transformers' CLAP classes nor laion-clap; each backend loads on first use.
"""

from metrics.embedders.base import AudioEmbedder, prepare_waveforms, seeded_random_state
from metrics.embedders.crepe import CrepeEmbedder
from metrics.embedders.factory import build_embedder
from metrics.specs import EMBEDDER_SPECS
from metrics.embedders.hf_clap import DEFAULT_CLAP_MODEL, ClapEmbedder
from metrics.embedders.laion import LaionClapEmbedder
from metrics.embedders.mel_stats import MelStatisticsEmbedder

__all__ = [
    "DEFAULT_CLAP_MODEL",
    "EMBEDDER_SPECS",
    "AudioEmbedder",
    "ClapEmbedder",
    "CrepeEmbedder",
    "LaionClapEmbedder",
    "MelStatisticsEmbedder",
    "build_embedder",
    "prepare_waveforms",
    "seeded_random_state",
]
