"""A weight-free embedder: per-band mean and standard deviation of the AudioLDM log-mel (128 numbers per clip).

Not a perceptual embedding: it exists so that KAD/FAD run offline, in tests and on the synthetic toy genres without
any checkpoint, and it reacts to exactly the spectral content the model is trained on.
"""

from __future__ import annotations

import torch

from datamodules.features import N_MELS, SAMPLE_RATE, log_mel_spectrogram, normalize_waveform
from metrics.embedders.base import AudioEmbedder


class MelStatisticsEmbedder(AudioEmbedder):
    """``[mean over frames of each of the 64 log-mel bands, their population standard deviation]`` -> 128-d.

    Audio is resampled to 16 kHz (torchaudio), normalised with the AudioLDM recipe (remove the mean, peak 0.5) and
    turned into the AudioLDM log-mel (:func:`datamodules.features.log_mel_spectrogram`) over the whole clip.
    """

    sample_rate = SAMPLE_RATE
    embedding_dim = 2 * N_MELS
    VERSION = 1  # bump when the features change, so that cached embeddings are not reused

    @property
    def embedder_id(self) -> str:
        return f"mel-stats-v{self.VERSION}"

    def _embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        rows = []
        for clip in clips:
            mel = log_mel_spectrogram(normalize_waveform(clip))  # [frames, 64]
            rows.append(torch.cat([mel.mean(dim=0), mel.std(dim=0, correction=0)]))
        return torch.stack(rows)
