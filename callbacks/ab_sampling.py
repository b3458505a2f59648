"""Periodic A/B sampling: fixed prompts and seeds with the adapter (A) and without it (B), logged side by side.

Runs once before training (the baseline, where A and B are identical because LoRA's B matrices start at zero) and
every ``every_n_steps`` optimizer steps. A resumed run does not log a baseline at the step it resumes from: it logs
the rounds the uninterrupted run logs. B is the frozen base model, so each prompt, seed and setting's B clip is
generated once per run and reused in every later round (half the sampling cost after the first round). Under DDP the
prompt x seed pairs are split over the ranks (:mod:`callbacks.rank_share`), each rank generates its share, and the
audio is gathered back in order; rank zero alone writes and logs it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from callbacks.media import log_media
from callbacks.mel_figure import ab_mel_figure
from callbacks.progress import clip_progress
from callbacks.rank_share import gather_in_order, raise_together, rank_share
from callbacks.run_dir import run_directory
from datamodules.captions import render_caption
from datamodules.clip_folder import slugify
from lightning_modules.ab import generate_ab
from lightning_modules.errors import SettingError

log = logging.getLogger(__name__)


class ABSampling(Callback):
    """Generate and log A/B pairs of fixed prompts during training."""

    def __init__(
        self,
        prompts: list[str] | None = None,
        prompt_template: str = "{genre} music",
        seeds: list[int] | None = None,
        every_n_steps: int = 500,
        guidance_scales: list[float] | None = None,
        num_inference_steps: int | None = None,
        duration: float | None = None,
        scheduler: str | None = None,
        batch_size: int = 8,
        sample_before_training: bool = True,
    ) -> None:
        """
        Args:
            prompts: prompts to sample; default: one per genre of the data module from ``prompt_template``.
            prompt_template: used when ``prompts`` is not given.
            seeds: one or more seeds; every prompt is sampled with each.
            every_n_steps: sampling period in optimizer steps.
            guidance_scales: classifier-free guidance weights to sample at (default: the model's).
            num_inference_steps: sampler steps (default: the model's ``num_inference_steps``).
            duration: seconds per clip (default: the model's ``sample_duration``).
            scheduler: sampler scheduler name (default: the model's ``sample_scheduler``).
            batch_size: clips generated at once.
            sample_before_training: log the step-0 baseline.
        """
        if every_n_steps < 1:
            raise SettingError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.prompts = prompts
        self.prompt_template = prompt_template
        self.seeds = list(seeds or [0])
        self.every_n_steps = every_n_steps
        self.guidance_scales = guidance_scales
        self.num_inference_steps = num_inference_steps
        self.duration = duration
        self.scheduler = scheduler
        self.batch_size = batch_size
        self.sample_before_training = sample_before_training
        self._last_step = -1
        self.history: list[dict[str, Any]] = []
        # This rank's B clips per round key (its prompts, seeds and sampling settings): the base never changes.
        self._base_audio: dict[str, torch.Tensor] = {}

    def resolve_prompts(self, trainer: Trainer) -> list[str]:
        if self.prompts:
            return list(self.prompts)
        genres = list(getattr(trainer.datamodule, "genres", []) or [])
        if not genres:
            raise SettingError("ABSampling has no prompts: give `prompts`, or use a data module that has `genres`.")
        return [render_caption(self.prompt_template, genre) for genre in genres]

    def sample(self, trainer: Trainer, pl_module: LightningModule, directory: Path) -> dict[str, Any]:
        """Generate (this rank's share) and, on rank zero, log one round into ``directory``; returns the waveforms on
        rank zero (for tests and other callbacks)."""
        prompts = self.resolve_prompts(trainer)
        jobs = [(p, s) for p in prompts for s in self.seeds]
        step = trainer.global_step
        defaults = pl_module.sampling.with_overrides(
            num_inference_steps=self.num_inference_steps, duration=self.duration, scheduler=self.scheduler
        )
        audio, figures, rows, result = {}, {}, [], {"step": step, "pairs": []}
        share = rank_share(len(jobs), trainer)
        for guidance in self.guidance_scales or [defaults.guidance_scale]:
            rank_zero_info(f"A/B sampling at step {step}: {len(jobs)} clip pair(s), guidance {guidance}")
            lora, base, error = torch.empty(0), torch.empty(0), None
            settings = defaults.with_overrides(guidance_scale=guidance)
            base_key = json.dumps({"jobs": [jobs[i] for i in share], "settings": asdict(settings)})
            try:
                if share:
                    cached = self._base_audio.get(base_key)
                    lora, base = generate_ab(
                        pl_module.backbone,
                        [jobs[i][0] for i in share],
                        [jobs[i][1] for i in share],
                        settings,
                        batch_size=self.batch_size,
                        with_base=cached is None,
                        progress=clip_progress(f"A/B sampling at step {step}"),
                    )
                    base = self._base_audio.setdefault(base_key, base if cached is None else cached)
            except Exception as failure:  # every rank must learn of it before the gathers below
                error = failure
            raise_together(trainer, error, f"A/B sampling at step {step}")
            lora, base = gather_in_order(trainer, lora, len(jobs)), gather_in_order(trainer, base, len(jobs))
            if not trainer.is_global_zero:
                continue
            for index, (prompt, seed) in enumerate(jobs):
                stem = f"{slugify(prompt, 32)}_seed{seed}_g{guidance:g}"
                audio[f"{stem}_A_lora"], audio[f"{stem}_B_base"] = lora[index], base[index]
                figures[f"{stem}_mel"] = ab_mel_figure(lora[index], base[index], f"{prompt} (seed {seed}, w={guidance:g})")
                rows.append([prompt, seed, guidance, f"{stem}_A_lora", f"{stem}_B_base", f"{stem}_mel"])
                result["pairs"].append({"prompt": prompt, "seed": seed, "guidance": guidance,
                                        "lora": lora[index], "base": base[index]})
        if trainer.is_global_zero:
            log_media(trainer, "samples", step, audio, figures, pl_module.backbone.sampling_rate,
                      ["prompt", "seed", "guidance", "A (LoRA)", "B (base)", "mel"], rows, directory)
            self.history.append(result)
        return result

    def _maybe_sample(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        self._last_step = step
        # Every rank resolves the directory (trainer.log_dir broadcasts under DDP) and generates its share.
        directory = run_directory(trainer) / "samples" / f"step-{step:06d}"
        self.sample(trainer, pl_module, directory)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Fail before the first step, on every rank, on prompts or sampling settings that would fail later."""
        error = None
        try:
            self.resolve_prompts(trainer)
            pl_module.sampling.with_overrides(num_inference_steps=self.num_inference_steps, duration=self.duration,
                                              scheduler=self.scheduler)
        except Exception as failure:  # every rank must learn of it: one rank failing alone would hang the others
            error = failure
        raise_together(trainer, error, "ABSampling's start checks")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Only a run that starts at step 0 has a baseline to log; a resumed one's was logged by the run it resumes.
        if self.sample_before_training and trainer.global_step == 0:
            self._maybe_sample(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0:
            self._maybe_sample(trainer, pl_module)
