"""Objective evaluation during training and testing: KAD, FAD and the CLAP score of LoRA against the base model.

At every validation (``trainer.val_check_interval``) the evaluation prompt set (per genre, fixed seeds) is generated
with the adapter, embedded, and scored against reference clips; the base model's scores on the same prompts and
seeds are computed once (they cannot change) and kept in checkpoints, so a resumed run does not generate them
again. Logged: ``val/kad``, ``val/fad``, ``val/clap`` (with a CLAP
embedder), their ``*_base`` and ``*_delta`` (LoRA minus base) and per-genre ``val/kad/<genre>``, so
``ModelCheckpoint(monitor="val/kad", mode="min")`` keeps the best adapter. ``lightning test`` writes the paper's
table (base, LoRA, delta per genre and overall) to ``<run dir>/evaluation/test.md`` and ``.json``; each report has
an ``.npz`` of the adapter's embeddings beside it (:mod:`metrics.embedding_file`, what ``sweep-report`` pairs). Every value has
its 95% interval and every delta its paired interval (:mod:`metrics.paired`; docs/statistics.md).

Under DDP the evaluation set is split over the ranks (:mod:`callbacks.rank_share`): each rank generates and embeds
its share of the clips (and of the reference clips), the embeddings are gathered back in the set's order, and every
rank computes the same scores from them, so every rank holds the monitored value for ``ModelCheckpoint`` and early
stopping, equal to one process's. Only rank zero writes files. A failure on one rank fails every rank with its
message. Everything an evaluation needs (the embedder, reference clips, prompts, a writable output folder) is
checked when fitting or testing starts, on every rank, not at the first validation.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from callbacks.progress import clip_progress
from callbacks.rank_share import gather_in_order, raise_together, rank_share
from callbacks.run_dir import run_directory
from callbacks.wandb_logger import wandb_loggers
from datamodules.atomic_files import atomic_write_json, atomic_write_text
from datamodules.audio import AudioSource, load_audio
from datamodules.captions import render_caption
from datamodules.clip_folder import AUDIO_EXTENSIONS
from datamodules.sources import IndexedSource
from lightning_modules.ab import generate_ab
from lightning_modules.sampling_settings import SamplingSettings
from metrics import build_embedder
from metrics.comparison import compare_reports, compared_with_itself, comparison_markdown, flat_row
from metrics.embedding_file import save_embeddings
from metrics.genre_scores import OVERALL, GenreScores, LabelledEmbeddings
from metrics.paired import paired_differences
from lightning_modules.errors import SettingError


def reference_clips_from_folder(root: str | Path) -> list[tuple[str, str]]:
    """(path, genre) of every audio file under ``root/<genre>/``."""
    root = Path(root)
    clips = [(str(p), p.parent.name) for p in sorted(root.glob("*/*")) if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not clips:
        raise SettingError(f"No reference clips under {root}/<genre>/ ({', '.join(AUDIO_EXTENSIONS)}).")
    return clips


class GenreEvaluation(Callback):
    """KAD/FAD/CLAP of generated clips against reference clips, LoRA against base."""

    def __init__(
        self,
        embedder: str = "mel-stats",
        reference_dir: str | None = None,
        prompt_template: str = "{genre} music",
        genres: list[str] | None = None,
        clips_per_genre: int = 8,
        seed: int = 1234,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        duration: float | None = None,
        scheduler: str | None = None,
        batch_size: int = 8,
        clap_convention: str = "raw",
        every_n_validations: int = 1,
    ) -> None:
        """
        Args:
            embedder: ``mel-stats`` (offline), ``clap`` / ``clap:<id or dir>`` or ``laion:<ckpt>`` (also the CLAP score).
            reference_dir: folder per genre of reference clips; default: the data module's validation split
                (``test`` split in ``lightning test``).
            prompt_template: evaluation prompt of a genre.
            genres: genres to evaluate (default: the data module's).
            clips_per_genre: generated clips per genre (seeds ``seed``, ``seed + 1``, ...); KAD needs at least 2.
            seed: first seed.
            num_inference_steps, guidance_scale, duration, scheduler: sampling (default: the model's settings).
            batch_size: clips generated at once.
            clap_convention: ``raw`` cosine (audiocraft, stable-audio-metrics) or ``shifted`` (cos + 1) / 2.
            every_n_validations: evaluate at every n-th validation run.
        """
        if clips_per_genre < 2:
            raise SettingError("clips_per_genre must be at least 2 (KAD and FAD are undefined on one clip).")
        self.embedder_spec = embedder
        self.reference_dir = reference_dir
        self.prompt_template = prompt_template
        self.genres = genres
        self.clips_per_genre = clips_per_genre
        self.seed = seed
        self.sampling = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
                         "duration": duration, "scheduler": scheduler}
        self.batch_size = batch_size
        self.clap_convention = clap_convention
        self.every_n_validations = every_n_validations
        self._validations = 0
        self._embedder = None
        self._references: dict[str, LabelledEmbeddings] = {}
        self._base_scores: dict[str, GenreScores] = {}  # per split: the base arm, kept for paired intervals
        self._base_reports: dict[str, dict] = {}
        # Per split: the base arm's whole-set embeddings and what they were sampled from, kept in checkpoints so a
        # resumed run scores the base from them instead of generating it again.
        self._base_embeddings: dict[str, dict[str, Any]] = {}
        self.last_report: dict[str, Any] | None = None
        self._last_embeddings: tuple[LabelledEmbeddings, np.ndarray, list[str], np.ndarray | None] | None = None

    # ------------------------------------------------------------------------------------------------ inputs
    def _resolved_sampling(self, pl_module: LightningModule) -> SamplingSettings:
        """The module's sampling settings with this callback's overrides."""
        return pl_module.sampling.with_overrides(**self.sampling)

    def _genres(self, trainer: Trainer) -> list[str]:
        genres = self.genres or list(getattr(trainer.datamodule, "genres", []) or [])
        if not genres:
            raise SettingError("GenreEvaluation needs `genres`, or a data module with `genres`.")
        return genres

    def prompts_and_seeds(self, trainer: Trainer) -> tuple[list[str], list[int], list[str]]:
        """The evaluation set: ``clips_per_genre`` seeds for each genre's prompt."""
        prompts, seeds, labels = [], [], []
        for genre in self._genres(trainer):
            for i in range(self.clips_per_genre):
                prompts.append(render_caption(self.prompt_template, genre))
                seeds.append(self.seed + i)
                labels.append(genre)
        return prompts, seeds, labels

    def _reference_clips(self, trainer: Trainer, split: str) -> list[tuple[AudioSource, str]]:
        if self.reference_dir:
            return reference_clips_from_folder(self.reference_dir)
        splits = getattr(trainer.datamodule, "splits", None) or {}
        items = splits.get(split) or []
        if not items:
            raise SettingError(f"GenreEvaluation has no reference clips: set `reference_dir`, or give the data module "
                               f"a non-empty {split} split.")
        # A dataset's items (Hugging Face rows) hold their audio as bytes: read them through the data source.
        source = getattr(trainer.datamodule, "source", None)
        read = source.read if isinstance(source, IndexedSource) else None
        unique = sorted({(item.path, item.genre): item for item in items}.items())
        return [(read(item) if read is not None else path, genre) for (path, genre), item in unique]

    def embedder(self, pl_module: LightningModule):
        if self._embedder is None:
            self._embedder = build_embedder(self.embedder_spec, device=pl_module.device)
        return self._embedder

    def reference(self, trainer: Trainer, pl_module: LightningModule, split: str) -> LabelledEmbeddings:
        """Reference embeddings of ``split`` (computed once per split, each rank embedding its share)."""
        if split not in self._references:
            duration = self._resolved_sampling(pl_module).duration
            clips = self._reference_clips(trainer, split)
            share, error, embeddings = rank_share(len(clips), trainer), None, torch.empty(0)
            try:
                if share:
                    waveforms = [load_audio(clips[i][0], 16_000, duration=duration) for i in share]
                    embeddings = self.embedder(pl_module).embed_audio(waveforms, 16_000)
            except Exception as failure:  # every rank must learn of it before the gather below
                error = failure
            raise_together(trainer, error, f"Embedding the {split} reference clips")
            self._references[split] = LabelledEmbeddings(
                gather_in_order(trainer, embeddings, len(clips)).numpy(), [genre for _, genre in clips],
                f"{split} reference clips",
            )
        return self._references[split]

    # ------------------------------------------------------------------------------------------------ start checks
    def check_ready(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        """Fail before the first step, on every rank and with one message, on what would fail at the first
        evaluation: settings, genres and prompts, the embedder (its weights load), reference clips, the output
        folder.

        Raises:
            SettingError: naming the callback's setting at fault (or :class:`~callbacks.rank_share.RankFailure`
                with another rank's message).
        """
        # First and on every rank: trainer.log_dir broadcasts under DDP, so no rank may skip it (or fail before it).
        folder = run_directory(trainer) / "evaluation"
        error = None
        try:
            self._resolved_sampling(pl_module)
            _, _, labels = self.prompts_and_seeds(trainer)
            try:
                self.embedder(pl_module).load()
            except Exception as failure:
                self._embedder = None
                raise SettingError(
                    f"GenreEvaluation's embedder {self.embedder_spec!r} cannot be loaded ({type(failure).__name__}: "
                    f"{failure}). Give a CLAP model that is on this machine (`clap:/path/to/saved/clap`, or fetch "
                    "laion/larger_clap_music once with `hf download laion/larger_clap_music`), or `mel-stats`, which "
                    "needs no weights."
                ) from failure
            reference_genres = {genre for _, genre in self._reference_clips(trainer, split)}
            missing = sorted(set(labels) - reference_genres)
            if missing:
                rank_zero_warn(f"GenreEvaluation: no {split} reference clips of {missing}; their rows compare with "
                               "the whole reference set (the report says so) and are not logged as genre scores.")
            if trainer.is_global_zero:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as failure:
                    raise SettingError(f"GenreEvaluation cannot write its reports to {folder} ({failure}); set "
                                       "trainer.default_root_dir to a folder you can write.") from failure
        except Exception as failure:  # every rank must learn of it: one rank failing alone would hang the others
            error = failure
        raise_together(trainer, error, "GenreEvaluation's start checks")

    # ------------------------------------------------------------------------------------------------ scoring
    def _text_embeddings(self, prompts: list[str], pl_module: LightningModule) -> torch.Tensor | None:
        """This rank's prompt embeddings (with a text embedder, for the CLAP score): the same for both arms."""
        embedder = self.embedder(pl_module)
        if not embedder.supports_text:
            return None
        return embedder.embed_text(prompts).cpu() if prompts else torch.empty(0)

    def _score(self, audio: torch.Tensor, text: torch.Tensor | None, labels: list[str],
               reference: LabelledEmbeddings, source: str) -> GenreScores:
        """The scores of one arm from the whole set's embeddings (every rank computes the same)."""
        # No torchmetrics sync: the embeddings are already the whole set, gathered in order (callbacks.rank_share).
        scores = GenreScores(reference, source, genres=sorted(set(labels)), convention=self.clap_convention,
                             sync_on_compute=False)
        scores.update(audio, labels, text)
        return scores

    def evaluate(self, trainer: Trainer, pl_module: LightningModule, split: str) -> dict[str, Any]:
        """Generate the evaluation set with (and, once, without) the adapter and score both against ``split``; under
        DDP each rank generates and embeds its share."""
        prompts, seeds, labels = self.prompts_and_seeds(trainer)
        reference = self.reference(trainer, pl_module, split)
        sampling = self._resolved_sampling(pl_module)
        base_key = json.dumps({"prompts": prompts, "seeds": seeds, "sampling": asdict(sampling),
                               "embedder": self.embedder(pl_module).embedder_id})
        stored = self._base_embeddings.get(split)
        if split not in self._base_reports and stored is not None and stored["key"] == base_key:
            self._base_scores[split] = self._score(stored["audio"], stored["text"], labels, reference, "base model")
            self._base_reports[split] = self._base_scores[split].compute()
        need_base = split not in self._base_reports
        share = rank_share(len(prompts), trainer)
        rank_zero_info(f"Evaluating {len(prompts)} clips ({'LoRA and base' if need_base else 'LoRA'}) on {split}"
                       + (f", {len(share)} on each of {trainer.world_size} ranks" if len(share) < len(prompts) else ""))
        rate = pl_module.backbone.sampling_rate
        arms: dict[str, torch.Tensor] = {}
        text, error = None, None
        try:
            share_prompts = [prompts[i] for i in share]
            if share:
                # Each generated batch is embedded at once and its audio dropped: memory is clips x embedding width.
                embedder = self.embedder(pl_module)
                arms["lora"], arms["base"] = generate_ab(
                    pl_module.backbone, share_prompts, [seeds[i] for i in share], sampling,
                    batch_size=self.batch_size, with_base=need_base, progress=clip_progress(f"Evaluation on {split}"),
                    keep=lambda waveforms: embedder.embed_audio(list(waveforms), rate))
            else:  # a rank with no share (fewer clips than ranks)
                arms["lora"], arms["base"] = torch.empty(0), torch.empty(0)
            text = self._text_embeddings(share_prompts, pl_module)
        except Exception as failure:  # every rank must learn of it before the gathers below
            error = failure
        raise_together(trainer, error, f"Evaluation on {split}")
        if text is not None:
            text = gather_in_order(trainer, text, len(prompts))
        whole = {arm: (gather_in_order(trainer, arms[arm], len(prompts)), text)
                 for arm in (("lora", "base") if need_base else ("lora",))}
        if need_base:
            self._base_embeddings[split] = {"key": base_key, "audio": whole["base"][0], "text": whole["base"][1]}
            self._base_scores[split] = self._score(*whole["base"], labels, reference, "base model")
            self._base_reports[split] = self._base_scores[split].compute()
        audio, text = whole["lora"]
        lora_scores = self._score(audio, text, labels, reference, "LoRA")
        self._last_embeddings = (reference, audio.numpy(), labels, None if text is None else text.numpy())
        lora_report = lora_scores.compute()
        rows = compare_reports(self._base_reports[split], lora_report,
                               paired_differences(self._base_scores[split], lora_scores))
        self.last_report = {"split": split, "step": trainer.global_step, "rows": rows, "sampling": asdict(sampling),
                            "embedder": self.embedder(pl_module).embedder_id, "lora": lora_report,
                            "base": self._base_reports[split]}
        return self.last_report

    def _log(self, pl_module: LightningModule, prefix: str, rows: dict[str, dict]) -> None:
        overall = rows[OVERALL]
        for metric, short in (("kad", "kad"), ("fad", "fad"), ("clap_score", "clap")):
            if overall[f"{metric}_lora"] is None:
                continue
            pl_module.log(f"{prefix}/{short}", float(overall[f"{metric}_lora"]))
            pl_module.log(f"{prefix}/{short}_base", float(overall[f"{metric}_base"]))
            pl_module.log(f"{prefix}/{short}_delta", float(overall[f"{metric}_delta"]))
            for genre, row in rows.items():
                # A genre compared with other genres' clips is no score of that genre: never logged as one.
                if genre != OVERALL and row[f"{metric}_lora"] is not None and compared_with_itself(genre, row):
                    pl_module.log(f"{prefix}/{short}/{genre}", float(row[f"{metric}_lora"]))

    def _write(self, trainer: Trainer, name: str, report: dict[str, Any], title: str) -> Path:
        directory = run_directory(trainer) / "evaluation"
        if not trainer.is_global_zero:
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        markdown = comparison_markdown(report["rows"], title)
        atomic_write_text(directory / f"{name}.md", markdown)
        atomic_write_json(directory / f"{name}.json", report, default=_json_default)
        if self._last_embeddings is not None:  # the LoRA arm, for comparisons between runs (sweep-report)
            reference, audio, labels, text = self._last_embeddings
            save_embeddings(directory / f"{name}.npz", reference, audio, labels, text, self.clap_convention)
        flat = {group: flat_row(row) for group, row in report["rows"].items()}
        keys = list(dict.fromkeys(key for row in flat.values() for key in row))  # interval bounds: own columns
        for logger in wandb_loggers(trainer):
            logger.log_table(f"evaluation/{name}", columns=["genre", *keys],
                             data=[[group, *(row.get(key) for key in keys)] for group, row in flat.items()])
        return directory

    # ------------------------------------------------------------------------------------------------ hooks
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on as the uninterrupted one: the validations counted so far (for
        ``every_n_validations``) and the base arm's embeddings per split with the prompts, seeds, sampling and
        embedder they came from (a resume with other settings generates the base again)."""
        return {"validations": self._validations, "base_embeddings": self._base_embeddings}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validations = state_dict.get("validations", 0)
        self._base_embeddings = dict(state_dict.get("base_embeddings", {}))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check_ready(trainer, pl_module, "val")

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check_ready(trainer, pl_module, "test")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if (self._validations - 1) % self.every_n_validations:
            return
        report = self.evaluate(trainer, pl_module, "val")
        self._log(pl_module, "val", report["rows"])
        self._write(trainer, f"step-{trainer.global_step:06d}", report, f"Step {trainer.global_step}: base vs LoRA")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        report = self.evaluate(trainer, pl_module, "test")
        self._log(pl_module, "test", report["rows"])
        directory = self._write(trainer, "test", report, "Test: base vs LoRA (same prompts and seeds)")
        rank_zero_info(comparison_markdown(report["rows"], "Test: base vs LoRA") + f"\nWritten to {directory}")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
