"""CLAP embeddings through transformers' ``ClapModel`` (hub id or local directory), for KAD/FAD and the CLAP score.

Uses ``get_text_features`` / ``get_audio_features`` (the projected embeddings), never the logits, which are scaled by
the learned temperature. Embeddings are L2-normalised (transformers 5 already does; 4.x did not), so the cosine is
their dot product and KAD/FAD see the same vectors whatever the transformers version.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from metrics.embedders.base import AudioEmbedder, module_fingerprint, seeded_random_state

DEFAULT_CLAP_MODEL = "laion/larger_clap_music"
CLAP_SAMPLE_RATE = 48_000


def _pooled(output) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` is the embedding; 4.x returned the tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClapEmbedder(AudioEmbedder):
    """transformers CLAP model + processor, loaded on first use (or by :meth:`load`), never at construction.

    Args:
        model: hub id (default ``laion/larger_clap_music``; the paper used ``laion/clap-htsat-fused``) or a local
            directory holding the model, its feature extractor and tokenizer (``save_pretrained`` layout).
        device: where the model runs and embeddings are returned.
        batch_size: clips or prompts per forward pass.
        seed: seeds the feature extractor's random crop of clips longer than its window (10 s), per clip, so that
            an embedding does not depend on the run or on the other clips of its batch.
        local_files_only: passed to ``from_pretrained``; defaults to True for an existing directory.
    """

    sample_rate = CLAP_SAMPLE_RATE
    supports_text = True

    def __init__(
        self,
        model: str | Path = DEFAULT_CLAP_MODEL,
        device: torch.device | str | None = None,
        batch_size: int = 8,
        seed: int = 0,
        local_files_only: bool | None = None,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size)
        self.source = str(model)
        self.seed = seed
        self.local_files_only = Path(self.source).is_dir() if local_files_only is None else local_files_only
        self.model = None
        self.processor = None
        self._fingerprint: str | None = None

    @property
    def embedder_id(self) -> str:
        self.load()
        return f"hf-clap:{self.source}:{self._fingerprint}:seed={self.seed}"

    @property
    def embedding_dim(self) -> int:
        self.load()
        return int(self.model.config.projection_dim)

    def load(self) -> ClapEmbedder:
        """Load model and processor (idempotent)."""
        if self.model is not None:
            return self
        from transformers import ClapModel, ClapProcessor  # heavy import, only when a CLAP embedder is used

        try:
            processor = ClapProcessor.from_pretrained(self.source, local_files_only=self.local_files_only)
            model = ClapModel.from_pretrained(self.source, local_files_only=self.local_files_only)
        except (OSError, ValueError) as error:  # huggingface_hub raises a ValueError for a malformed id/path
            raise OSError(
                f"cannot load the CLAP model {self.source!r} ({error}). Give a hub id that is in the local Hugging "
                "Face cache, or a directory with config.json, the weights, preprocessor_config.json and the tokenizer."
            ) from error
        self.processor = processor
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        self._fingerprint = module_fingerprint(self.model, extra=processor.feature_extractor.to_json_string())
        return self

    def _embed_clips(self, clips: list[torch.Tensor]) -> torch.Tensor:
        extractor = self.processor.feature_extractor
        features, longer = [], []
        for clip in clips:
            samples = clip.double().cpu().numpy()
            with seeded_random_state(self.seed):
                inputs = extractor(samples, sampling_rate=extractor.sampling_rate, return_tensors="pt")
            features.append(inputs["input_features"])
            # A batch of one short clip is flagged "longer" at random by the extractor in fusion mode (a training
            # device to use the fusion weights); at inference only clips over the window are longer.
            longer.append(bool(inputs["is_longer"][0, 0]) and samples.shape[0] > extractor.nb_max_samples)
        dtype = next(self.model.parameters()).dtype
        output = self.model.get_audio_features(
            input_features=torch.cat(features).to(self.device, dtype),
            is_longer=torch.tensor(longer, device=self.device)[:, None],
        )
        return F.normalize(_pooled(output).float(), dim=-1)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        output = self.model.get_text_features(
            input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
        )
        return F.normalize(_pooled(output).float(), dim=-1)
