"""The laion-clap glue, with a stand-in ``laion_clap`` module (the real one is not installed and hangs offline)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from metrics import CLAPScore, LaionClapEmbedder, build_embedder
from metrics.embedders.laion import LAION_WINDOW_SAMPLES, infer_laion_options

DIM = 8


class _StandInClapModule(torch.nn.Module):
    """Mimics ``laion_clap.CLAP_Module``: random 10 s crop from NumPy's global generator, single-prompt squeeze."""

    instances: ClassVar[list[_StandInClapModule]] = []

    def __init__(self, enable_fusion: bool = False, device: str | None = None, amodel: str = "HTSAT-tiny",
                 tmodel: str = "roberta") -> None:
        super().__init__()
        self.enable_fusion, self.device_name, self.amodel = enable_fusion, device, amodel
        self.projection = torch.nn.Linear(4, DIM, bias=False)
        torch.nn.init.normal_(self.projection.weight, generator=torch.Generator().manual_seed(0))
        self.loaded: str | None = None
        self.audio_calls: list[int] = []
        _StandInClapModule.instances.append(self)

    def load_ckpt(self, ckpt: str | None = None, model_id: int = -1) -> None:
        if "pickled" in str(ckpt):
            raise RuntimeError("Weights only load failed ... weights_only ...")
        self.loaded = ckpt

    def get_audio_embedding_from_data(self, x, use_tensor: bool = False):
        assert use_tensor
        rows = []
        for audio in x:
            self.audio_calls.append(int(audio.numel()))
            if audio.numel() > LAION_WINDOW_SAMPLES:
                start = np.random.randint(0, audio.numel() - LAION_WINDOW_SAMPLES + 1)
                audio = audio[start : start + LAION_WINDOW_SAMPLES]
            stats = torch.stack([audio.mean(), audio.std(), audio[:100].sum(), audio[-100:].sum()])
            rows.append(self.projection(stats.float()))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)

    def get_text_embedding(self, x, tokenizer=None, use_tensor: bool = False):
        assert len(x) >= 2, "laion-clap squeezes the batch dimension of a single prompt"
        rows = [self.projection(torch.tensor([len(t), t.count(" "), ord(t[0]), 1.0])) for t in x]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1).detach().numpy()


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    assert "laion_clap" not in sys.modules  # nothing imported it before the backend was chosen
    module = types.ModuleType("laion_clap")
    module.CLAP_Module = _StandInClapModule  # type: ignore[attr-defined]
    _StandInClapModule.instances.clear()
    monkeypatch.setitem(sys.modules, "laion_clap", module)
    return module


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "music_audioset_epoch_15_esc_90.14.pt"
    path.write_bytes(b"stand-in")
    return path


def test_options_follow_the_checkpoint_name() -> None:
    assert infer_laion_options("music_audioset_epoch_15_esc_90.14.pt") == ("HTSAT-base", False)
    assert infer_laion_options("630k-audioset-fusion-best.pt") == ("HTSAT-tiny", True)
    assert infer_laion_options("630k-best.pt") == ("HTSAT-tiny", False)


def test_building_does_not_import_laion_clap(checkpoint: Path) -> None:
    embedder = build_embedder(f"laion:{checkpoint}")
    assert isinstance(embedder, LaionClapEmbedder) and embedder.model is None
    assert "laion_clap" not in sys.modules


def test_missing_package_says_how_to_install(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "laion_clap", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'audioldm-lora\[laion\]'"):
        LaionClapEmbedder(checkpoint).load()


def test_missing_checkpoint_and_weights_only_errors(tmp_path: Path, stand_in: types.ModuleType) -> None:
    with pytest.raises(FileNotFoundError, match="laion-clap checkpoint not found"):
        LaionClapEmbedder(tmp_path / "absent.pt").load()
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(b"x")
    with pytest.raises(RuntimeError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1"):
        LaionClapEmbedder(pickled).load()


def test_glue_loads_embeds_and_seeds_the_random_crop(checkpoint: Path, stand_in: types.ModuleType) -> None:
    embedder = build_embedder(f"laion:{checkpoint}", seed=7).load()
    module = _StandInClapModule.instances[-1]
    assert module.loaded == str(checkpoint) and module.amodel == "HTSAT-base" and not module.enable_fusion
    assert embedder.embedder_id.startswith("laion-clap:music_audioset_epoch_15_esc_90.14.pt:")
    assert embedder.embedder_id.endswith(":HTSAT-base:fusion=0:seed=7")

    generator = torch.Generator().manual_seed(0)
    long_clip = torch.randn(LAION_WINDOW_SAMPLES + 48_000, generator=generator)  # 11 s at 48 kHz
    short = torch.randn(48_000, generator=generator)
    np_state = np.random.get_state()
    alone = embedder.embed_audio([long_clip], 48_000)
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # the global generator is restored
    np.random.seed(99)
    batched = embedder.embed_audio([short, long_clip, short], 48_000)
    torch.testing.assert_close(batched[1], alone[0])
    assert batched.shape == (3, DIM) and batched.dtype == torch.float32
    # the two short clips went in one call, the long one alone
    assert module.audio_calls[-3:] == [48_000, 48_000, LAION_WINDOW_SAMPLES + 48_000]

    crops = {tuple(build_embedder(f"laion:{checkpoint}", seed=s).embed_audio([long_clip], 48_000)[0].tolist())
             for s in range(4)}
    assert len(crops) > 1  # the seed picks the crop

    resampled = embedder.embed_audio([short[::3].clone()], 16_000)  # any input rate is resampled to 48 kHz
    assert resampled.shape == (1, DIM) and module.audio_calls[-1] == 48_000


def test_single_prompt_and_clap_score(checkpoint: Path, stand_in: types.ModuleType) -> None:
    embedder = LaionClapEmbedder(checkpoint)
    one = embedder.embed_text(["boom bap hip hop"])
    two = embedder.embed_text(["boom bap hip hop", "rock"])
    assert one.shape == (1, DIM)
    torch.testing.assert_close(one[0], two[0])
    audio = torch.randn(2, 48_000, generator=torch.Generator().manual_seed(1))
    metric = CLAPScore(embedder=embedder)
    metric.update(prompts=["boom bap hip hop", "rock"], audio=audio, sample_rate=48_000)
    expected = (two * embedder.embed_audio(audio, 48_000)).sum(-1).double().mean()
    assert float(metric.compute()) == pytest.approx(float(expected), rel=1e-6)
