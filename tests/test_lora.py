"""LoRA injection, presets, validation and diffusers-compatible adapter files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors import safe_open

from lightning_modules.audioldm import UNET_PRESETS
from lightning_modules.lora import (
    ADAPTER_WEIGHTS,
    LoraConfigError,
    add_lora,
    lora_parameters,
    resolve_target_modules,
)
from lightning_modules.adapter_sites import write_adapter_folder


@pytest.fixture()
def unet(tiny_model_dir: Path) -> UNet2DConditionModel:
    return UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("paper", {"to_q", "to_v"}),
        ("attention", {"to_q", "to_k", "to_v", "to_out.0"}),
        ("attention_proj", {"to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out"}),
        ("attention_conditioning", {"to_q", "to_k", "to_v", "to_out.0", "time_emb_proj", "class_embedding"}),
    ],
)
def test_presets_adapt_exactly_their_layers(unet: UNet2DConditionModel, preset: str, expected: set[str]) -> None:
    add_lora(unet, rank=2, alpha=4, targets=preset, presets=UNET_PRESETS)
    adapted = {name.rsplit(".lora_A", 1)[0] for name, _ in unet.named_modules() if name.endswith("lora_A")}
    suffixes = {n.split(".")[-1] if not n.endswith(".0") else "to_out.0" for n in adapted}
    assert suffixes == expected
    trainable = [n for n, p in unet.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_all_linear_covers_every_linear_layer(unet: UNet2DConditionModel) -> None:
    linear = {n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(resolve_target_modules(unet, "all_linear", UNET_PRESETS)) == linear


def test_lora_starts_as_identity_and_counts_parameters(unet: UNet2DConditionModel) -> None:
    x, t, e = torch.randn(1, 8, 8, 16), torch.tensor([10]), torch.randn(1, 32)
    before = unet(x, t, encoder_hidden_states=None, class_labels=e).sample
    add_lora(unet, rank=4, alpha=4, targets="paper", init="gaussian", presets=UNET_PRESETS)
    after = unet(x, t, encoder_hidden_states=None, class_labels=e).sample
    torch.testing.assert_close(before, after)  # B starts at zero
    params = lora_parameters(unet)
    # to_q and to_v in 2 attention blocks x 2 attentions (attn1, attn2): (in + out) * r per layer
    assert sum(p.numel() for p in params) == sum(
        (m.in_features + m.out_features) * 4
        for n, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and (n.endswith("to_q.base_layer") or n.endswith("to_v.base_layer"))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0}, "rank must be a positive integer"),
        ({"rank": -2}, "rank must be a positive integer"),
        ({"alpha": 0}, "alpha must be positive"),
        ({"dropout": 1.5}, "dropout"),
        ({"targets": ["to_qq"]}, r"\['to_qq'\] match no module.*to_q"),
        ({"targets": "everything"}, "Unknown LoRA target preset 'everything'"),
    ],
)
def test_bad_lora_settings_are_explained(unet: UNet2DConditionModel, kwargs: dict, message: str) -> None:
    settings = {"rank": 2, "alpha": 4.0, "targets": "paper"} | kwargs
    with pytest.raises(LoraConfigError, match=message):
        add_lora(unet, **settings, presets=UNET_PRESETS)


def test_saved_adapter_loads_in_plain_diffusers(unet: UNet2DConditionModel, tiny_model_dir: Path, tmp_path: Path) -> None:
    add_lora(unet, rank=2, alpha=8, targets="attention", presets=UNET_PRESETS)
    torch.manual_seed(0)
    for p in lora_parameters(unet):
        p.data.normal_(0, 0.2)
    out = write_adapter_folder({"unet": (unet, "diffusers")}, tmp_path / "adapter", {"rank": 2})
    assert json.loads((out / "adapter_info.json").read_text())["rank"] == 2
    with safe_open(out / ADAPTER_WEIGHTS, "pt") as handle:
        metadata = json.loads(handle.metadata()["lora_adapter_metadata"])
    assert metadata["r"] == 2 and metadata["lora_alpha"] == 8

    fresh = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    fresh.load_lora_adapter(str(out), prefix=None, weight_name=ADAPTER_WEIGHTS, use_safetensors=True)
    x, t, e = torch.randn(2, 8, 8, 16), torch.tensor([5, 500]), torch.randn(2, 32)
    expected = unet(x, t, encoder_hidden_states=None, class_labels=e).sample
    base = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")(
        x, t, encoder_hidden_states=None, class_labels=e
    ).sample
    assert not torch.allclose(expected, base)  # the adapter changes the output...
    torch.testing.assert_close(fresh(x, t, encoder_hidden_states=None, class_labels=e).sample, expected, atol=0, rtol=0)


def test_nan_adapter_is_never_written(unet: UNet2DConditionModel, tmp_path: Path) -> None:
    add_lora(unet, rank=2, alpha=2, targets="paper", presets=UNET_PRESETS)
    lora_parameters(unet)[0].data.fill_(float("nan"))
    with pytest.raises(FloatingPointError):
        write_adapter_folder({"unet": (unet, "diffusers")}, tmp_path / "nan", {})
    assert not (tmp_path / "nan").exists()
    assert not list(tmp_path.iterdir())  # no staging directory left behind


def test_conditioning_preset_makes_the_update_depend_on_the_prompt(unet: UNet2DConditionModel) -> None:
    """With ``attention_conditioning`` an adapter can change one prompt's output and leave another's: here only the
    class-embedding LoRA is non-zero and acts on prompt a alone (b is orthogonal to its A matrix)."""
    add_lora(unet, rank=1, alpha=1, targets="attention_conditioning", presets=UNET_PRESETS)
    x, t = torch.randn(1, 8, 8, 16), torch.tensor([10])
    a, b = torch.zeros(1, 32), torch.zeros(1, 32)
    a[0, 0], b[0, 1] = 1.0, 1.0
    before = [unet(x, t, encoder_hidden_states=None, class_labels=e).sample for e in (a, b)]
    with torch.no_grad():
        unet.class_embedding.lora_A["default"].weight.zero_()
        unet.class_embedding.lora_A["default"].weight[0, 0] = 1.0  # reads only the first embedding dimension
        unet.class_embedding.lora_B["default"].weight.fill_(0.5)
    after = [unet(x, t, encoder_hidden_states=None, class_labels=e).sample for e in (a, b)]
    assert (after[0] - before[0]).abs().max() > 1e-3
    torch.testing.assert_close(after[1], before[1])
