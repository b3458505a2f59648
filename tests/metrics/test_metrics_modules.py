"""The torchmetrics classes on one process: equal to the functional results, resets, errors, embedder input."""

from __future__ import annotations

import pytest
import torch

from metrics import (
    CLAPScore,
    EmbeddingError,
    FrechetAudioDistance,
    KernelAudioDistance,
    MelStatisticsEmbedder,
    clap_score,
    frechet_audio_distance,
    kernel_audio_distance,
    median_pairwise_distance,
)


def _batches(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    real = [torch.randn(n, 12, generator=generator) for n in (7, 9, 4)]
    fake = [1.1 * torch.randn(n, 12, generator=generator) + 0.2 for n in (5, 8)]
    return real, fake


def test_kad_and_fad_metrics_equal_the_functions() -> None:
    real, fake = _batches(0)
    kad, fad = KernelAudioDistance(), FrechetAudioDistance()
    for batch in real:
        kad.update(batch, real=True)
        fad.update(batch, real=True)
    for batch in fake:
        kad.update(batch, real=False)
        fad.update(batch, real=False)
    x, y = torch.cat(real), torch.cat(fake)
    assert float(kad.compute()) == pytest.approx(float(kernel_audio_distance(x, y)), rel=1e-9)
    assert kad.last_bandwidth == pytest.approx(float(median_pairwise_distance(y)))
    assert float(fad.compute()) == pytest.approx(float(frechet_audio_distance(x, y)), rel=1e-12)
    fixed = KernelAudioDistance(bandwidth=2.0)
    fixed.update(x, True)
    fixed.update(y, False)
    assert float(fixed.compute()) == pytest.approx(float(kernel_audio_distance(x, y, bandwidth=2.0)), rel=1e-9)
    assert fixed.last_bandwidth == 2.0


@pytest.mark.filterwarnings("ignore:The ``compute`` method .* was called before the ``update``")
def test_reset_keeps_the_reference_when_asked() -> None:
    real, fake = _batches(1)
    kad = KernelAudioDistance(reset_real_features=False)
    kad.update(torch.cat(real), real=True)
    kad.update(fake[0], real=False)
    kad.compute()
    kad.reset()
    with pytest.raises(EmbeddingError, match="no generated embeddings"):
        kad.compute()
    kad.update(fake[1], real=False)
    expected = kernel_audio_distance(torch.cat(real), fake[1])
    assert float(kad.compute()) == pytest.approx(float(expected), rel=1e-9)
    fad = FrechetAudioDistance()
    fad.update(torch.cat(real), real=True)
    fad.reset()
    with pytest.raises(EmbeddingError, match="no reference embeddings"):
        fad.compute()


def test_update_errors() -> None:
    kad = KernelAudioDistance()
    kad.update(torch.randn(3, 12), real=True)
    with pytest.raises(EmbeddingError, match="generated embeddings have dimension 5 but earlier updates had 12"):
        kad.update(torch.randn(3, 5), real=False)
    bad = torch.randn(4, 12)
    bad[2, 3] = float("nan")
    with pytest.raises(EmbeddingError, match=r"generated embeddings contain NaN or inf in 1 of 4 rows"):
        kad.update(bad, real=False)
    kad.update(torch.randn(1, 12), real=False)
    with pytest.raises(EmbeddingError, match=r"at least 2 generated embeddings, got 1"):
        kad.compute()
    with pytest.raises(ValueError, match="without an embedder"):
        kad.update(torch.randn(2, 16_000), real=False, sample_rate=16_000)


def test_waveform_updates_through_the_embedder_and_no_weights_in_state_dict() -> None:
    embedder = MelStatisticsEmbedder()
    generator = torch.Generator().manual_seed(2)
    real = 0.3 * torch.randn(4, 8_000, generator=generator)
    fake = 0.3 * torch.randn(3, 12_000, generator=generator) + 0.05 * torch.sin(torch.arange(12_000) * 0.3)
    kad = KernelAudioDistance(embedder=embedder)
    kad.update(real, real=True, sample_rate=16_000)
    kad.update(fake, real=False, sample_rate=16_000)
    expected = kernel_audio_distance(embedder.embed_audio(real, 16_000), embedder.embed_audio(fake, 16_000))
    assert float(kad.compute()) == pytest.approx(float(expected), rel=1e-9)
    assert kad.embedder is embedder
    assert list(kad.state_dict()) == [] and len(list(kad.children())) == 0


@pytest.mark.filterwarnings("ignore:The ``compute`` method .* was called before the ``update``")
def test_clap_score_metric_accumulates_pairs() -> None:
    generator = torch.Generator().manual_seed(3)
    text, audio = torch.randn(6, 10, generator=generator), torch.randn(6, 10, generator=generator)
    raw, shifted = CLAPScore(), CLAPScore(convention="shifted")
    for metric in (raw, shifted):
        metric.update(text[:4], audio[:4])
        metric.update(text[4:], audio[4:])
    assert float(raw.compute()) == pytest.approx(float(clap_score(text, audio)), rel=1e-12)
    assert float(shifted.compute()) == pytest.approx(float(clap_score(text, audio, convention="shifted")), rel=1e-12)
    assert raw.compute_cosines().shape == (6,)
    with pytest.raises(ValueError, match="exactly one of text_embeds or prompts"):
        raw.update(audio_embeds=audio)
    with pytest.raises(ValueError, match="without an embedder"):
        raw.update(prompts=["rock"], audio_embeds=audio[:1])
    with pytest.raises(ValueError, match="no text encoder"):
        CLAPScore(embedder=MelStatisticsEmbedder())
    with pytest.raises(EmbeddingError, match="no pairs"):
        CLAPScore().compute()
