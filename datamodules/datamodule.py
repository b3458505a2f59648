"""GenreAudioDataModule: genre-labelled audio-caption pairs as AudioLDM log-mels, split by source file."""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from pathlib import Path

from lightning import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from datamodules.audio import AudioDecodeError, audio_info
from datamodules.dataset import AudioClipDataset, PromptDataset
from datamodules.manifest import AudioItem, DataSourceError, read_csv_manifest, scan_genre_folders
from datamodules.synthetic import write_synthetic_dataset

log = logging.getLogger(__name__)


class GenreAudioDataModule(LightningDataModule):
    """Reads a folder-per-genre tree (``root``) or a CSV manifest (``manifest``) of audio-caption pairs."""

    def __init__(
        self,
        root: str | None = None,
        manifest: str | None = None,
        caption_template: str = "{caption}",
        genres: list[str] | None = None,
        duration: float = 10.24,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 2,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        synthesize_if_missing: bool = False,
        synthetic_clips_per_genre: int = 8,
        synthetic_duration: float = 2.0,
        predict_prompts: list[str] | None = None,
        predict_prompts_file: str | None = None,
        predict_seed: int = 0,
        predict_seeds_per_prompt: int = 1,
    ) -> None:
        """
        Args:
            root: folder-per-genre tree ``root/<genre>/*.wav|flac|mp3|ogg`` (sidecar ``.txt`` captions optional).
            manifest: CSV with ``path, caption, genre`` and optional ``start, end, split`` (instead of ``root``).
            caption_template: ``{caption}`` keeps given captions (genre template when empty), ``{genre} music``
                ignores them, ``{caption}, {genre}`` appends the genre.
            genres: keep only these genres (``None``: all).
            duration: clip length in seconds (the paper: 4.0 or 10.24); frames = duration * 100.
            val_fraction: share of source files held out for validation (split by file, never by crop).
            split_seed: seed of the file-level split.
            batch_size: training batch size (the paper: 2).
            eval_batch_size: validation/test/predict batch size (default: ``batch_size``).
            num_workers: dataloader worker processes.
            pin_memory: pin host memory for faster GPU copies.
            synthesize_if_missing: write the synthetic genre dataset into ``root`` when it does not exist.
            synthetic_clips_per_genre: clips per genre of the synthetic dataset.
            synthetic_duration: seconds per synthetic clip.
            predict_prompts: prompts for ``predict``.
            predict_prompts_file: a text file with one prompt per line (instead of ``predict_prompts``).
            predict_seed: seed of the first predicted clip; clip i uses ``predict_seed + i``.
            predict_seeds_per_prompt: clips generated per prompt.
        """
        super().__init__()
        self.save_hyperparameters()
        if (root is None) == (manifest is None):
            raise DataSourceError("Give exactly one data source: `data.root` (folder per genre) or `data.manifest` (CSV).")
        if not 0.0 <= val_fraction < 1.0:
            raise DataSourceError(f"val_fraction must be in [0, 1), got {val_fraction}.")
        if duration <= 0:
            raise DataSourceError(f"duration must be positive, got {duration}.")
        self.splits: dict[str, list[AudioItem]] = {}
        self.genres: list[str] = []
        self.bad_items: list[tuple[str, str]] = []
        self._datasets: dict[str, AudioClipDataset] = {}

    def prepare_data(self) -> None:
        """Write the synthetic dataset once (rank zero), when asked and missing."""
        root = self.hparams.root
        if self.hparams.synthesize_if_missing and root is not None and not Path(root).exists():
            rank_zero_info(f"Writing the synthetic genre dataset to {root}.")
            write_synthetic_dataset(
                root,
                clips_per_genre=self.hparams.synthetic_clips_per_genre,
                duration=self.hparams.synthetic_duration,
                seed=self.hparams.split_seed,
            )

    def _read_items(self) -> list[AudioItem]:
        hp = self.hparams
        if hp.root is not None:
            items = scan_genre_folders(hp.root, hp.caption_template)
        else:
            items = read_csv_manifest(hp.manifest, hp.caption_template)
        if hp.genres:
            present = {item.genre for item in items}
            missing = sorted(set(hp.genres) - present)
            if missing:
                raise DataSourceError(f"Genre(s) {missing} have no clips in the data source; present: {sorted(present)}.")
            items = [item for item in items if item.genre in set(hp.genres)]
        return items

    def _split(self, items: list[AudioItem]) -> dict[str, list[AudioItem]]:
        """Explicit ``split`` column first; the rest split by source file with a seeded shuffle."""
        splits: dict[str, list[AudioItem]] = {"train": [], "val": [], "test": []}
        unassigned = [item for item in items if item.split is None]
        for item in items:
            if item.split is not None:
                splits[item.split].append(item)
        files = sorted({item.path for item in unassigned})
        random.Random(self.hparams.split_seed).shuffle(files)
        n_val = math.ceil(self.hparams.val_fraction * len(files)) if self.hparams.val_fraction > 0 else 0
        if n_val >= len(files) and files:
            n_val = len(files) - 1
        val_files = set(files[:n_val])
        for item in unassigned:
            splits["val" if item.path in val_files else "train"].append(item)
        if not splits["test"]:
            splits["test"] = list(splits["val"])
        return splits

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        items = self._read_items()
        infos, kept = {}, []
        for item in items:
            if item.path not in infos:
                try:
                    infos[item.path] = audio_info(item.path)
                except AudioDecodeError as error:
                    self.bad_items.append((item.path, str(error)))
                    infos[item.path] = None
            if infos[item.path] is not None:
                kept.append(item)
        if self.bad_items:
            rank_zero_warn(
                f"Skipping {len(self.bad_items)} unreadable file(s): "
                + "; ".join(reason for _, reason in self.bad_items[:5])
                + (" ..." if len(self.bad_items) > 5 else "")
            )
        if not kept:
            raise DataSourceError("No readable audio in the data source; every file failed to decode (see warnings).")
        self.splits = self._split(kept)
        if not self.splits["train"]:
            raise DataSourceError("The training split is empty; lower val_fraction or mark rows split=train.")
        self.genres = sorted({item.genre for item in self.splits["train"]})
        for name, split_items in self.splits.items():
            self._datasets[name] = AudioClipDataset(
                split_items, [infos[i.path] for i in split_items], self.hparams.duration, random_crop=name == "train"
            )
        counts = Counter(item.genre for item in self.splits["train"])
        rank_zero_info(
            f"Data: {len(self.splits['train'])} train / {len(self.splits['val'])} val items; genres {dict(counts)}"
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        batch_size = self.hparams.batch_size if split == "train" else (self.hparams.eval_batch_size or self.hparams.batch_size)
        return DataLoader(
            self._datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=split == "train" and len(self._datasets[split]) > batch_size,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False) if self.splits["val"] else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test", shuffle=False) if self.splits["test"] else []

    def predict_prompts(self) -> list[str]:
        """The prompts of ``predict``, from the list or the file."""
        hp = self.hparams
        if hp.predict_prompts_file:
            path = Path(hp.predict_prompts_file)
            if not path.is_file():
                raise DataSourceError(f"predict_prompts_file {path} does not exist.")
            prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if not prompts:
                raise DataSourceError(f"predict_prompts_file {path} holds no prompt (one per line).")
            return prompts
        if hp.predict_prompts:
            return list(hp.predict_prompts)
        genres = self.genres or sorted({item.genre for item in self._read_items()})
        return [f"{genre.replace('_', ' ')} music" for genre in genres]

    def predict_dataloader(self) -> DataLoader:
        prompts = [p for p in self.predict_prompts() for _ in range(self.hparams.predict_seeds_per_prompt)]
        seeds = [self.hparams.predict_seed + i for i in range(len(prompts))]
        return DataLoader(
            PromptDataset(prompts, seeds), batch_size=self.hparams.eval_batch_size or self.hparams.batch_size
        )
