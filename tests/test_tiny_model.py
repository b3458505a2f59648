"""The tiny offline AudioLDM: complete, deterministic, real geometry, loaded by the real loading code."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audioldm_lora.cli import main
from lightning_modules.audioldm import COMPONENTS, encode_text
from lightning_modules.backbone import ModelLoadError, load_backbone
from audioldm_demo.tiny import build_tiny_audioldm


def test_tiny_model_has_real_geometry(tiny_model_dir: Path) -> None:
    parts = load_backbone(str(tiny_model_dir))
    assert math.prod(parts.vocoder.config.upsample_rates) == 160
    assert parts.sampling_rate == 16000
    assert parts.vae_scale_factor == 4
    assert parts.vocoder.config.model_in_dim == 64
    assert parts.latent_shape(2, 10.24) == (2, 8, 256, 16)  # the real model's latent for 10.24 s
    assert parts.unet.config.class_embed_type == "simple_projection"
    assert (tiny_model_dir / "model_index.json").is_file()


def test_tiny_model_is_deterministic(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_audioldm(tmp_path / "again", seed=0)
    other = build_tiny_audioldm(tmp_path / "other", seed=1)
    for name, weights in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                          ("text_encoder", "model"), ("vocoder", "model")]:
        a = load_file(tiny_model_dir / name / f"{weights}.safetensors")
        b = load_file(again / name / f"{weights}.safetensors")
        c = load_file(other / name / f"{weights}.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert not all(torch.equal(a[k], c[k]) for k in a), name
    assert (tiny_model_dir / "tokenizer" / "tokenizer.json").read_bytes() == (again / "tokenizer" / "tokenizer.json").read_bytes()


def test_text_embeddings_are_normalised_and_padding_free(tiny_model_dir: Path) -> None:
    parts = load_backbone(str(tiny_model_dir))
    embeds = encode_text(parts.text_encoder, parts.tokenizer, ["boom bap hip hop music", "jazz", ""])
    assert embeds.shape == (3, 32)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3))
    # Dynamic padding (longest prompt) gives the pipeline's 512-token result.
    tokens = parts.tokenizer(["jazz"], padding="max_length", max_length=512, return_tensors="pt")
    full = parts.text_encoder(**tokens).text_embeds
    full = torch.nn.functional.normalize(full, dim=-1)
    torch.testing.assert_close(embeds[1:2], full, atol=1e-6, rtol=0)


def test_missing_component_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "vocoder")
    with pytest.raises(ModelLoadError, match="lacks the component folder.*vocoder"):
        load_backbone(str(broken))


def test_unusable_model_name_is_rejected() -> None:
    with pytest.raises(ModelLoadError, match="neither an existing directory nor a hub id"):
        load_backbone("./no/such/model")


def test_build_tiny_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-tiny", str(tmp_path / "m")]) == 0
    assert all((tmp_path / "m" / name).is_dir() for name in COMPONENTS)
    assert main(["build-tiny", str(tmp_path / "m")]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
