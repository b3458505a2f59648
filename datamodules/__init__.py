"""Data: audio I/O, the AudioLDM log-mel, sources, streaming, the latent cache, the validator and the
genre-labelled LightningDataModule.

Map of the package (one job per file): ``audio`` (decode, resample), ``features`` (the log-mel recipe),
``manifest`` (folder scan, CSV/JSONL manifests), ``captions`` (caption policy), ``bad_items`` (reasons and checks),
``sources`` / ``hf_source`` / ``webdataset_source`` (where items come from), ``sharding`` and ``ordering`` (who
reads what, in which order), ``dataset`` (map-style clips) and ``streaming`` (IterableDataset), ``latent_cache``
(storage and cached dataset; receives encoders as functions), ``validate`` (``audioldm-lora prepare``),
``atomic_files`` (the one way files and folders are published), ``splits`` (train/val/test by file or by key),
``screening`` (the start-up checks of a source) and ``datamodule``. The synthetic genres are the
demo's (:mod:`audioldm_demo.synthetic`).

Knows no model (docs/model-facts.md, 'Data flow').
"""

from __future__ import annotations

from datamodules.lazy_exports import lazy_exports

# Imported on first use, so that a light module (``datamodules.atomic_files`` for the MOS tools, say) does not
# import torch and Lightning with the package.
_LAZY = {
    "GenreAudioDataModule": "datamodules.datamodule",
    "log_mel_spectrogram": "datamodules.features",
    "normalize_waveform": "datamodules.features",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
