"""The weight-free mel-statistics embedder, waveform preparation and the factory."""

from __future__ import annotations

import pytest
import torch
import torchaudio.functional as AF

from datamodules.features import log_mel_spectrogram, normalize_waveform
from metrics import ClapEmbedder, LaionClapEmbedder, MelStatisticsEmbedder, build_embedder
from metrics.embedders import DEFAULT_CLAP_MODEL, prepare_waveforms


def _by_hand(clip: torch.Tensor) -> torch.Tensor:
    mel = log_mel_spectrogram(normalize_waveform(clip))
    return torch.cat([mel.mean(0), mel.std(0, correction=0)])


def test_mel_statistics_are_band_means_and_standard_deviations() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = [torch.randn(16_000, generator=generator) * 0.2, torch.randn(8_000, generator=generator)]
    embedder = MelStatisticsEmbedder(batch_size=1)
    out = embedder.embed_audio(clips, 16_000)
    assert out.shape == (2, 128) and out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, torch.stack([_by_hand(c) for c in clips]))
    assert embedder.embedder_id == "mel-stats-v1" and embedder.embedding_dim == 128


def test_other_sample_rates_and_layouts_are_resampled_and_downmixed() -> None:
    generator = torch.Generator().manual_seed(1)
    stereo = torch.randn(2, 2, 44_100, generator=generator) * 0.3  # [N, C, T] at 44.1 kHz
    out = MelStatisticsEmbedder().embed_audio(stereo, 44_100)
    expected = torch.stack([_by_hand(AF.resample(clip.mean(0), 44_100, 16_000)) for clip in stereo])
    torch.testing.assert_close(out, expected)
    single = MelStatisticsEmbedder().embed_audio(stereo[0, 0].numpy(), 44_100)  # one [T] numpy clip
    assert single.shape == (1, 128)


def test_prepare_waveforms_errors_name_the_clip() -> None:
    bad = torch.zeros(3, 100)
    bad[1, 5] = float("nan")
    with pytest.raises(ValueError, match="audio clip 1 contains NaN or inf"):
        prepare_waveforms(bad, 16_000, 16_000)
    with pytest.raises(ValueError, match="audio clip 0 is empty"):
        prepare_waveforms([torch.zeros(0)], 16_000, 16_000)
    with pytest.raises(ValueError, match="sample_rate"):
        prepare_waveforms(torch.zeros(10), 0, 16_000)
    with pytest.raises(ValueError, match="too short"):
        MelStatisticsEmbedder().embed_audio(torch.zeros(2, 300), 16_000)


def test_mel_embedder_has_no_text_encoder() -> None:
    with pytest.raises(NotImplementedError, match="CLAP score needs a CLAP embedder"):
        MelStatisticsEmbedder().embed_text(["rock"])


def test_factory_specs() -> None:
    assert isinstance(build_embedder("mel-stats"), MelStatisticsEmbedder)
    default = build_embedder("clap", batch_size=3, seed=5)
    assert isinstance(default, ClapEmbedder) and default.source == DEFAULT_CLAP_MODEL and default.model is None
    assert default.batch_size == 3 and default.seed == 5
    assert build_embedder("clap:laion/clap-htsat-fused").source == "laion/clap-htsat-fused"
    laion = build_embedder("laion:/ckpt/630k-audioset-fusion-best.pt", laion_amodel="HTSAT-base")
    assert isinstance(laion, LaionClapEmbedder) and laion.amodel == "HTSAT-base" and laion.enable_fusion
    with pytest.raises(ValueError, match="unknown embedder 'vggish'"):
        build_embedder("vggish")
    with pytest.raises(ValueError, match="needs a checkpoint path"):
        build_embedder("laion")
