"""Adapter arguments, loading and mixing through diffusers, and the errors for damaged or foreign adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel

from lightning_modules.adapter_files import (
    AdapterError,
    parse_adapter_spec,
    parse_adapter_specs,
    read_adapter,
)
from lightning_modules.adapters import fuse_adapters, load_adapters
from lightning_modules.backbone import Backbone, load_backbone
from lightning_modules.adapter_files import ADAPTER_INFO, ADAPTER_WEIGHTS
from lightning_modules.sampler import generate, seeded_generators
from tests.adapter_helpers import make_adapters


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_adapters(tiny_model_dir, tmp_path_factory.mktemp("adapters"))


def unet_output(unet: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 8, 16, generator=generator)
    embeds = torch.randn(2, 32, generator=generator)
    with torch.no_grad():
        return unet(x, torch.tensor([5, 500]), encoder_hidden_states=None, class_labels=embeds).sample


def load(model_dir: Path, arguments: list[str]) -> Backbone:
    backbone = load_backbone(str(model_dir))
    load_adapters(backbone, [read_adapter(s) for s in parse_adapter_specs(arguments)], str(model_dir))
    return backbone


@pytest.mark.parametrize(
    ("argument", "name", "directory", "weight"),
    [
        ("runs/jazz", "jazz", "runs/jazz", 1.0),
        ("runs/jazz=0.7", "jazz", "runs/jazz", 0.7),
        ("j=runs/jazz", "j", "runs/jazz", 1.0),
        ("j=runs/jazz=-0.5", "j", "runs/jazz", -0.5),
        ("runs/a.b/final", "final", "runs/a.b/final", 1.0),
        ("runs/jazz/my.safetensors=2", "jazz", "runs/jazz", 2.0),
    ],
)
def test_adapter_arguments(argument: str, name: str, directory: str, weight: float) -> None:
    spec = parse_adapter_spec(argument)
    assert (spec.name, spec.directory, spec.weight) == (name, Path(directory), weight)
    assert spec.weight_name == ("my.safetensors" if argument.endswith("=2") else ADAPTER_WEIGHTS)


@pytest.mark.parametrize(
    ("argument", "message"),
    [("a=b=c", "'c' is not a number"), ("x=runs/a=nan", "finite"), ("a=b=1=2", "expected PATH"),
     ("=0.5", "path is empty"), ("bad.name=runs/a", "may hold only")],
)
def test_bad_adapter_arguments(argument: str, message: str) -> None:
    with pytest.raises(AdapterError, match=message):
        parse_adapter_spec(argument)


def test_clashing_default_names_are_numbered_but_explicit_ones_fail() -> None:
    specs = parse_adapter_specs(["a/final", "b/final=0.5", "c/final"])
    assert [s.name for s in specs] == ["final", "final_2", "final_3"]
    with pytest.raises(AdapterError, match="Two adapters are named 'x'"):
        parse_adapter_specs(["x=a/final", "x=b/final"])


@pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute")
def test_loading_is_plain_diffusers(tiny_model_dir: Path, adapters: dict[str, Path]) -> None:
    ours = load(tiny_model_dir, [f"{adapters['jazz']}=0.7", f"{adapters['lofi']}=0.3"])
    plain = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    for name in ("jazz", "lofi"):
        plain.load_lora_adapter(str(adapters[name]), prefix=None, weight_name=ADAPTER_WEIGHTS, adapter_name=name)
    plain.set_adapters(["jazz", "lofi"], weights=[0.7, 0.3])
    torch.testing.assert_close(unet_output(ours.unet), unet_output(plain), atol=0, rtol=0)
    base = unet_output(UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet"))
    assert (unet_output(ours.unet) - base).abs().max() > 1e-2  # the mix changes the output


def test_two_adapters_at_one_and_zero_equal_the_first_alone(tiny_model_dir: Path, adapters: dict[str, Path]) -> None:
    alone = load_backbone(str(tiny_model_dir))
    both = load_backbone(str(tiny_model_dir))
    load_adapters(alone, [read_adapter(parse_adapter_spec(str(adapters["jazz"])))], "tiny")
    specs = parse_adapter_specs([f"{adapters['jazz']}=1", f"{adapters['lofi']}=0"])
    load_adapters(both, [read_adapter(s) for s in specs], "tiny")
    kwargs = {"duration": 0.64, "num_inference_steps": 3, "generator": seeded_generators([3, 4])}
    first = generate(alone, ["jazz music", "lofi"], **kwargs)
    kwargs["generator"] = seeded_generators([3, 4])
    mixed = generate(both, ["jazz music", "lofi"], **kwargs)
    assert first.abs().max() > 1e-2
    torch.testing.assert_close(mixed, first, atol=1e-6, rtol=0)


def test_fused_unet_equals_the_adapter_loaded_one(tiny_model_dir: Path, adapters: dict[str, Path]) -> None:
    backbone = load(tiny_model_dir, [f"{adapters['jazz']}=0.7", f"{adapters['lofi']}=0.3"])
    unet = backbone.unet
    expected = unet_output(unet)
    fuse_adapters(backbone, ["jazz", "lofi"])
    assert not any("lora" in name for name in unet.state_dict())
    torch.testing.assert_close(unet_output(unet), expected, atol=1e-5, rtol=0)


def test_adapter_for_another_base_is_refused_by_name(tiny_model_dir: Path, adapters: dict[str, Path]) -> None:
    backbone = load_backbone(str(tiny_model_dir))
    unet = backbone.unet
    good, bad = (read_adapter(parse_adapter_spec(str(adapters[n]))) for n in ("jazz", "other"))
    with pytest.raises(AdapterError) as caught:
        load_adapters(backbone, [good, bad], "my-tiny-base")
    message = str(caught.value)
    assert "Adapter 'other'" in message and str(adapters["other"]) in message
    assert "'my-tiny-base'" in message and "someone/other-audioldm" in message
    assert "48 input features in the adapter, 64 in the base" in message
    assert not getattr(unet, "peft_config", None)  # nothing was loaded, not even the good adapter


def test_damaged_adapter_files_are_named(tmp_path: Path, adapters: dict[str, Path]) -> None:
    import shutil

    with pytest.raises(AdapterError, match="does not exist"):
        read_adapter(parse_adapter_spec(str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="has no pytorch_lora_weights.safetensors"):
        read_adapter(parse_adapter_spec(str(tmp_path / "empty")))
    broken = tmp_path / "broken"
    shutil.copytree(adapters["jazz"], broken)
    (broken / ADAPTER_WEIGHTS).write_bytes(b"\x00" * 7)
    with pytest.raises(AdapterError, match=r"'broken'.*cannot read .* as safetensors"):
        read_adapter(parse_adapter_spec(str(broken)))
    garbled = tmp_path / "garbled"
    shutil.copytree(adapters["jazz"], garbled)
    (garbled / ADAPTER_INFO).write_text("{not json")
    with pytest.raises(AdapterError, match=r"adapter_info.json is not valid JSON"):
        read_adapter(parse_adapter_spec(str(garbled)))
