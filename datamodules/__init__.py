"""Data: audio I/O, the AudioLDM log-mel, sources, streaming, the latent cache, the validator, synthetic genres and
the genre-labelled LightningDataModule.

Map of the package (one job per file): ``audio`` (decode, resample), ``features`` (the log-mel recipe),
``manifest`` (folder scan, CSV/JSONL manifests), ``captions`` (caption policy), ``bad_items`` (reasons and checks),
``sources`` / ``hf_source`` / ``webdataset_source`` (where items come from), ``sharding`` and ``ordering`` (who
reads what, in which order), ``dataset`` (map-style clips) and ``streaming`` (IterableDataset), ``latent_cache``
(storage and cached dataset; receives encoders as functions), ``validate`` (``audioldm-lora prepare``),
``synthetic`` and ``datamodule``.

Knows no model (../shared/DESIGN.md section 1).
"""

from datamodules.datamodule import GenreAudioDataModule
from datamodules.features import log_mel_spectrogram, normalize_waveform

__all__ = ["GenreAudioDataModule", "log_mel_spectrogram", "normalize_waveform"]
