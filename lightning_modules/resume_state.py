"""Resume checkpoints that hold only the trainable state, and continue exactly where the run stopped.

A resume checkpoint of the real model would be gigabytes if it held the frozen VAE, text encoder, UNet and vocoder;
it needs only the LoRA weights (plus Lightning's optimizer, scheduler and loop state). It also needs the random
stream of the training step (noise, timesteps, caption dropout, LoRA dropout): without it a resumed run diverges.

The training step owns that stream (:func:`training_random_stream`): the global generators are set to the stream's
state when a step starts and the state is taken back when it ends, so whatever runs between steps (validation,
A/B sampling, evaluation, checkpointing, data prefetching, any user callback) cannot move it. A checkpoint stores
each rank's stream as it was after the last finished step; a resume continues it exactly, and turning a callback
on or off does not change what is trained.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from lightning import LightningModule
from lightning.pytorch.utilities import rank_zero_warn

from lightning_modules.resume_settings import check_resume_settings
from lightning_modules.rng import RNG_STATE_KEY, capture_rng_states, restore_rng_states, seed_rng_states

STREAM_STATES_KEY = "training_rng_streams"
Step = TypeVar("Step", bound=Callable[..., Any])


def training_random_stream(step: Step) -> Step:
    """Decorate ``training_step``: it draws from the module's own training stream (see the module docstring)."""

    @functools.wraps(step)
    def with_stream(self: TrainableStateCheckpointing, *args: Any, **kwargs: Any) -> Any:
        self.enter_training_stream()
        try:
            return step(self, *args, **kwargs)
        finally:
            self.training_stream = capture_rng_states()

    return with_stream  # type: ignore[return-value]


class TrainableStateCheckpointing(LightningModule):
    """Checkpoint hooks: keep the trainable weights and training streams; refuse a checkpoint lacking a LoRA weight.

    The module using it sets ``strict_loading = False`` (frozen weights are absent from the checkpoint by design)
    and ``nonfinite_steps`` (the count of skipped steps, which a resumed run keeps counting).
    """

    nonfinite_steps: int = 0
    training_stream: dict[str, Any] | None = None

    def trainable_state_keys(self) -> set[str]:
        """state_dict keys of the trainable (LoRA) weights: the only model state a resume checkpoint needs."""
        return {name for name, param in self.named_parameters() if param.requires_grad}

    def enter_training_stream(self) -> None:
        """Set the global generators to the training stream; the first step starts it from the run's seed
        (``seed_everything``, mixed with the rank so ranks draw different noise), else from the current state."""
        if self.training_stream is None:
            # Without a Trainer (a step called from Python) there is no run seed: continue the current state.
            seed = os.environ.get("PL_GLOBAL_SEED") if self._trainer is not None else None
            self.training_stream = (capture_rng_states() if seed is None
                                    else seed_rng_states(int(seed), self.global_rank))
        restore_rng_states(self.training_stream)

    def _streams_of_all_ranks(self) -> list[dict[str, Any]]:
        """Every rank's training stream, in rank order (a collective: Lightning calls ``on_save_checkpoint`` on
        every rank; only rank zero writes the file)."""
        stream = self.training_stream if self.training_stream is not None else capture_rng_states()
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return [stream]
        streams: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(streams, stream)
        return streams

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trainable weights (megabytes, not gigabytes) and store every rank's training stream."""
        keys = self.trainable_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keys}
        checkpoint[STREAM_STATES_KEY] = self._streams_of_all_ranks()
        checkpoint["nonfinite_steps"] = self.nonfinite_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Take this rank's training stream; refuse a checkpoint of other settings
        (:mod:`lightning_modules.resume_settings`) and raise ``KeyError`` when a LoRA weight is missing."""
        if self._trainer is not None and self.trainer.state.fn == "fit":
            datamodule = self.trainer.datamodule
            changed = check_resume_settings(checkpoint, self.hparams,
                                            getattr(datamodule, "hparams", None) if datamodule is not None else None)
            if changed:
                rank_zero_warn("Resuming with other optimizer settings than the checkpoint's (" + "; ".join(changed)
                               + "): training continues, but not as the uninterrupted run would have.")
        self.training_stream = self._stream_from(checkpoint)
        self.nonfinite_steps = int(checkpoint.get("nonfinite_steps", 0))
        missing = sorted(self.trainable_state_keys() - set(checkpoint.get("state_dict", {})))
        if missing:
            raise KeyError(
                f"The checkpoint lacks {len(missing)} LoRA weight(s) of this model (first: {missing[0]}). It was "
                "written for another LoRA configuration (rank, targets, DoRA) or another base model; resume with the "
                "config the checkpoint was trained with."
            )

    def _stream_from(self, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        """This rank's stream of a checkpoint; older checkpoints stored one global state under ``rng_states``."""
        streams = checkpoint.get(STREAM_STATES_KEY)
        if not streams:
            return checkpoint.get(RNG_STATE_KEY)
        rank = self.global_rank if self._trainer is not None else 0
        if len(streams) != (self.trainer.world_size if self._trainer is not None else 1):
            rank_zero_warn(
                f"The checkpoint was written by {len(streams)} process(es) and this run has a different number: "
                "training continues, but not bit-identically to an uninterrupted run (the random streams are "
                "per process)."
            )
        return streams[rank % len(streams)]
