"""AudioLDMLoRA: the LightningModule that fine-tunes LoRA adapters on a frozen AudioLDM-family model.

Everything model-specific goes through the backbone seam (:mod:`lightning_modules.backbone`: loading, prompt
conditioning, the UNet call, latent geometry, decoding), adapters through the adapter-site seam
(:mod:`lightning_modules.adapter_sites`), the loss through :class:`~lightning_modules.diffusion_loss.DiffusionObjective`
and sampling through :mod:`lightning_modules.sampler`. The frozen parts stay in eval mode without gradients
(optionally bf16/fp16); only the LoRA weights train. The training step is docs/model-facts.md, 'AudioLDM training
objective': the prompt's conditioning, caption dropout to the unconditional input (so classifier-free guidance is
trained) and the epsilon or v target that the scheduler config names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_info

from lightning_modules.adapter_sites import (
    UNET_SITE,
    AdapterSettings,
    adapter_parameters,
    attach_adapters,
    conditioning_adapted,
    describe_sites,
    old_key_hint,
    save_adapters,
    set_lora_dropout_mode,
    site_settings,
    trainable_by_group,
    trainable_counts,
)
from lightning_modules.backbone import Backbone, Conditioning, load_backbone, select_conditioning
from lightning_modules.cache_fit import check_cache_fits
from lightning_modules.diffusion_loss import DiffusionObjective
from lightning_modules.lr_schedule import deferred_schedule
from lightning_modules.prior_preservation import PriorSet, PriorTarget, check_prior_settings
from lightning_modules.prior_steps import PriorPreservationSteps
from lightning_modules.resume_state import TrainableStateCheckpointing, training_random_stream
from lightning_modules.sampler import generate, seeded_generators
from lightning_modules.sampling_settings import SamplingSettings
from lightning_modules.base_identity import base_fingerprint, base_reference
from lightning_modules.errors import SettingError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LrSchedule = Literal["constant", "linear", "cosine", "cosine_with_restarts", "polynomial"]


def _batch_size(batch: dict[str, Any]) -> int:
    return int((batch["mel"] if "mel" in batch else batch["latent_mean"]).shape[0])


class AudioLDMLoRA(PriorPreservationSteps, TrainableStateCheckpointing):
    """LoRA fine-tuning of an AudioLDM-family model on genre-labelled audio-caption pairs."""

    renamed_key_hint = staticmethod(old_key_hint)
    """How a per-site key of earlier versions (``lora_rank``) is spelt now (:mod:`audioldm_lora.config_keys`)."""

    def __init__(
        self,
        pretrained_model: str = "cvssp/audioldm-s-full-v2",
        revision: str | None = None,
        adapters: dict[str, AdapterSettings] | None = None,
        caption_dropout: float = 0.1,
        snr_gamma: float | None = None,
        noise_offset: float = 0.0,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        adam_epsilon: float = 1e-8,
        lr_schedule: LrSchedule = "constant",
        warmup_steps: int = 0,
        frozen_dtype: Literal["float32", "bfloat16", "float16"] = "float32",
        gradient_checkpointing: bool = False,
        num_inference_steps: int = 50,
        guidance_scale: float = 2.5,
        sample_scheduler: str = "ddim",
        sample_duration: float = 10.24,
        nonfinite_loss: Literal["skip", "stop"] = "skip",
        prior_prompts: list[str] | None = None,
        prior_samples_per_prompt: int = 16,
        prior_loss_weight: float = 1.0,
        prior_seed: int = 0,
        prior_guidance_scale: float | None = None,
        prior_target: PriorTarget = "samples",
        channels_last: bool = False,
        fused_optimizer: bool | None = None,
    ) -> None:
        """
        Args:
            pretrained_model: hub id (``cvssp/audioldm-s-full-v2``, the paper's base) or a local diffusers directory
                (its ``model_index.json`` picks the backbone).
            revision: hub revision (branch, tag or commit) of ``pretrained_model``.
            adapters: LoRA settings per adapter site (:class:`~lightning_modules.adapter_sites.AdapterSettings`):
                ``{unet: {targets: paper, rank: 2, alpha: 4.0}}`` (the default, the paper's) adapts the UNet;
                ``text_encoder: {targets: WqWv, ...}`` the CLAP text encoder as the paper's authors did (docs/
                paper-recipe.md), whose prompt embedding, and the unconditional one of "", then change with the
                adapter and are computed every step (also from a latent cache, whose stored embeddings are not used).
                The backbone says which sites exist (:meth:`~lightning_modules.backbone.Backbone.adapter_sites`); a
                site left out, or with ``targets: none``, stays frozen.
            caption_dropout: probability of training a sample on the unconditional input (trains guidance).
            snr_gamma: Min-SNR-gamma loss weighting (5.0 is common); ``None`` for the plain mean.
            noise_offset: offset-noise strength (0 disables).
            learning_rate: AdamW peak learning rate (the paper: 1e-5 to 1e-4).
            weight_decay: AdamW weight decay (0.01).
            adam_betas: AdamW betas.
            adam_epsilon: AdamW epsilon.
            lr_schedule: schedule after warm-up, stepped every optimizer step.
            warmup_steps: linear warm-up steps.
            frozen_dtype: dtype of the frozen modules (VAE, text encoder, vocoder).
            gradient_checkpointing: trade compute for memory in the UNet.
            num_inference_steps: sampler steps (``predict``, prior samples and the callbacks' default).
            guidance_scale: classifier-free guidance weight (AudioLDM's default 2.5).
            sample_scheduler: sampler scheduler name (ddim, dpmsolver++, euler, ...).
            sample_duration: seconds of audio generated per prompt.
            nonfinite_loss: a NaN/inf loss either skips the optimizer step and is counted (``skip``, logged as
                ``train/nonfinite_steps``; single-process only, since DDP ranks must step together) or stops
                training with the step and the batch's source files (``stop``).
            prior_prompts: prior preservation (:mod:`lightning_modules.prior_preservation`): prompts whose output
                the adapter must not change (other genres; ``""`` for the unconditional output guidance uses);
                ``None`` disables it.
            prior_samples_per_prompt: base-model samples generated once per prior prompt.
            prior_loss_weight: weight of the prior loss added to every training step (DreamBooth's default 1.0).
            prior_seed: first seed of the prior samples (sample i of each prompt uses ``prior_seed + i``).
            prior_guidance_scale: guidance of the prior samples; ``None`` uses ``guidance_scale``, so the prior holds
                the output users hear (on the toy model this preserved genres better than unguided samples).
            prior_target: what the prior loss regresses. ``samples``: DreamBooth's denoising loss on the prior
                samples (the noise, or v). ``base_model``: the frozen base UNet's own prediction on the same noisy
                prior latent, timestep and prompt (distillation): a far less noisy target that penalises exactly
                the adapter's change of the output for those prompts; costs one extra UNet forward without gradients.
            channels_last: keep the UNet's weights and inputs in channels-last memory format (faster convolutions
                with tensor cores on recent GPUs; no effect on results).
            fused_optimizer: fused AdamW kernel; ``None`` uses it when the LoRA weights are on a CUDA device.
        """
        super().__init__()
        self.site_settings = site_settings(adapters)
        # Plain mappings in the hyperparameters (checkpoints, hparams.yaml, adapter_info.json), the sites switched
        # on only: save_hyperparameters reads the constructor's arguments as they are when it is called.
        adapters = {site: settings.describe() for site, settings in self.site_settings.items()}
        self.save_hyperparameters()
        if not 0.0 <= caption_dropout < 1.0:
            raise SettingError(f"caption_dropout must be in [0, 1), got {caption_dropout}.")
        check_prior_settings(prior_prompts, prior_samples_per_prompt, prior_loss_weight, prior_target)
        self.backbone = self.load_backbone(pretrained_model, revision)
        self.base_fingerprint = base_fingerprint(self.backbone.adapter_sites())  # before dtype casts and adapters
        self.backbone.channels_last = channels_last
        # The components are registered under their own names, so checkpoint keys read ``unet.…`` and moving the
        # LightningModule moves the backbone's modules (``Module.to`` works in place).
        for name, module in self.backbone.named_modules().items():
            setattr(self, name, module)
        self.scheduler = self.backbone.scheduler
        self.objective = DiffusionObjective.for_scheduler(self.backbone.scheduler, noise_offset, snr_gamma)
        self.sampling = SamplingSettings(num_inference_steps, guidance_scale, sample_scheduler, sample_duration)
        try:
            self.backbone.check_duration(sample_duration)
        except ValueError as error:  # checked here, not at the first sample: a bad value must not cost a run
            raise SettingError(f"model.init_args.sample_duration: {error}") from None
        frozen = DTYPES[frozen_dtype]
        for module in self.backbone.named_modules().values():
            module.requires_grad_(False)  # attach_adapters makes the LoRA weights, and only them, trainable
        for module in self.backbone.frozen_modules():
            if frozen != torch.float32:
                module.to(dtype=frozen)
            module.eval()
        self.lora_configs = attach_adapters(self.backbone, self.site_settings)
        if gradient_checkpointing:
            self.backbone.unet.enable_gradient_checkpointing()
        if channels_last:
            self.backbone.unet.to(memory_format=torch.channels_last)
        # Resume checkpoints hold only the trainable state (TrainableStateCheckpointing), so loading is not strict;
        # on_load_checkpoint checks that every LoRA weight is present instead.
        self.strict_loading = False
        self._unconditional: Conditioning | None = None
        self.nonfinite_steps = 0
        self.training_stream = None
        self._prior_set: PriorSet | None = None

    @classmethod
    def load_backbone(cls, pretrained_model: str, revision: str | None) -> Backbone:
        """Load the base model (a subclass may build or fetch it first: the demo's tiny model does)."""
        return load_backbone(pretrained_model, revision)

    # ----------------------------------------------------------------------------------------------- structure
    def train(self, mode: bool = True) -> "AudioLDMLoRA":
        """Switch the UNet's mode as asked while the frozen parts stay in eval mode (no dropout in CLAP unless the
        site's ``module_dropout`` asks for it); the LoRA dropout of every site, a text encoder's included, follows
        ``mode``."""
        super().train(mode)
        for module in self.backbone.frozen_modules():
            module.eval()
        sites = self.backbone.adapter_sites()
        for site, settings in self.site_settings.items():
            if settings.module_dropout:
                sites[site].train(mode)
        set_lora_dropout_mode(self.backbone, mode)
        return self

    def trainable_parameter_count(self) -> tuple[int, int]:
        """(trainable LoRA parameters of every site, all parameters of the model)."""
        trainable = sum(trainable_counts(self.backbone).values())
        return trainable, sum(p.numel() for p in self.parameters())

    def on_fit_start(self) -> None:
        cached = getattr(self.trainer.datamodule, "latent_cache_model", None)
        if cached:
            check_cache_fits(cached, self.backbone, self.hparams.pretrained_model)
        trainable, total = self.trainable_parameter_count()
        rank_zero_info(f"LoRA: {trainable:,} trainable parameters of {total:,} ({100.0 * trainable / total:.4f}%); "
                       + "; ".join(self._site_report(site) for site in self.site_settings))
        for logger in self.loggers:
            logger.log_hyperparams({"lora/trainable_params": trainable, "lora/trainable_fraction": trainable / total})

    def _site_report(self, site: str) -> str:
        """One site in the trainable-parameter report: settings, targets (a preset by name), parameters per group."""
        config, targets = self.site_settings[site], sorted(self.lora_configs[site].target_modules)
        if not isinstance(config.targets, str):
            shown = str(targets)
        elif len(targets) <= 6:
            shown = f"{config.targets} {targets}"
        else:
            shown = f"{config.targets} ({len(targets)} modules)"
        groups = trainable_by_group(self.backbone, site)
        parts = ", ".join(f"{group} {count:,}" for group, count in groups.items())
        return (f"{site}: rank {config.rank}, alpha {config.alpha}, targets {shown}"
                + (f"; {parts}" if parts else ""))

    # ------------------------------------------------------------------------------------------- conditioning
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """The UNet's conditioning of ``prompts`` on the module's device."""
        return self.backbone.encode_prompts(prompts)

    def unconditional(self) -> Conditioning:
        """The unconditional conditioning (one row: the embedding of "").

        Computed once per device while the text encoder is frozen; with an adapted text encoder it depends on the
        adapter (and carries its gradient), so it is computed at every call, with the adapter as it is then.
        """
        if conditioning_adapted(self.backbone):
            return self.backbone.unconditional(1)
        cached = self._unconditional
        if cached is None or next(iter(cached.values())).device != self.device:
            self._unconditional = self.backbone.unconditional(1)
        return self._unconditional

    def batch_latents_and_conditioning(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Conditioning]:
        """Scaled latents and the conditioning of a batch.

        Two batch forms: audio (``mel`` [B, frames, 64] and ``caption``) runs the frozen VAE encoder and text
        encoder; a latent-cache batch (``latent_mean``, ``latent_logvar`` [B, C, h, w]: the unscaled VAE posterior,
        plus the cached conditioning fields and ``caption``) skips both and samples the posterior here, every step.
        With an adapted text encoder the cached conditioning is stale by construction: the captions are encoded.
        """
        if "latent_mean" in batch:
            latents = self.backbone.latents_from_posterior(batch["latent_mean"], batch["latent_logvar"], generator)
            if not conditioning_adapted(self.backbone):
                return latents, self.backbone.conditioning_from_cache(batch)
            if "caption" not in batch:
                raise KeyError("A latent-cache batch without captions cannot train an adapted text encoder; "
                               "rebuild the cache with `audioldm-lora cache --config ...`.")
            return latents, self.encode_prompts(list(batch["caption"]))
        return self.backbone.encode_mel(batch["mel"], generator), self.encode_prompts(list(batch["caption"]))

    # --------------------------------------------------------------------------------------------- objective
    def diffusion_loss(
        self, latents: torch.Tensor, cond: Conditioning, drop_caption: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The denoising loss of the adapted UNet on one batch (docs/model-facts.md, 'AudioLDM training objective')."""
        cond = select_conditioning(cond, drop_caption, self.unconditional(), self.backbone.stream_masks)
        noised = self.objective.noised(latents, generator)
        return self.objective.loss(self.backbone.predict_noise(noised.noisy, noised.timesteps, cond), noised)

    @training_random_stream
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        latents, cond = self.batch_latents_and_conditioning(batch)
        drop = torch.rand(latents.shape[0], device=latents.device) < self.hparams.caption_dropout
        loss = self.diffusion_loss(latents, cond, drop)
        if self.hparams.prior_prompts:
            instance_loss, prior_loss = loss, self.prior_loss(latents)
            loss = instance_loss + self.hparams.prior_loss_weight * prior_loss
        if not torch.isfinite(loss):
            return self._handle_nonfinite_loss(batch, loss)
        self.log("train/loss", loss, prog_bar=True, batch_size=latents.shape[0])
        if self.hparams.prior_prompts:
            self.log("train/instance_loss", instance_loss, batch_size=latents.shape[0])
            self.log("train/prior_loss", prior_loss, batch_size=latents.shape[0])
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "bad_items_seen"):
            self.log("data/bad_items_skipped", float(datamodule.bad_items_seen), reduce_fx="max",
                     batch_size=latents.shape[0])
        return loss

    def _handle_nonfinite_loss(self, batch: dict[str, Any], loss: torch.Tensor) -> None:
        """Apply the ``nonfinite_loss`` policy; returning None makes Lightning skip the optimizer step."""
        sources = ", ".join(str(p) for p in batch.get("path", [])[:8]) or "unknown sources"
        if self.hparams.nonfinite_loss == "stop" or self.trainer.world_size > 1:
            raise FloatingPointError(
                f"Loss is {loss.item()} at global step {self.global_step} on a batch from {sources}. Check these "
                "files (`audioldm-lora prepare` reports bad audio), lower the learning rate, or use precision 32."
            )
        self.nonfinite_steps += 1
        rank_zero_info(f"Skipping step {self.global_step}: loss is {loss.item()} (batch from {sources}).")
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=1)
        return None

    def _fixed_noise_loss(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Loss with noise, timesteps and posterior samples fixed by the batch index, comparable across epochs."""
        generator = torch.Generator(device=self.device).manual_seed(batch_idx)
        latents, cond = self.batch_latents_and_conditioning(batch, generator)
        keep = torch.zeros(latents.shape[0], dtype=torch.bool, device=latents.device)
        return self.diffusion_loss(latents, cond, keep, generator)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._fixed_noise_loss(batch, batch_idx)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=_batch_size(batch))
        return loss

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._fixed_noise_loss(batch, batch_idx)
        self.log("test/loss", loss, sync_dist=True, batch_size=_batch_size(batch))
        return loss

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Generate audio for ``batch["prompt"]`` with ``batch["seed"]`` (one generator per clip)."""
        prompts = list(batch["prompt"])
        seeds = [int(s) for s in batch["seed"]]
        settings = self.sampling
        waveform = generate(
            self.backbone, prompts, duration=settings.duration, num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale, generator=seeded_generators(seeds, self.device),
            scheduler=settings.scheduler,
        )
        return {"waveform": waveform.cpu(), "prompt": prompts, "seed": seeds, "sample_rate": self.backbone.sampling_rate}

    # --------------------------------------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        parameters = adapter_parameters(self.backbone)
        fused = self.hparams.fused_optimizer
        if fused is None:
            fused = bool(parameters) and all(p.is_cuda for p in parameters)
        optimizer = torch.optim.AdamW(
            parameters, lr=self.hparams.learning_rate, betas=tuple(self.hparams.adam_betas),
            weight_decay=self.hparams.weight_decay, eps=self.hparams.adam_epsilon, fused=fused or None,
        )
        name = "constant_with_warmup" if self.hparams.lr_schedule == "constant" else self.hparams.lr_schedule
        scheduler = deferred_schedule(optimizer, name, self.hparams.warmup_steps, self._total_training_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _total_training_steps(self) -> int:
        """The run's optimizer steps (read once training runs: see :mod:`lightning_modules.lr_schedule`)."""
        return int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1

    # -------------------------------------------------------------------------------------------- adapters
    def adapter_info(self, step: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What ``adapter_info.json`` records: the base (:mod:`lightning_modules.base_identity`), every adapted site
        (``sites``; the UNet's settings also at the top level, the format adapters have always had) and the run."""
        sites = describe_sites(self.backbone, self.site_settings, self.lora_configs)
        unet = sites.get(UNET_SITE, {})
        info = {
            **base_reference(self.hparams.pretrained_model, self.hparams.revision, self.base_fingerprint),
            **{key: value for key, value in unet.items()
               if key not in ("targets", "trainable_parameters", "format", "label")},
            "sites": sites,
            "trainable_parameters": sum(site["trainable_parameters"] for site in sites.values()),
            "global_step": step,
            "model_config": dict(self.hparams),
        }
        info.update(extra or {})
        return info

    def save_adapter(self, directory: str | Path, step: int, extra: dict[str, Any] | None = None) -> Path:
        """Write every adapted site (the UNet in diffusers' LoRA format, the text encoder in peft's) plus
        ``adapter_info.json``."""
        return save_adapters(self.backbone, directory, self.adapter_info(step, extra))
