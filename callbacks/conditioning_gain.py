"""Does the model listen to its prompt? The conditioning gain of each genre, at every validation.

For each held-out (validation) clip, at fixed timesteps with fixed noise (seeded by the batch index, the same at every
validation), the denoising error of the UNet is measured under three prompts: the clip's own caption, the empty
prompt, and another genre's prompt (``prompt_template`` of the next genre in sorted order). Per genre:

- ``val/cond_gain/<genre>``: error under the other genre's prompt minus error under the clip's own caption. A model
  that ignores its prompt scores near 0; a model that knows the genre scores above 0 (its own caption helps).
- ``val/cond_gain_empty/<genre>``: error under "" minus error under the own caption.
- ``val/cond_error/<genre>``: the error under the own caption (the scale the gains are read against).
- ``val/cond_gain_base/<genre>`` and ``val/cond_gain_empty_base/<genre>``: the same for the base model (adapters
  off), measured at the first validation of the process (the base does not change) and logged at every one. They
  are not kept in checkpoints: a resumed run or a ``lightning validate`` on other data measures them again on the
  clips it validates (the same values where the clips are the same, since noise and timesteps are fixed).

An adapter that teaches a genre should raise that genre's gain and leave the others'. It costs forward passes only:
``3 x len(timesteps)`` UNet calls per validation batch (twice that at the first validation), no sampling. The errors
are the plain mean squared error of the prediction against the objective's target (no Min-SNR weights), so that
every timestep counts the same. Under DDP each rank measures its own batches and the sums are reduced with
Lightning's strategy before logging.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from datamodules.captions import render_caption
from lightning_modules.adapter_sites import adapters_disabled
from lightning_modules.backbone import Conditioning
from lightning_modules.diffusion_loss import NoisedLatents
from lightning_modules.errors import SettingError

PROMPTS = ("own", "empty", "other")


class ConditioningGain(Callback):
    """Logs ``val/cond_gain/<genre>`` (and its empty-prompt and base-model variants) at every validation."""

    def __init__(self, timesteps: list[int] | None = None, prompt_template: str = "{genre} music",
                 genres: list[str] | None = None) -> None:
        """
        Args:
            timesteps: the diffusion timesteps measured for every clip (default: 5 spread over the schedule, from
                10% to 90% of it).
            prompt_template: the prompt of "another genre" (``{genre}`` is replaced).
            genres: the genres (default: the data module's); needs at least 2.
        """
        if genres is not None and len(set(genres)) < 2:
            raise SettingError(f"ConditioningGain needs at least 2 genres to compare a clip's own prompt with another "
                             f"genre's; got genres={genres}.")
        self.timesteps = timesteps
        self.prompt_template = prompt_template
        self.genres = genres
        self._sums: torch.Tensor | None = None  # [arm (adapter, base), genre, prompt] error sums
        self._counts: torch.Tensor | None = None  # [genre] clips measured
        self._base: dict[str, float] | None = None
        self._warned = False

    def _genres(self, trainer: Trainer) -> list[str]:
        """The genres measured, sorted; empty (nothing measured) when the data holds fewer than 2."""
        genres = sorted(set(self.genres or getattr(trainer.datamodule, "genres", None) or []))
        return genres if len(genres) >= 2 else []

    def _steps(self, pl_module: LightningModule) -> list[int]:
        total = int(pl_module.objective.scheduler.config.num_train_timesteps)
        return self.timesteps or [round(total * fraction) for fraction in (0.1, 0.3, 0.5, 0.7, 0.9)]

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        genres = self._genres(trainer)
        if not genres:
            if not self._warned:
                rank_zero_warn("ConditioningGain measures nothing: the data holds fewer than 2 genres. Give the "
                               "callback `genres` (at least 2) to compare each clip's prompt with another genre's.")
                self._warned = True
            self._sums = None
            return
        self._sums = torch.zeros(2, len(genres), len(PROMPTS), dtype=torch.float64, device=pl_module.device)
        self._counts = torch.zeros(len(genres), dtype=torch.float64, device=pl_module.device)

    def _errors(self, pl_module: LightningModule, latents: torch.Tensor, prompts: dict[str, Conditioning],
                batch_idx: int) -> torch.Tensor:
        """``[clips, prompts]``: mean squared error over the timesteps, same noise for every prompt."""
        objective, backbone = pl_module.objective, pl_module.backbone
        errors = torch.zeros(latents.shape[0], len(PROMPTS), dtype=torch.float64, device=latents.device)
        generator = torch.Generator(device=latents.device).manual_seed(10_000 + batch_idx)
        for step in self._steps(pl_module):
            noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            timesteps = torch.full((latents.shape[0],), step, device=latents.device, dtype=torch.long)
            noisy = objective.scheduler.add_noise(latents, noise, timesteps)
            target = objective.target(NoisedLatents(latents, noise, timesteps, noisy)).float()
            for column, name in enumerate(PROMPTS):
                prediction = backbone.predict_noise(noisy, timesteps, prompts[name]).float()
                errors[:, column] += (prediction - target).pow(2).flatten(1).mean(dim=1).double()
        return errors / len(self._steps(pl_module))

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking or self._sums is None or not isinstance(batch, dict) or "genre" not in batch:
            return
        genres = self._genres(trainer)
        rows = [i for i, genre in enumerate(batch["genre"]) if genre in genres]
        if not rows:
            return
        generator = torch.Generator(device=pl_module.device).manual_seed(batch_idx)
        latents = pl_module.batch_latents_and_conditioning(batch, generator)[0][torch.tensor(rows)]
        texts = {"own": [batch["caption"][i] for i in rows],
                 "other": [render_caption(self.prompt_template, genres[(genres.index(batch["genre"][i]) + 1)
                                                                       % len(genres)]) for i in rows]}
        arms = [0] if self._base is not None else [0, 1]
        for arm in arms:
            # the prompts are encoded inside each arm: an adapted text encoder encodes them differently
            with adapters_disabled(pl_module.backbone) if arm == 1 else contextlib.nullcontext():
                prompts = {"own": pl_module.encode_prompts(texts["own"]),
                           "empty": pl_module.backbone.unconditional(len(rows)),
                           "other": pl_module.encode_prompts(texts["other"])}
                errors = self._errors(pl_module, latents, prompts, batch_idx)
            for row, i in enumerate(rows):
                self._sums[arm, genres.index(batch["genre"][i])] += errors[row]
        for i in rows:
            self._counts[genres.index(batch["genre"][i])] += 1

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._sums is None:
            return
        sums = trainer.strategy.reduce(self._sums, reduce_op="sum")
        counts = trainer.strategy.reduce(self._counts, reduce_op="sum")
        genres = self._genres(trainer)
        first = self._base is None
        base: dict[str, float] = dict(self._base or {})
        for g, genre in enumerate(genres):
            if counts[g] == 0:
                continue
            own, empty, other = (sums[0, g] / counts[g]).tolist()
            pl_module.log(f"val/cond_error/{genre}", own, batch_size=int(counts[g]))
            pl_module.log(f"val/cond_gain/{genre}", other - own, batch_size=int(counts[g]))
            pl_module.log(f"val/cond_gain_empty/{genre}", empty - own, batch_size=int(counts[g]))
            if first:
                base_own, base_empty, base_other = (sums[1, g] / counts[g]).tolist()
                base[f"val/cond_gain_base/{genre}"] = base_other - base_own
                base[f"val/cond_gain_empty_base/{genre}"] = base_empty - base_own
        for key, value in base.items():
            pl_module.log(key, value)
        self._base = base

