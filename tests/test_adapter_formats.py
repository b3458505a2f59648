"""Adapter folders per site: a v1 adapter written before sites had formats still loads as plain diffusers + peft
load it, a site in peft's format goes the whole way (export, read, load, mix, fuse), and a folder that does not fit
the backbone is refused by name."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from lightning_modules.adapter_files import (
    ADAPTER_INFO,
    ADAPTER_WEIGHTS,
    DIFFUSERS_FORMAT,
    PEFT_CONFIG,
    PEFT_FORMAT,
    AdapterError,
    parse_adapter_specs,
    read_adapter,
)
from lightning_modules.adapter_sites import AdapterSettings, adapter_parameters, attach_adapters, save_adapters
from lightning_modules.adapters import fuse_adapters, load_adapters
from lightning_modules.audioldm import AudioLDMBackbone
from lightning_modules.backbone import load_backbone

V1_ADAPTER = Path(__file__).parent / "fixtures" / "v1_adapter"
PROMPTS = ["gugak music", "techno music"]


class PeftUNetBackbone(AudioLDMBackbone):
    """AudioLDM whose UNet site is kept in peft's format, as a UNet without ``PeftAdapterMixin`` is."""

    def adapter_format(self, site: str) -> str:
        return PEFT_FORMAT


def peft_unet_backbone(model_dir: Path) -> PeftUNetBackbone:
    base = load_backbone(str(model_dir))
    return PeftUNetBackbone(**{field.name: getattr(base, field.name) for field in dataclasses.fields(base)})


def prediction(backbone: AudioLDMBackbone) -> torch.Tensor:
    """The UNet's prediction for fixed noise, timestep and prompts (through the text encoder)."""
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(backbone.latent_shape(2, 0.64), generator=generator)
    with torch.no_grad():
        return backbone.predict_noise(noisy, torch.tensor([500, 500]), backbone.encode_prompts(PROMPTS))


def test_a_v1_adapter_loads_as_plain_diffusers_and_peft_load_it(tiny_model_dir: Path) -> None:
    """The fixture was exported by the code before adapter sites had formats (no ``format`` or ``pipeline`` in its
    adapter_info.json): both of its sites load, and the result equals plain diffusers + peft loading it."""
    adapter = read_adapter(parse_adapter_specs([str(V1_ADAPTER)])[0])
    assert {name: site.format for name, site in adapter.sites.items()} == {"unet": DIFFUSERS_FORMAT,
                                                                          "text_encoder": PEFT_FORMAT}
    ours = load_backbone(str(tiny_model_dir))
    load_adapters(ours, [adapter], str(tiny_model_dir), allow_other_base=True)

    plain = load_backbone(str(tiny_model_dir))
    plain.unet.load_lora_adapter(str(V1_ADAPTER), prefix=None, weight_name=ADAPTER_WEIGHTS, use_safetensors=True)
    plain.text_encoder = PeftModel.from_pretrained(plain.text_encoder, str(V1_ADAPTER / "text_encoder"))
    base = prediction(load_backbone(str(tiny_model_dir)))
    torch.testing.assert_close(prediction(ours), prediction(plain))
    assert (prediction(ours) - base).abs().max() > 1e-3  # both sites act


def test_a_site_in_peft_format_exports_reloads_mixes_and_fuses(tiny_model_dir: Path, tmp_path: Path) -> None:
    trained = peft_unet_backbone(tiny_model_dir)
    attach_adapters(trained, {"unet": AdapterSettings("attention", rank=2, alpha=4.0)})
    with torch.no_grad():
        for parameter in adapter_parameters(trained):
            parameter.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(3))
    folder = save_adapters(trained, tmp_path / "peft-unet", {"sites": {"unet": {"format": PEFT_FORMAT}}})
    assert not (folder / ADAPTER_WEIGHTS).exists() and (folder / "unet" / PEFT_CONFIG).is_file()
    adapter = read_adapter(parse_adapter_specs([str(folder)])[0])
    assert {name: site.format for name, site in adapter.sites.items()} == {"unet": PEFT_FORMAT}

    loaded = peft_unet_backbone(tiny_model_dir)
    load_adapters(loaded, [adapter], "tiny")
    expected = prediction(trained)
    torch.testing.assert_close(prediction(loaded), expected)

    # Mixing: the same adapter twice at 0.5 each is the adapter at 1.0; at 0.0 the base.
    halves = peft_unet_backbone(tiny_model_dir)
    load_adapters(halves, [read_adapter(s) for s in parse_adapter_specs([f"a={folder}=0.5", f"b={folder}=0.5"])], "t")
    torch.testing.assert_close(prediction(halves), expected, atol=1e-5, rtol=1e-4)
    off = peft_unet_backbone(tiny_model_dir)
    load_adapters(off, [read_adapter(parse_adapter_specs([f"{folder}=0"])[0])], "t")
    torch.testing.assert_close(prediction(off), prediction(peft_unet_backbone(tiny_model_dir)))

    fuse_adapters(halves, ["a", "b"])
    assert not any(isinstance(m, LoraLayer) for m in halves.unet.modules())
    assert not getattr(halves.unet, "peft_config", None)
    torch.testing.assert_close(prediction(halves), expected, atol=1e-5, rtol=1e-4)
    fused = tmp_path / "fused-unet"
    halves.unet.save_pretrained(fused)
    reloaded = dataclasses.replace(halves, unet=UNet2DConditionModel.from_pretrained(fused))
    torch.testing.assert_close(prediction(reloaded), expected, atol=1e-5, rtol=1e-4)

    # The backbone that keeps its UNet in diffusers' format refuses the folder, naming it.
    with pytest.raises(AdapterError, match=r"its unet site is stored in peft's format .*peft-unet/unet.*audioldm "
                                           r"backbone keeps that site in diffusers's format"):
        load_adapters(load_backbone(str(tiny_model_dir)), [adapter], "tiny")


def test_a_folder_that_does_not_fit_the_backbone_is_refused_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    shutil.copytree(V1_ADAPTER, extra)
    shutil.copytree(extra / "text_encoder", extra / "vocoder")
    with pytest.raises(AdapterError, match=r"extra/vocoder adapts a site 'vocoder' that the audioldm backbone does "
                                           r"not have \(its sites: \['text_encoder', 'unet'\]\)"):
        load_adapters(load_backbone(str(tiny_model_dir)), [read_adapter(parse_adapter_specs([str(extra)])[0])], "t")

    partial = tmp_path / "partial"
    shutil.copytree(V1_ADAPTER, partial)
    shutil.rmtree(partial / "text_encoder")
    with pytest.raises(AdapterError, match=r"records the site\(s\) \['text_encoder'\], but the folder holds only "
                                           r"\['unet'\]"):
        read_adapter(parse_adapter_specs([str(partial)])[0])
    info = json.loads((partial / ADAPTER_INFO).read_text())
    del info["sites"]  # an adapter from before sites were recorded: the UNet file alone is the whole adapter
    (partial / ADAPTER_INFO).write_text(json.dumps(info))
    assert read_adapter(parse_adapter_specs([str(partial)])[0]).site_names == ["unet"]
