"""CLAP score: the functional conventions, and the transformers backend on a tiny random ClapModel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from metrics_helpers import PROMPTS, build_tiny_clap

from metrics import ClapEmbedder, CLAPScore, EmbeddingError, build_embedder, clap_score


def test_clap_score_raw_and_shifted_conventions() -> None:
    generator = torch.Generator().manual_seed(0)
    text, audio = torch.randn(5, 7, generator=generator), torch.randn(5, 7, generator=generator)
    t, a = text.double().numpy(), audio.double().numpy()
    cos = (t * a).sum(1) / np.linalg.norm(t, axis=1) / np.linalg.norm(a, axis=1)
    assert float(clap_score(text, audio)) == pytest.approx(cos.mean(), rel=1e-12)
    assert float(clap_score(text, audio, convention="shifted")) == pytest.approx(((cos + 1) / 2).mean(), rel=1e-12)
    assert float(clap_score(text, 3.0 * audio)) == pytest.approx(cos.mean(), rel=1e-6)  # scale invariant


def test_clap_score_errors() -> None:
    text, audio = torch.randn(4, 6), torch.randn(4, 6)
    with pytest.raises(EmbeddingError, match="4 text embeddings and 3 audio embeddings"):
        clap_score(text, audio[:3])
    with pytest.raises(EmbeddingError, match="text embeddings have dimension 6 but audio embeddings have dimension 5"):
        clap_score(text, audio[:, :5])
    audio[1, 0] = float("inf")
    with pytest.raises(EmbeddingError, match=r"audio embeddings contain NaN or inf in 1 of 4 rows"):
        clap_score(text, audio)
    with pytest.raises(ValueError, match="convention"):
        clap_score(text, text, convention="paper")  # type: ignore[arg-type]


def _by_hand(model_dir: Path, prompts: list[str], clips: list[torch.Tensor], sample_rate: int) -> torch.Tensor:
    """Cosines straight from ClapModel.get_text_features / get_audio_features, without the embedder."""
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(model_dir).eval()
    processor = ClapProcessor.from_pretrained(model_dir)
    tokens = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    audio = [AF.resample(clip, sample_rate, 48_000).double().numpy() for clip in clips]
    features = processor.feature_extractor(audio, sampling_rate=48_000, return_tensors="pt")
    with torch.no_grad():
        text = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        sound = model.get_audio_features(input_features=features["input_features"], is_longer=features["is_longer"])
    text = text if isinstance(text, torch.Tensor) else text.pooler_output
    sound = sound if isinstance(sound, torch.Tensor) else sound.pooler_output
    return F.cosine_similarity(text.double(), sound.double(), dim=-1)


def test_clap_score_with_tiny_clap_equals_the_cosine_by_hand(tiny_clap_dir: Path) -> None:
    generator = torch.Generator().manual_seed(1)
    clips = [0.3 * torch.randn(16_000, generator=generator) for _ in PROMPTS]  # 1 s at 16 kHz, shorter than the window
    expected = _by_hand(tiny_clap_dir, PROMPTS, clips, 16_000)

    embedder = build_embedder(f"clap:{tiny_clap_dir}")
    assert isinstance(embedder, ClapEmbedder) and embedder.model is None  # nothing loaded yet
    metric = CLAPScore(embedder=embedder)
    metric.update(prompts=PROMPTS[:2], audio=clips[:2], sample_rate=16_000)
    metric.update(prompts=PROMPTS[2:], audio=torch.stack(clips[2:]), sample_rate=16_000)
    torch.testing.assert_close(metric.compute_cosines(), expected, rtol=1e-5, atol=1e-6)
    assert float(metric.compute()) == pytest.approx(float(expected.mean()), rel=1e-5, abs=1e-6)
    assert "_embedder" not in dict(metric.named_modules()) and not metric.state_dict()

    text = embedder.embed_text(PROMPTS)
    audio = embedder.embed_audio(clips, 16_000)
    assert text.shape == (4, 16) and audio.shape == (4, 16) and text.dtype == torch.float32
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(4))
    shifted = float(clap_score(text, audio, convention="shifted"))
    assert shifted == pytest.approx(float(((expected + 1) / 2).mean()), rel=1e-5)
    assert embedder.embedder_id.startswith(f"hf-clap:{tiny_clap_dir}:") and embedder.embedder_id.endswith(":seed=0")
    assert embedder.embedding_dim == 16


def test_random_crop_of_long_clips_is_seeded_per_clip(tiny_clap_dir: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    long_clip = 0.3 * torch.randn(48_000 * 3, generator=generator)  # 3 s: over the 1 s window, randomly cropped
    short = 0.3 * torch.randn(24_000, generator=generator)
    embedder = ClapEmbedder(tiny_clap_dir)
    state = np.random.get_state()
    alone = embedder.embed_audio([long_clip], 48_000)
    np.random.seed(123)  # the global state must not matter
    batched = embedder.embed_audio([short, long_clip, short], 48_000)
    torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched[0], batched[2])
    other_seed = ClapEmbedder(tiny_clap_dir, seed=1).embed_audio([long_clip], 48_000)
    assert not torch.allclose(other_seed, alone)  # another crop
    np.random.set_state(state)


def test_fusion_model_flags_only_long_clips_as_longer(tmp_path: Path) -> None:
    directory = build_tiny_clap(tmp_path / "fused", fusion=True)
    embedder = ClapEmbedder(directory)
    generator = torch.Generator().manual_seed(3)
    short = 0.3 * torch.randn(30_000, generator=generator)
    long_clip = 0.3 * torch.randn(48_000 * 2, generator=generator)
    first = embedder.embed_audio([short, long_clip], 48_000)
    again = embedder.embed_audio([long_clip, short], 48_000)
    torch.testing.assert_close(first, again.flip(0), rtol=1e-5, atol=1e-6)

    from transformers import ClapModel, ClapProcessor

    model, processor = ClapModel.from_pretrained(directory).eval(), ClapProcessor.from_pretrained(directory)
    features = processor.feature_extractor([short.double().numpy()], sampling_rate=48_000, return_tensors="pt")
    with torch.no_grad():
        output = model.get_audio_features(input_features=features["input_features"], is_longer=torch.tensor([[False]]))
    expected = output if isinstance(output, torch.Tensor) else output.pooler_output
    torch.testing.assert_close(first[0], F.normalize(expected, dim=-1)[0], rtol=1e-5, atol=1e-6)


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot load the CLAP model"):
        ClapEmbedder(tmp_path / "nowhere", local_files_only=True).load()
