"""Pure functions on embedding tensors: the three metrics without state, for scripts, tests and notebooks.

The implementations live in one file per metric (:mod:`metrics.kad`, :mod:`metrics.fad`, :mod:`metrics.clap`; KAD's
bandwidth in :mod:`metrics.median_distance`);
this module is the one place to import them from.
"""

from metrics.checks import EmbeddingError
from metrics.clap import clap_score, pair_cosines
from metrics.fad import embedding_statistics, frechet_audio_distance, frechet_distance_from_statistics
from metrics.kad import kernel_audio_distance
from metrics.median_distance import median_pairwise_distance

__all__ = [
    "EmbeddingError",
    "clap_score",
    "embedding_statistics",
    "frechet_audio_distance",
    "frechet_distance_from_statistics",
    "kernel_audio_distance",
    "median_pairwise_distance",
    "pair_cosines",
]
