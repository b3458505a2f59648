"""Resume checkpoints that hold only the trainable state, and continue exactly where the run stopped.

A resume checkpoint of the real model would be gigabytes if it held the frozen VAE, text encoder, UNet and vocoder;
it needs only the LoRA weights (plus Lightning's optimizer, scheduler and loop state). It also needs the global
random number generator states, which draw noise, timesteps, caption dropout and the next epoch's data order:
without them a resumed run diverges from an uninterrupted one. This mixin gives a LightningModule both.
"""

from __future__ import annotations

from typing import Any

from lightning import LightningModule

from lightning_modules.rng import RNG_STATE_KEY, capture_rng_states, restore_rng_states


class TrainableStateCheckpointing(LightningModule):
    """Checkpoint hooks: keep the trainable weights and RNG states; refuse a checkpoint that lacks a LoRA weight.

    The module using it sets ``strict_loading = False`` (frozen weights are absent from the checkpoint by design)
    and ``nonfinite_steps`` (the count of skipped steps, which a resumed run keeps counting).
    """

    nonfinite_steps: int = 0
    _pending_rng_states: dict[str, Any] | None = None

    def trainable_state_keys(self) -> set[str]:
        """state_dict keys of the trainable (LoRA) weights: the only model state a resume checkpoint needs."""
        return {name for name, param in self.named_parameters() if param.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trainable weights (megabytes, not gigabytes) and store the RNG states."""
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
        """Take the RNG states for :meth:`on_train_start`; raise ``KeyError`` when a LoRA weight is missing."""
        self._pending_rng_states = checkpoint.get(RNG_STATE_KEY)
        self.nonfinite_steps = int(checkpoint.get("nonfinite_steps", 0))
        missing = sorted(self.trainable_state_keys() - set(checkpoint.get("state_dict", {})))
        if missing:
            raise KeyError(
                f"The checkpoint lacks {len(missing)} LoRA weight(s) of this model (first: {missing[0]}). It was "
                "written for another LoRA configuration (rank, targets, DoRA) or another base model; resume with the "
                "config the checkpoint was trained with."
            )
