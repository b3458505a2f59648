"""Writes ``predict`` output as 16 kHz wav files with a JSON sidecar per clip (prompt, seed, settings)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from callbacks.run_dir import run_directory
from datamodules.audio import save_audio
from datamodules.clip_folder import clip_stem, write_sidecar


class WaveformWriter(BasePredictionWriter):
    """Saves each predicted clip as ``<out>/<index>_<prompt>_seed<seed>.wav`` plus its ``.json`` sidecar (the clip
    folder format of :mod:`datamodules.clip_folder`, as ``generate`` writes it)."""

    def __init__(self, output_dir: str | None = None) -> None:
        """
        Args:
            output_dir: where clips go (default: ``<run dir>/predictions``).
        """
        super().__init__(write_interval="batch")
        self.output_dir = output_dir

    def directory(self, trainer: Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else run_directory(trainer) / "predictions"

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        out = self.directory(trainer)
        indices = list(batch_indices) if batch_indices is not None else list(range(len(prediction["prompt"])))
        settings = asdict(pl_module.sampling)
        for index, waveform, prompt, seed in zip(indices, prediction["waveform"], prediction["prompt"], prediction["seed"]):
            wav = out / f"{clip_stem(index, prompt, seed)}.wav"
            save_audio(wav, waveform, prediction["sample_rate"])
            write_sidecar(wav, {"prompt": prompt, "seed": seed, "base_model": pl_module.hparams.pretrained_model,
                                # What made the clip: the checkpoint's adapter, or (None) the base model.
                                "checkpoint": str(trainer.ckpt_path) if trainer.ckpt_path else None, **settings})
