"""The prior-preservation half of :class:`~lightning_modules.module.AudioLDMLoRA`'s training step.

Kept apart from the module so that the module reads as the plain training step: the prior set is generated on
first use (:func:`~lightning_modules.prior_preservation.generate_prior_set`), and each step adds a loss on a random
minibatch of it, either DreamBooth's denoising loss or the distillation loss against the frozen base model
(``prior_target``). The mixin uses the module's ``backbone``, ``objective``, ``sampling``, ``hparams``,
``diffusion_loss``, ``encode_prompts`` and ``unconditional``.
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_info

from lightning_modules.adapter_sites import adapters_disabled, conditioning_adapted
from lightning_modules.backbone import Conditioning, conditioning_rows, select_conditioning
from lightning_modules.prior_preservation import PriorSet, generate_prior_set


class PriorPreservationSteps:
    """``prior_set``, ``prior_loss`` and ``distillation_loss`` of the LightningModule."""

    _prior_set: PriorSet | None

    def distillation_loss(
        self, latents: torch.Tensor, cond: Conditioning, drop_caption: torch.Tensor,
        generator: torch.Generator | None = None, base_cond: Conditioning | None = None,
    ) -> torch.Tensor:
        """How far the adapter moves the prediction from the frozen base model's on the same noisy input.

        Same noising, timesteps, conditioning and weighting as :meth:`diffusion_loss`, but the target is the base
        model's prediction (adapters disabled, no gradients) instead of the sampled noise, whose variance would
        otherwise dominate the loss: zero exactly when the adapter leaves these prompts' output unchanged.
        ``base_cond`` is the base model's conditioning of the same prompts (default ``cond``; it differs when the
        text encoder is adapted), and the base's unconditional input replaces it where captions are dropped.
        """
        noised = self.objective.noised(latents, generator)
        with torch.no_grad(), adapters_disabled(self.backbone):
            base = select_conditioning(cond if base_cond is None else base_cond, drop_caption, self.unconditional(),
                                       self.backbone.stream_masks)
            target = self.backbone.predict_noise(noised.noisy, noised.timesteps, base)
        cond = select_conditioning(cond, drop_caption, self.unconditional(), self.backbone.stream_masks)
        prediction = self.backbone.predict_noise(noised.noisy, noised.timesteps, cond)
        return self.objective.loss(prediction, noised, target)

    def prior_set(self, latent_shape: tuple[int, int, int]) -> PriorSet:
        """The base model's samples for ``prior_prompts`` at the training latents' shape, generated on first use."""
        if self._prior_set is None or tuple(self._prior_set.latents.shape[1:]) != tuple(latent_shape):
            scale = self.hparams.prior_guidance_scale
            self._prior_set = generate_prior_set(
                self.backbone, list(self.hparams.prior_prompts), self.hparams.prior_samples_per_prompt,
                latent_shape, self.sampling.num_inference_steps,
                self.sampling.guidance_scale if scale is None else scale, self.sampling.scheduler,
                self.hparams.prior_seed,
            )
            rank_zero_info(
                f"Prior preservation: {len(self._prior_set)} base-model samples of {len(self.hparams.prior_prompts)} "
                f"prompt(s) generated in {self._prior_set.seconds:.1f} s."
            )
        return self._prior_set

    def prior_loss(self, latents: torch.Tensor) -> torch.Tensor:
        """The prior loss on a random minibatch of the prior set, as many samples as the training batch.

        ``prior_target`` picks the objective: the denoising loss (``samples``) or the distillation loss against the
        frozen base model (``base_model``).
        With an adapted text encoder the prompts are encoded with the adapter on (the set stores the base model's
        conditioning, which is the distillation target's).
        """
        prior = self.prior_set(tuple(latents.shape[1:]))
        rows = torch.randint(0, len(prior), (latents.shape[0],), device=prior.latents.device)
        drop = torch.rand(latents.shape[0], device=latents.device) < self.hparams.caption_dropout
        base_cond = conditioning_rows(prior.conditioning, rows)
        cond = base_cond
        if conditioning_adapted(self.backbone):
            cond = self.encode_prompts([prior.prompts[row] for row in rows.tolist()])
        if self.hparams.prior_target == "base_model":
            return self.distillation_loss(prior.latents[rows], cond, drop, base_cond=base_cond)
        return self.diffusion_loss(prior.latents[rows], cond, drop)
