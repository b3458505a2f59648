"""AudioLDMLoRA: the LightningModule that fine-tunes a LoRA adapter on a frozen AudioLDM.

VAE, CLAP text encoder and vocoder are frozen (eval mode, no gradients, optionally bf16/fp16); the UNet is frozen
except for the LoRA weights. The training step is DESIGN.md section 2: L2-normalised CLAP ``text_embeds`` as
``class_labels``, caption dropout to the empty prompt so that classifier-free guidance is trained, and the epsilon
or v target that the scheduler config names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import DDPMScheduler
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.optimization import get_scheduler
from lightning import LightningModule
from lightning.pytorch.utilities import rank_zero_info

from lightning_modules.components import AudioLDMComponents, encode_text, load_components
from lightning_modules.diffusion_loss import diffusion_target, sample_noise, snr_weights, weighted_mse
from lightning_modules.ab import adapter_disabled
from lightning_modules.prior_preservation import PriorSet, PriorTarget, check_prior_settings, generate_prior_set
from lightning_modules.lora import LoraInit, add_lora, check_lora_settings, lora_parameters, save_adapter
from lightning_modules.rng import RNG_STATE_KEY, capture_rng_states, restore_rng_states
from lightning_modules.sampler import generate, seeded_generators

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
LrSchedule = Literal["constant", "linear", "cosine", "cosine_with_restarts", "polynomial"]


def _batch_size(batch: dict[str, Any]) -> int:
    return int((batch["mel"] if "mel" in batch else batch["latent_mean"]).shape[0])


class AudioLDMLoRA(LightningModule):
    """LoRA fine-tuning of AudioLDM's UNet on genre-labelled audio-caption pairs."""

    def __init__(
        self,
        pretrained_model: str = "cvssp/audioldm-s-full-v2",
        revision: str | None = None,
        build_tiny_if_missing: bool = False,
        lora_rank: int = 2,
        lora_alpha: float = 4.0,
        lora_targets: str | list[str] = "paper",
        lora_dropout: float = 0.0,
        lora_init: LoraInit = "gaussian",
        use_rslora: bool = False,
        use_dora: bool = False,
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
            pretrained_model: hub id (``cvssp/audioldm-s-full-v2``, the paper's base) or a local diffusers directory.
            revision: hub revision (branch, tag or commit) of ``pretrained_model``.
            build_tiny_if_missing: build the offline tiny model into ``pretrained_model`` when that directory is
                missing (configs/tiny.yaml).
            lora_rank: LoRA rank r (the paper: 2).
            lora_alpha: LoRA alpha; the update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).
            lora_targets: a preset (``paper``: to_q, to_v; ``attention``; ``attention_proj``; ``all_linear``) or
                module names.
            lora_dropout: dropout on the LoRA branch.
            lora_init: LoRA A init; ``gaussian`` as the paper, ``kaiming`` is peft's default.
            use_rslora: rank-stabilised scaling alpha / sqrt(r).
            use_dora: weight-decomposed LoRA (DoRA).
            caption_dropout: probability of training a sample on the empty prompt (trains classifier-free guidance).
            snr_gamma: Min-SNR-gamma loss weighting (5.0 is common); ``None`` for the plain mean.
            noise_offset: offset-noise strength (0 disables).
            learning_rate: AdamW peak learning rate (the paper: 1e-5 to 1e-4).
            weight_decay: AdamW weight decay (0.01).
            adam_betas: AdamW betas.
            adam_epsilon: AdamW epsilon.
            lr_schedule: schedule after warm-up, stepped every optimizer step.
            warmup_steps: linear warm-up steps.
            frozen_dtype: dtype of the frozen VAE, text encoder and vocoder.
            gradient_checkpointing: trade compute for memory in the UNet.
            num_inference_steps: sampler steps for ``predict``.
            guidance_scale: classifier-free guidance weight for ``predict`` (AudioLDM's default 2.5).
            sample_scheduler: sampler scheduler name for ``predict`` (ddim, dpmsolver++, euler, ...).
            sample_duration: seconds of audio generated per prompt in ``predict``.
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
        self.save_hyperparameters()
        if not 0.0 <= caption_dropout < 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1), got {caption_dropout}.")
        check_lora_settings(lora_rank, lora_alpha, lora_dropout)
        check_prior_settings(prior_prompts, prior_samples_per_prompt, prior_loss_weight, prior_target)
        if build_tiny_if_missing and not Path(pretrained_model).exists():
            from lightning_modules.tiny import build_tiny_audioldm

            rank_zero_info(f"Building the tiny offline AudioLDM in {pretrained_model} (first run only).")
            build_tiny_audioldm(pretrained_model)
        components = load_components(pretrained_model, revision=revision)
        self.vae = components.vae
        self.text_encoder = components.text_encoder
        self.vocoder = components.vocoder
        self.tokenizer = components.tokenizer
        self.unet = components.unet
        self.scheduler = components.scheduler
        self.noise_scheduler = DDPMScheduler.from_config(components.scheduler.config)
        frozen = DTYPES[frozen_dtype]
        for module in self.frozen_modules():
            module.requires_grad_(False)
            if frozen != torch.float32:
                module.to(dtype=frozen)
            module.eval()
        self.lora_config = add_lora(
            self.unet, lora_rank, lora_alpha, lora_targets, lora_dropout, lora_init, use_rslora, use_dora
        )
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        # Resume checkpoints hold only the trainable state (see on_save_checkpoint), so loading is not strict;
        # on_load_checkpoint checks that every LoRA weight is present instead.
        self.strict_loading = False
        self._empty_embedding: torch.Tensor | None = None
        self.nonfinite_steps = 0
        self._pending_rng_states: dict[str, Any] | None = None
        self._prior_set: PriorSet | None = None

    # ----------------------------------------------------------------------------------------------- structure
    def frozen_modules(self) -> list[torch.nn.Module]:
        """The modules that never train."""
        return [self.vae, self.text_encoder, self.vocoder]

    @property
    def components(self) -> AudioLDMComponents:
        """The model as the sampler and the adapter tools see it."""
        return AudioLDMComponents(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            vocoder=self.vocoder,
            scheduler=self.scheduler,
        )

    def train(self, mode: bool = True) -> "AudioLDMLoRA":
        """Switch the UNet's mode as asked while the frozen parts stay in eval mode (no dropout in CLAP)."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def trainable_parameter_count(self) -> tuple[int, int]:
        """(trainable LoRA parameters, all parameters of the model)."""
        trainable = sum(p.numel() for p in lora_parameters(self.unet))
        total = sum(p.numel() for p in self.parameters())
        return trainable, total

    def on_fit_start(self) -> None:
        cached = getattr(self.trainer.datamodule, "latent_cache_model", None)
        if cached and cached.get("name") != self.hparams.pretrained_model:
            raise ValueError(
                f"The latent cache was built with {cached.get('name')}, but the model is "
                f"{self.hparams.pretrained_model}; rebuild it with `audioldm-lora cache --config ...`."
            )
        trainable, total = self.trainable_parameter_count()
        rank_zero_info(
            f"LoRA: {trainable:,} trainable parameters of {total:,} ({100.0 * trainable / total:.4f}%), "
            f"rank {self.hparams.lora_rank}, alpha {self.hparams.lora_alpha}, targets {self.lora_config.target_modules}"
        )
        for logger in self.loggers:
            logger.log_hyperparams({"lora/trainable_params": trainable, "lora/trainable_fraction": trainable / total})

    # ------------------------------------------------------------------------------------------- conditioning
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """L2-normalised CLAP text embeddings [B, D] on the module's device."""
        return encode_text(self.text_encoder, self.tokenizer, prompts).to(self.device)

    def empty_prompt_embedding(self) -> torch.Tensor:
        """The embedding of "" (classifier-free guidance's unconditional input), computed once."""
        if self._empty_embedding is None or self._empty_embedding.device != self.device:
            self._empty_embedding = self.encode_prompts([""])[0]
        return self._empty_embedding

    @torch.no_grad()
    def encode_mel(self, mel: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-mel [B, frames, 64] -> scaled VAE latents [B, C, frames/f, 64/f], sampled from the posterior."""
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if mel.shape[1] % factor:
            raise ValueError(
                f"Clips of {mel.shape[1]} mel frames are not a multiple of the VAE factor {factor}; choose a clip "
                f"duration whose frame count (100 per second) is divisible by {factor}, e.g. 10.24 s or 4.0 s."
            )
        posterior = self.vae.encode(mel.unsqueeze(1).to(self.vae.dtype)).latent_dist
        return posterior.sample(generator=generator).float() * self.vae.config.scaling_factor

    def batch_latents_and_embeddings(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled latents and text embeddings of a batch.

        Two batch forms: audio (``mel`` [B, frames, 64] and ``caption``) runs the frozen VAE encoder and text
        encoder; a latent-cache batch (``latent_mean``, ``latent_logvar`` [B, C, h, w]: the unscaled VAE posterior,
        and ``text_embeds`` [B, D], already L2-normalised) skips both and samples the posterior here, every step.
        """
        if "latent_mean" in batch:
            parameters = torch.cat([batch["latent_mean"], batch["latent_logvar"]], dim=1).float()
            posterior = DiagonalGaussianDistribution(parameters)
            latents = posterior.sample(generator=generator) * self.vae.config.scaling_factor
            return latents, batch["text_embeds"].float()
        return self.encode_mel(batch["mel"], generator), self.encode_prompts(list(batch["caption"]))

    # --------------------------------------------------------------------------------------------- objective
    def noised(
        self, latents: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, the noise, timesteps ~ U[0, T)) of one batch, as the forward process makes them."""
        noise = sample_noise(latents, self.hparams.noise_offset, generator)
        num_steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, num_steps, (latents.shape[0],), generator=generator, device=latents.device)
        return self.noise_scheduler.add_noise(latents, noise, timesteps), noise, timesteps

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction (epsilon or v) with AudioLDM's conditioning: text embeddings as ``class_labels``."""
        if self.hparams.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return self.unet(
            noisy.to(self.unet.dtype), timesteps, encoder_hidden_states=None, class_labels=text_embeds.to(self.unet.dtype)
        ).sample

    def _loss_weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        if self.hparams.snr_gamma is None:
            return None
        return snr_weights(self.noise_scheduler, timesteps, self.hparams.snr_gamma)

    def _with_dropped_captions(self, text_embeds: torch.Tensor, drop_caption: torch.Tensor) -> torch.Tensor:
        return torch.where(drop_caption[:, None], self.empty_prompt_embedding()[None], text_embeds)

    def diffusion_loss(
        self,
        latents: torch.Tensor,
        text_embeds: torch.Tensor,
        drop_caption: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The denoising loss of the LoRA UNet on one batch (DESIGN.md section 2)."""
        text_embeds = self._with_dropped_captions(text_embeds, drop_caption)
        noisy, noise, timesteps = self.noised(latents, generator)
        prediction = self.predict_noise(noisy, timesteps, text_embeds)
        target = diffusion_target(self.noise_scheduler, latents, noise, timesteps)
        return weighted_mse(prediction, target, self._loss_weights(timesteps))

    def distillation_loss(
        self,
        latents: torch.Tensor,
        text_embeds: torch.Tensor,
        drop_caption: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """How far the adapter moves the prediction from the frozen base UNet's on the same noisy input.

        Same noising, timesteps, conditioning and weighting as :meth:`diffusion_loss`, but the target is the base
        model's prediction (adapter disabled, no gradients) instead of the sampled noise, whose variance would
        otherwise dominate the loss: zero exactly when the adapter leaves these prompts' output unchanged.
        """
        text_embeds = self._with_dropped_captions(text_embeds, drop_caption)
        noisy, _, timesteps = self.noised(latents, generator)
        with torch.no_grad(), adapter_disabled(self.unet):
            target = self.predict_noise(noisy, timesteps, text_embeds)
        prediction = self.predict_noise(noisy, timesteps, text_embeds)
        return weighted_mse(prediction, target, self._loss_weights(timesteps))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        latents, text_embeds = self.batch_latents_and_embeddings(batch)
        drop = torch.rand(latents.shape[0], device=latents.device) < self.hparams.caption_dropout
        loss = self.diffusion_loss(latents, text_embeds, drop)
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

    def prior_set(self, latent_shape: tuple[int, int, int]) -> PriorSet:
        """The base model's samples for ``prior_prompts`` at the training latents' shape, generated on first use."""
        if self._prior_set is None or tuple(self._prior_set.latents.shape[1:]) != tuple(latent_shape):
            self._prior_set = generate_prior_set(
                self.components, list(self.hparams.prior_prompts), self.hparams.prior_samples_per_prompt,
                latent_shape, self.hparams.num_inference_steps, self._prior_guidance_scale(),
                self.hparams.sample_scheduler, self.hparams.prior_seed,
            )
            rank_zero_info(
                f"Prior preservation: {len(self._prior_set)} base-model samples of {len(self.hparams.prior_prompts)} "
                f"prompt(s) generated in {self._prior_set.seconds:.1f} s."
            )
        return self._prior_set

    def _prior_guidance_scale(self) -> float:
        scale = self.hparams.prior_guidance_scale
        return self.hparams.guidance_scale if scale is None else scale

    def prior_loss(self, latents: torch.Tensor) -> torch.Tensor:
        """The prior loss on a random minibatch of the prior set, as many samples as the training batch.

        ``prior_target`` picks the objective: the denoising loss (``samples``) or the distillation loss against the
        frozen base model (``base_model``).
        """
        prior = self.prior_set(tuple(latents.shape[1:]))
        rows = torch.randint(0, len(prior), (latents.shape[0],), device=prior.latents.device)
        drop = torch.rand(latents.shape[0], device=latents.device) < self.hparams.caption_dropout
        loss = self.distillation_loss if self.hparams.prior_target == "base_model" else self.diffusion_loss
        return loss(prior.latents[rows], prior.text_embeds[rows], drop)

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
        latents, text_embeds = self.batch_latents_and_embeddings(batch, generator)
        keep = torch.zeros(latents.shape[0], dtype=torch.bool, device=latents.device)
        return self.diffusion_loss(latents, text_embeds, keep, generator)

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
        waveform = generate(
            self.components,
            prompts,
            duration=self.hparams.sample_duration,
            num_inference_steps=self.hparams.num_inference_steps,
            guidance_scale=self.hparams.guidance_scale,
            generator=seeded_generators(seeds, self.device),
            scheduler=self.hparams.sample_scheduler,
        )
        return {"waveform": waveform.cpu(), "prompt": prompts, "seed": seeds, "sample_rate": self.components.sampling_rate}

    # --------------------------------------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        parameters = lora_parameters(self.unet)
        fused = self.hparams.fused_optimizer
        if fused is None:
            fused = bool(parameters) and all(p.is_cuda for p in parameters)
        optimizer = torch.optim.AdamW(
            parameters,
            lr=self.hparams.learning_rate,
            betas=tuple(self.hparams.adam_betas),
            weight_decay=self.hparams.weight_decay,
            eps=self.hparams.adam_epsilon,
            fused=fused or None,
        )
        total_steps = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
        name = self.hparams.lr_schedule
        if name == "constant":
            name = "constant_with_warmup"
        scheduler = get_scheduler(
            name, optimizer, num_warmup_steps=self.hparams.warmup_steps, num_training_steps=max(total_steps, 1)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---------------------------------------------------------------------------------------- checkpointing
    def trainable_state_keys(self) -> set[str]:
        """state_dict keys of the LoRA weights: the only model state a resume checkpoint needs."""
        return {name for name, param in self.named_parameters() if param.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trainable weights (a resume checkpoint of the real model is megabytes, not gigabytes) and
        the random number generator states, so a resumed run draws the same noise as an uninterrupted one."""
        keys = self.trainable_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keys}
        checkpoint[RNG_STATE_KEY] = capture_rng_states()
        checkpoint["nonfinite_steps"] = self.nonfinite_steps

    def on_train_start(self) -> None:
        """Restore the checkpoint's RNG states right before the first training batch (after the sanity check)."""
        if self._pending_rng_states is not None:
            restore_rng_states(self._pending_rng_states)
            self._pending_rng_states = None

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng_states = checkpoint.get(RNG_STATE_KEY)
        self.nonfinite_steps = int(checkpoint.get("nonfinite_steps", 0))
        missing = sorted(self.trainable_state_keys() - set(checkpoint.get("state_dict", {})))
        if missing:
            raise KeyError(
                f"The checkpoint lacks {len(missing)} LoRA weight(s) of this model (first: {missing[0]}). It was "
                "written for another LoRA configuration (rank, targets, DoRA) or another base model; resume with the "
                "config the checkpoint was trained with."
            )

    # -------------------------------------------------------------------------------------------- adapters
    def adapter_info(self, step: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What ``adapter_info.json`` records beside the weights."""
        trainable, _ = self.trainable_parameter_count()
        info = {
            "base_model": self.hparams.pretrained_model,
            "revision": self.hparams.revision,
            "rank": self.hparams.lora_rank,
            "alpha": self.hparams.lora_alpha,
            "target_modules": sorted(self.lora_config.target_modules),
            "init": self.hparams.lora_init,
            "use_rslora": self.hparams.use_rslora,
            "use_dora": self.hparams.use_dora,
            "dropout": self.hparams.lora_dropout,
            "trainable_parameters": trainable,
            "global_step": step,
            "model_config": dict(self.hparams),
        }
        info.update(extra or {})
        return info

    def save_adapter(self, directory: str | Path, step: int, extra: dict[str, Any] | None = None) -> Path:
        """Write the adapter in diffusers' LoRA format plus ``adapter_info.json``."""
        return save_adapter(self.unet, directory, self.adapter_info(step, extra))
