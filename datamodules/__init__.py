"""Data: audio I/O, the AudioLDM log-mel, synthetic genres and the genre-labelled LightningDataModule.

Knows no model (../shared/DESIGN.md section 1).
"""

from datamodules.datamodule import GenreAudioDataModule
from datamodules.features import log_mel_spectrogram, normalize_waveform

__all__ = ["GenreAudioDataModule", "log_mel_spectrogram", "normalize_waveform"]
