"""The data module of the offline recipes: the synthetic genre dataset, written into its own cache folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from audioldm_demo.synthetic import write_synthetic_dataset
from datamodules.datamodule import GenreAudioDataModule


class SyntheticGenreDataModule(GenreAudioDataModule):
    """:class:`~datamodules.datamodule.GenreAudioDataModule` over the procedural genres of
    :mod:`audioldm_demo.synthetic`, written into ``synthetic_dir`` on first use.

    Only this folder is ever written: a ``root`` given explicitly is read like any data root (a root that does not
    exist is an error naming it, as with the core class), never filled with synthetic audio.
    """

    def __init__(
        self,
        synthetic_dir: str = ".cache/synthetic-genres",
        synthetic_clips_per_genre: int = 8,
        synthetic_duration: float = 2.0,
        root: str | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            synthetic_dir: the demo's cache folder of synthetic genres (written when missing).
            synthetic_clips_per_genre: clips per genre written there.
            synthetic_duration: seconds per synthetic clip.
            root: read this folder-per-genre tree instead (nothing is synthesised).
            **kwargs: every other argument of :class:`~datamodules.datamodule.GenreAudioDataModule`.
        """
        self._synthesize = root is None and not any(kwargs.get(key) for key in ("manifest", "hf_dataset", "shards"))
        self.root_is_read_as_given = not self._synthesize  # the synthetic folder is written by prepare_data
        super().__init__(root=synthetic_dir if self._synthesize else root, **kwargs)
        # save_hyperparameters records this constructor's ``root`` (None); the parent reads the folder it reads.
        self.hparams["root"] = synthetic_dir if self._synthesize else root

    def prepare_data(self) -> None:
        """Write the synthetic dataset into ``synthetic_dir`` once (rank zero), when it is missing."""
        directory = Path(self.hparams.synthetic_dir)
        if self._synthesize and not directory.exists():
            rank_zero_info(f"Writing the synthetic genre dataset to {directory}.")
            write_synthetic_dataset(
                directory,
                clips_per_genre=self.hparams.synthetic_clips_per_genre,
                duration=self.hparams.synthetic_duration,
                seed=self.hparams.split_seed,
            )
