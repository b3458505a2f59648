"""CLAP embeddings from laion-clap ``.pt`` checkpoints (audiocraft uses ``music_audioset_epoch_15_esc_90.14.pt``).

``laion_clap`` is imported only when this backend loads: it is an optional dependency (``audioldm-lora[laion]``:
laion-clap pins numpy<2 and needs torchvision), and its import asks the hub for three tokenizers, which hangs on
network time-outs offline (docs/environment.md, 'Other packages').
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torch.nn.functional as F

from metrics.embedders.base import AudioEmbedder, module_fingerprint, seeded_random_state

LAION_SAMPLE_RATE = 48_000
LAION_WINDOW_SAMPLES = 480_000  # 10 s at 48 kHz: longer clips are cropped (or fused) by laion-clap


def infer_laion_options(checkpoint: str | Path) -> tuple[str, bool]:
    """Audio encoder and fusion flag implied by a checkpoint's file name.

    The music checkpoints (``music_audioset_epoch_15_esc_90.14.pt``, ``music_speech_audioset_...``) and the
    "larger" ones use HTSAT-base; the 630k ones use HTSAT-tiny; names with "fusion" are fusion models.
    """
    name = Path(checkpoint).name.lower()
    amodel = "HTSAT-base" if ("music" in name or "larger" in name) else "HTSAT-tiny"
    return amodel, "fusion" in name


def import_laion_clap():
    """Import ``laion_clap`` now, with an actionable message when it is missing."""
    try:
        return importlib.import_module("laion_clap")
    except ImportError as error:
        raise ImportError(
            "the laion backend needs laion-clap: pip install 'audioldm-lora[laion]' (laion-clap>=1.1.7 and "
            "torchvision). Offline, its import also needs the roberta-base, bert-base-uncased and facebook/bart-base "
            "tokenizers in the Hugging Face cache."
        ) from error


class LaionClapEmbedder(AudioEmbedder):
    """laion-clap ``CLAP_Module`` with a local checkpoint, loaded on first use (or by :meth:`load`).

    Audio goes in as float tensors (``use_tensor=True``), as audiocraft's CLAP metric passes it. Clips longer than
    10 s are cropped by laion-clap at a random offset from NumPy's global generator: each such clip is embedded alone
    under a fixed ``seed`` so that the score is reproducible and independent of batching; shorter clips involve no
    randomness and are batched.
    """

    sample_rate = LAION_SAMPLE_RATE
    supports_text = True

    def __init__(
        self,
        checkpoint: str | Path,
        device: torch.device | str | None = None,
        amodel: str | None = None,
        enable_fusion: bool | None = None,
        batch_size: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.checkpoint = Path(checkpoint)
        inferred_amodel, inferred_fusion = infer_laion_options(checkpoint)
        self.amodel = amodel or inferred_amodel
        self.enable_fusion = inferred_fusion if enable_fusion is None else enable_fusion
        self.seed = seed
        self.model = None
        self._fingerprint: str | None = None

    @property
    def embedder_id(self) -> str:
        self.load()
        return (
            f"laion-clap:{self.checkpoint.name}:{self._fingerprint}:{self.amodel}:"
            f"fusion={int(self.enable_fusion)}:seed={self.seed}"
        )

    def load(self) -> LaionClapEmbedder:
        """Import laion-clap, build the module and load the checkpoint (idempotent)."""
        if self.model is not None:
            return self
        if not self.checkpoint.is_file():
            raise FileNotFoundError(f"laion-clap checkpoint not found: {self.checkpoint}")
        laion_clap = import_laion_clap()
        module = laion_clap.CLAP_Module(enable_fusion=self.enable_fusion, amodel=self.amodel, device=str(self.device))
        try:
            module.load_ckpt(str(self.checkpoint))
        except Exception as error:
            if "weights_only" in str(error):
                raise RuntimeError(
                    f"{self.checkpoint}: torch>=2.6 refuses to unpickle this laion-clap checkpoint with weights_only. "
                    "If you trust the file, set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 and run again."
                ) from error
            raise
        self.model = module.eval().requires_grad_(False).to(self.device)
        self._fingerprint = module_fingerprint(self.model)
        return self

    def _embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        rows: list[torch.Tensor | None] = [None] * len(clips)
        short = [i for i, clip in enumerate(clips) if clip.numel() <= LAION_WINDOW_SAMPLES]
        if short:
            with seeded_random_state(self.seed):
                batch = self._audio_call([clips[i] for i in short])
            for row, i in zip(batch, short):
                rows[i] = row
        for i, clip in enumerate(clips):
            if rows[i] is None:
                with seeded_random_state(self.seed):
                    rows[i] = self._audio_call([clip])[0]
        return F.normalize(torch.stack(rows).float(), dim=-1)

    def _audio_call(self, clips: list[torch.Tensor]) -> torch.Tensor:
        if all(clip.numel() == clips[0].numel() for clip in clips):
            data = torch.stack(clips)
        else:
            data = clips  # laion-clap iterates over the clips one by one
        output = self.model.get_audio_embedding_from_data(data, use_tensor=True)
        return torch.as_tensor(output, device=self.device)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        # laion-clap's tokenizer squeezes the batch dimension away for a single prompt: embed it twice.
        query = texts * 2 if len(texts) == 1 else texts
        output = self.model.get_text_embedding(query, use_tensor=True)
        return F.normalize(torch.as_tensor(output, device=self.device)[: len(texts)].float(), dim=-1)
