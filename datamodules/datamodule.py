"""GenreAudioDataModule: genre-labelled audio-caption pairs as AudioLDM log-mels (or cached latents), split by file.

Sources: a folder per genre, a CSV/JSONL manifest, a Hugging Face dataset or WebDataset shards (one of them).
Paths: map-style for indexed sources (Lightning adds the DistributedSampler under DDP), or streaming (an
IterableDataset sharded over ranks and workers; always for shards), or the latent cache (``latent_cache``).
Which items each split holds is decided in ``splits``; the checks that fail a bad source in ``setup`` are
``screening``'s. This module wires them to the datasets and loaders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from datamodules.audio import AudioInfo
from datamodules.bad_items import BadItem, BadItemError
from datamodules.captions import CaptionPolicy
from datamodules.clip_folder import ClipFolderError, read_prompt_lines
from datamodules.dataset import AudioClipDataset, PromptDataset
from datamodules.latent_cache import SplitRecord, load_cache_index
from datamodules.latent_cache_reader import LatentCacheDataset, check_cache
from datamodules.manifest import AudioItem, DataSourceError, check_root
from datamodules.ordering import EpochSampler
from datamodules.screening import check_files, probe
from datamodules.sharding import Consumer, mix_seed
from datamodules.sources import (
    DataSource,
    FolderSource,
    IndexedSource,
    ManifestSource,
    SourceSettings,
    check_one_source,
    make_source,
)
from datamodules.splits import (
    NO_TEST_SPLIT, SPLIT_NAMES, check_fractions, report_splits, select_genres, shard_streams, split_by_file,
)
from datamodules.stream_loader import StreamLoader
from datamodules.streaming import ItemStream, ShardStream, StreamingClipDataset, item_records
from datamodules.webdataset_source import WebDatasetSource


class GenreAudioDataModule(LightningDataModule):
    """Reads one source of genre-labelled audio-caption pairs; every path yields the same sample fields."""

    root_is_read_as_given = True
    """Whether ``root`` must exist when the module is built (a subclass that writes it in ``prepare_data`` says no)."""

    def __init__(
        self,
        root: str | None = None,
        manifest: str | None = None,
        caption_template: str = "{caption}",
        genres: list[str] | None = None,
        duration: float = 10.24,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 2,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        predict_prompts: list[str] | None = None,
        predict_prompts_file: str | None = None,
        predict_seed: int = 0,
        predict_seeds_per_prompt: int = 1,
        hf_dataset: str | None = None,
        hf_split: str | None = None,
        hf_config: str | None = None,
        audio_column: str = "audio",
        caption_column: str = "caption",
        genre_column: str = "genre",
        shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        test_shards: str | list[str] | None = None,
        caption_fallback: str | None = "{genre} music",
        balance_genres: bool = False,
        streaming: bool | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        latent_cache: str | None = None,
        cache_crops_per_file: int = 4,
    ) -> None:
        """
        Args:
            root: folder-per-genre tree ``root/<genre>/*.wav|flac|mp3|ogg`` (sidecar ``.txt`` captions optional).
            manifest: CSV or JSONL with ``path, caption, genre`` and optional ``start, end, split``.
            caption_template: ``{caption}`` keeps given captions, ``{genre} music`` ignores them,
                ``{caption}, {genre}`` appends the genre.
            genres: keep only these genres (``None``: all).
            duration: clip length in seconds (the paper: 4.0 or 10.24); frames = duration * 100.
            val_fraction: share of each genre's unassigned files held out for validation, which chooses
                checkpoints (by file, never by crop; for shards, by a stable hash of the sample key).
            test_fraction: share of each genre's unassigned files held out for ``lightning test``: scored once,
                never trained on or used to choose a checkpoint. 0 leaves test to rows marked ``split=test``.
            split_seed: seed of the file-level split (docs/splits.md).
            batch_size: training batch size (the paper: 2).
            eval_batch_size: validation/test/predict batch size (default: ``batch_size``).
            num_workers: dataloader worker processes.
            pin_memory: pin host memory for faster GPU copies.
            predict_prompts: prompts for ``predict``.
            predict_prompts_file: a text file with one prompt per line (instead of ``predict_prompts``).
            predict_seed: seed of the first predicted clip; clip i uses ``predict_seed + i``.
            predict_seeds_per_prompt: clips generated per prompt.
            hf_dataset: a Hugging Face dataset: a ``save_to_disk`` directory or a hub id.
            hf_split: its split (``None``: every split, ``validation``/``test`` splits map to val/test).
            hf_config: its configuration name (hub datasets).
            audio_column: the Hugging Face Audio column.
            caption_column: the Hugging Face caption column.
            genre_column: the Hugging Face genre column (text or ClassLabel).
            shards: WebDataset tar shards: paths, brace patterns (``data/train-{000..099}.tar``) or URLs.
            val_shards: shards for validation (default: ``val_fraction`` of ``shards`` by key).
            test_shards: shards for test (default: ``test_fraction`` of ``shards`` by key).
            caption_fallback: template when an item has no caption; ``null`` makes such items bad.
            balance_genres: draw every genre equally often in training (smaller genres repeat).
            streaming: the IterableDataset path (``None``: on for shards, off otherwise).
            shuffle_buffer: seeded shuffle buffer of the streaming path, in samples.
            seed: seed of epoch orders, shuffle buffers and streamed crops.
            latent_cache: train from this latent cache (``audioldm-lora cache`` builds it) instead of audio.
            cache_crops_per_file: crops per training file the cache holds.
        """
        super().__init__()
        self.save_hyperparameters()
        self.captions = CaptionPolicy(caption_template, caption_fallback)
        check_one_source(root, manifest, hf_dataset, shards)
        check_fractions(val_fraction, test_fraction)
        if duration <= 0:
            raise DataSourceError(f"data.init_args.duration must be positive, got {duration}.")
        if shards and streaming is False:
            raise DataSourceError("WebDataset shards are read as a stream; drop `data.streaming: false`.")
        if shards and balance_genres:
            raise DataSourceError(
                "balance_genres needs an indexed source (folder, manifest, Hugging Face); balance WebDataset "
                "shards when writing them."
            )
        # Checked here, not at setup: Lightning starts the loggers (a W&B run) before the data module's setup.
        if root and self.root_is_read_as_given:
            check_root(root)
        if manifest and not Path(manifest).is_file():
            raise DataSourceError(f"Manifest {manifest} (data.init_args.manifest) does not exist.")
        self.splits: dict[str, list[AudioItem]] = {}
        self.genres: list[str] = []
        self.bad_items: list[BadItem] = []
        self.latent_cache_model: dict[str, Any] | None = None
        self.source: DataSource | None = None
        self._datasets: dict[str, Dataset] = {}
        self._streams: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------------ sources
    @property
    def streaming(self) -> bool:
        """Whether the IterableDataset path is used."""
        hp = self.hparams
        return bool(hp.shards) or bool(hp.streaming)

    def make_source(self) -> DataSource:
        """The configured source (built once)."""
        if self.source is None:
            self.source = make_source(self.captions, SourceSettings.from_mapping(self.hparams))
        return self.source

    def identity(self) -> dict[str, Any]:
        """What the splits depend on (the latent cache checks it)."""
        hp = self.hparams
        return {
            "source": self.make_source().describe(),
            "genres": sorted(hp.genres) if hp.genres else None,
            "val_fraction": hp.val_fraction,
            "test_fraction": hp.test_fraction,
            "split_seed": hp.split_seed,
            "val_shards": hp.val_shards,
            "test_shards": hp.test_shards,
        }

    def _read_items(self) -> list[AudioItem]:
        source = self.make_source()
        if not isinstance(source, IndexedSource):
            raise DataSourceError("WebDataset shards have no item list; they are read as a stream.")
        return select_genres(source.items(self.bad_items), self.hparams.genres)

    # ------------------------------------------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        if self.hparams.latent_cache:
            self._setup_from_cache()
        elif self.hparams.shards:
            self._setup_shards()
        else:
            self._setup_items()
        self._warn_bad_items()

    def _warn_bad_items(self) -> None:
        if self.bad_items:
            rank_zero_warn(
                f"Skipping {len(self.bad_items)} unreadable file(s) or bad item(s): "
                + "; ".join(str(bad) for bad in self.bad_items[:5])
                + (" ..." if len(self.bad_items) > 5 else "")
                + " (`audioldm-lora prepare` reports them all)"
            )

    def _setup_items(self) -> None:
        source = self.make_source()
        items = self._read_items()
        infos: dict[str, AudioInfo] | None = None
        if isinstance(source, (FolderSource, ManifestSource)):
            items, infos = check_files(items, self.bad_items)
        elif items:
            probe(item_records(items, source.read), self.hparams.duration)  # type: ignore[attr-defined]
        if not items:
            self._warn_bad_items()
            raise DataSourceError(
                "No readable audio in the data source; every item is bad (see the warning, or run "
                "`audioldm-lora prepare` for each item's reason)."
            )
        plan = split_by_file(items, self.hparams.val_fraction, self.hparams.test_fraction, self.hparams.split_seed)
        self.splits = plan.items
        if not self.splits["train"]:
            raise DataSourceError("The training split is empty; lower val_fraction or mark rows split=train.")
        report_splits(plan)
        self.genres = sorted({item.genre for item in self.splits["train"]})
        hp = self.hparams
        for name, split_items in self.splits.items():
            train = name == "train"
            if self.streaming:
                stream = ItemStream(split_items, source.read, balance=hp.balance_genres and train)  # type: ignore[attr-defined]
                self._datasets[name] = StreamingClipDataset(
                    stream, hp.duration, random_crop=train, shuffle=train, seed=hp.seed,
                    shuffle_buffer=hp.shuffle_buffer if train else 0,
                )
            else:
                split_infos = [infos[i.path] for i in split_items] if infos is not None else None
                self._datasets[name] = AudioClipDataset(
                    split_items, split_infos, hp.duration, random_crop=train, reader=source.read  # type: ignore[attr-defined]
                )

    def _shard_streams(self) -> dict[str, ShardStream]:
        """Train and validation streams of the shards (see :func:`~datamodules.splits.shard_streams`)."""
        hp = self.hparams
        source = self.make_source()
        assert isinstance(source, WebDatasetSource)
        return shard_streams(source, self.captions, hp.genres, hp.val_shards, hp.test_shards, hp.val_fraction,
                             hp.test_fraction, hp.split_seed)

    def _setup_shards(self) -> None:
        hp = self.hparams
        self._streams = self._shard_streams()
        train = self._streams["train"]
        probe((record for record in train.plan(Consumer(), hp.seed, 0, shuffle=False).records), hp.duration)
        self.genres = sorted(hp.genres) if hp.genres else train.genres()
        for name, stream in self._streams.items():
            training = name == "train"
            self._datasets[name] = StreamingClipDataset(
                stream, hp.duration, random_crop=training, shuffle=training, seed=hp.seed,
                shuffle_buffer=hp.shuffle_buffer if training else 0,
            )
        rank_zero_info(f"Data: WebDataset shards {len(train.source.urls)}; genres {self.genres or 'unknown'}")

    def _setup_from_cache(self) -> None:
        hp = self.hparams
        directory = Path(hp.latent_cache)
        index = check_cache(load_cache_index(directory), directory, hp.duration, hp.cache_crops_per_file, self.identity())
        self.latent_cache_model = index["model"]
        cached = {name: LatentCacheDataset(directory, index, name, random_crop=name == "train")
                  for name in ("train", "val", "test")}
        if not len(cached["train"]):
            raise DataSourceError(f"The latent cache at {directory} holds no training item.")
        self._datasets.update(cached)
        # The items behind the cached entries, for whoever reads `splits` (evaluation references, reports).
        self.splits = {
            name: [AudioItem(e["path"], e["caption"], e["genre"], e["crops"][0]["offset"]) for e in dataset.entries]
            for name, dataset in cached.items()
        }
        self.genres = sorted(set(cached["train"].genres))
        rank_zero_info(
            f"Data: latent cache {directory}: {len(cached['train'])} train / {len(cached['val'])} val items; "
            f"model {index['model'].get('name')}"
        )

    # --------------------------------------------------------------------------------------- records (tools)
    def split_records(self) -> Iterator[SplitRecord]:
        """Every ``(split, item, audio)`` of train, val and test, in a fixed
        order; bad items as :class:`BadItem`. What ``audioldm-lora cache`` encodes. Call after :meth:`setup`
        on a module without ``latent_cache``."""
        if self.hparams.shards:
            for name, stream in self._shard_streams().items():
                for record in stream.plan(Consumer(), self.hparams.seed, 0, shuffle=False).records:
                    yield record if isinstance(record, BadItem) else (name, *record)
            return
        source = self.make_source()
        for name in SPLIT_NAMES:
            for item in self.splits.get(name, []):
                try:
                    yield name, item, source.read(item)  # type: ignore[attr-defined]
                except BadItemError as error:
                    yield error.item

    def split_record_count(self) -> int | None:
        """How many records :meth:`split_records` yields (a progress total); None for shards, whose count is known
        only once streamed."""
        if self.hparams.shards:
            return None
        return sum(len(self.splits.get(name, [])) for name in SPLIT_NAMES)

    # --------------------------------------------------------------------------------------------- loaders
    def _loader(self, split: str, train: bool) -> StatefulDataLoader:
        """A torchdata ``StatefulDataLoader`` (a stream's: :class:`StreamLoader`), whose position Lightning saves
        and restores, so a resume continues mid-epoch. Orders and crops are functions of seed, epoch and position
        (:class:`EpochSampler`, :class:`StreamingClipDataset`); worker seeds come from the loader's own generator."""
        hp = self.hparams
        dataset = self._datasets[split]
        batch_size = hp.batch_size if train else (hp.eval_batch_size or hp.batch_size)
        iterable = isinstance(dataset, StreamingClipDataset)
        drop_last = train and (iterable or len(dataset) > batch_size)  # type: ignore[arg-type]
        sampler = None
        if train and not iterable:
            genres = getattr(dataset, "genres", None) or [i.genre for i in dataset.items]  # type: ignore[attr-defined]
            sampler = EpochSampler(genres, seed=hp.seed, shuffle=True, balance=hp.balance_genres,
                                   batch_size=batch_size, drop_last=drop_last)
        loader_class = StreamLoader if train and iterable else StatefulDataLoader
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            # Persistent workers keep each worker's dataset copy, whose epoch counter orders the stream.
            persistent_workers=hp.num_workers > 0,
            generator=torch.Generator().manual_seed(mix_seed(hp.seed, split, "loader")),
            collate_fn=getattr(dataset, "collate", None),  # the latent cache pads variable-length text streams
        )

    def train_dataloader(self) -> StatefulDataLoader:
        """The training loader; a stream continues at the trainer's (restored) epoch."""
        loader = self._loader("train", train=True)
        if self.trainer is not None:
            # A resumed run's fresh sampler and dataset copies would count epochs from 0, and Lightning sets the
            # restored epoch only after the first indices are drawn (datamodules.ordering.EpochSampler).
            target = loader if isinstance(loader, StreamLoader) else loader.sampler
            target.set_epoch(self.trainer.current_epoch)  # type: ignore[union-attr]
        return loader

    def _has(self, split: str) -> bool:
        dataset = self._datasets.get(split)
        if dataset is None:
            return False
        if isinstance(dataset, StreamingClipDataset):
            return bool(self.splits[split]) if self.splits else True
        return len(dataset) > 0  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", train=False) if self._has("val") else []

    def test_dataloader(self) -> DataLoader:
        """The held-out test loader; a run without test files stops here rather than score another split."""
        if not self._has("test"):
            raise DataSourceError(NO_TEST_SPLIT)
        return self._loader("test", train=False)

    @property
    def bad_items_seen(self) -> int:
        """Bad items skipped so far (all splits and workers of this process; each sample's ``skipped`` too)."""
        return sum(d.bad.seen for d in self._datasets.values() if hasattr(d, "bad"))

    # ------------------------------------------------------------------------------------------------ predict
    def predict_prompts(self) -> list[str]:
        """The prompts of ``predict``, from the list or the file."""
        hp = self.hparams
        if hp.predict_prompts_file:
            path = Path(hp.predict_prompts_file)
            try:
                prompts = read_prompt_lines(path) if path.is_file() else []
            except ClipFolderError as error:
                raise DataSourceError(f"data.init_args.predict_prompts_file: {error}") from None
            if not prompts:
                raise DataSourceError(f"predict_prompts_file {path} does not exist or holds no prompt (one per line).")
            return prompts
        if hp.predict_prompts:
            return list(hp.predict_prompts)
        genres = self.genres or (sorted(hp.genres) if hp.genres else sorted({i.genre for i in self._read_items()}))
        return [f"{genre.replace('_', ' ')} music" for genre in genres]

    def predict_dataloader(self) -> DataLoader:
        prompts = [p for p in self.predict_prompts() for _ in range(self.hparams.predict_seeds_per_prompt)]
        seeds = [self.hparams.predict_seed + i for i in range(len(prompts))]
        return DataLoader(
            PromptDataset(prompts, seeds), batch_size=self.hparams.eval_batch_size or self.hparams.batch_size
        )
