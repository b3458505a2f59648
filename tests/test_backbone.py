"""The backbone seam (AudioLDM v1 behind it) and the adapter-site seam, against plain diffusers and transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import AudioLDMPipeline

from lightning_modules.adapter_sites import (
    AdapterSettings,
    adapter_parameters,
    adapters_disabled,
    attach_adapters,
    site_layers,
    trainable_counts,
)
from lightning_modules.audioldm import AudioLDMBackbone
from lightning_modules.backbone import (
    ModelLoadError,
    concat_conditioning,
    conditioning_rows,
    load_backbone,
    select_conditioning,
)
from lightning_modules.lora import LoraConfigError

PROMPTS = ["boom bap music", "gugak music"]


@pytest.fixture()
def backbone(tiny_model_dir: Path) -> AudioLDMBackbone:
    loaded = load_backbone(str(tiny_model_dir))
    assert isinstance(loaded, AudioLDMBackbone)
    return loaded


def test_conditioning_is_the_pipelines_class_labels(backbone: AudioLDMBackbone, tiny_model_dir: Path) -> None:
    pipe = AudioLDMPipeline.from_pretrained(tiny_model_dir)
    # The pipeline's guidance batch: the negative ("") rows, then the prompts, as one class_labels tensor.
    reference = pipe._encode_prompt(PROMPTS, "cpu", 1, True, None)
    ours = concat_conditioning(backbone.unconditional(2), backbone.encode_prompts(PROMPTS))
    assert ours.keys() == {"class_labels"}
    torch.testing.assert_close(ours["class_labels"], reference, atol=1e-6, rtol=0)


def test_conditioning_helpers_select_and_slice_rows(backbone: AudioLDMBackbone) -> None:
    cond = backbone.encode_prompts(PROMPTS)
    empty = backbone.unconditional()
    mixed = select_conditioning(cond, torch.tensor([True, False]), empty)
    torch.testing.assert_close(mixed["class_labels"][0], empty["class_labels"][0])
    torch.testing.assert_close(mixed["class_labels"][1], cond["class_labels"][1])
    torch.testing.assert_close(conditioning_rows(cond, torch.tensor([1]))["class_labels"], cond["class_labels"][1:])
    with pytest.raises(ValueError, match="1 negative prompts for 2 prompts"):
        backbone.unconditional(2, ["noise"])


def test_geometry_and_decoding(backbone: AudioLDMBackbone) -> None:
    assert backbone.vae_scale_factor == 4 and backbone.sampling_rate == 16000
    assert backbone.mel_frames(1.28) == 128
    assert backbone.latent_shape(3, 1.28) == (3, 8, 32, 16)
    latents = torch.randn(backbone.latent_shape(1, 0.64))
    assert backbone.decode(latents, 10240).shape == (1, 10240)
    with pytest.raises(ValueError, match="cannot be produced exactly.*Use 4 s or 4.04 s"):
        backbone.check_duration(4.01)
    mel = torch.randn(2, 64, 64) - 5.0
    expected = backbone.vae.encode(mel.unsqueeze(1)).latent_dist.sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(backbone.encode_mel(mel, torch.Generator().manual_seed(0)),
                               expected * backbone.scaling_factor)


def test_cache_fields_round_trip(backbone: AudioLDMBackbone) -> None:
    cond = backbone.encode_prompts(PROMPTS)
    stored = backbone.conditioning_for_cache(cond)
    assert stored.keys() == {"text_embeds"}
    torch.testing.assert_close(backbone.conditioning_from_cache(stored), cond)


def test_save_pretrained_is_a_directory_that_loads_again(backbone: AudioLDMBackbone, tmp_path: Path) -> None:
    backbone.save_pretrained(tmp_path / "copy")
    index = json.loads((tmp_path / "copy" / "model_index.json").read_text())
    assert index["_class_name"] == "AudioLDMPipeline" and index["unet"] == ["diffusers", "UNet2DConditionModel"]
    again = load_backbone(str(tmp_path / "copy"))
    assert again.identity() == backbone.identity()
    AudioLDMPipeline.from_pretrained(tmp_path / "copy")  # plain diffusers loads it too


def test_the_pipeline_class_picks_the_backbone(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    index = json.loads((other / "model_index.json").read_text())
    (other / "model_index.json").write_text(json.dumps({**index, "_class_name": "MusicLDMPipeline"}))
    with pytest.raises(ModelLoadError, match=r"a MusicLDMPipeline \(its model_index.json\), which audioldm-lora does not "
                                             r"support; supported pipelines: \['AudioLDM2Pipeline', 'AudioLDMPipeline'\]"):
        load_backbone(str(other))
    (other / "model_index.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match="model_index.json is not valid JSON"):
        load_backbone(str(other))
    with pytest.raises(ModelLoadError, match="is a file"):
        load_backbone(str(other / "model_index.json"))


def test_identity_changes_with_the_encoders(backbone: AudioLDMBackbone) -> None:
    before = backbone.identity()
    with torch.no_grad():
        next(backbone.text_encoder.parameters()).add_(1.0)
    after = backbone.identity()
    assert after["text_id"] != before["text_id"] and after["audio_id"] == before["audio_id"]


def test_sites_attach_report_and_switch_off(backbone: AudioLDMBackbone) -> None:
    configs = attach_adapters(backbone, {"unet": AdapterSettings("paper", rank=2, alpha=4.0)})
    assert set(configs) == {"unet"} and set(configs["unet"].target_modules) == {"to_q", "to_v"}
    counts = trainable_counts(backbone)
    assert counts["unet"] == sum(p.numel() for p in adapter_parameters(backbone)) > 0
    names = [name for name, _ in site_layers(backbone)]
    assert names and all(name.endswith(("to_q", "to_v")) for name in names)
    with torch.no_grad():
        for parameter in adapter_parameters(backbone):
            parameter.normal_(0.0, 0.3)
    x, t = torch.randn(1, 8, 8, 16), torch.tensor([10])
    cond = backbone.encode_prompts(PROMPTS[:1])
    adapted = backbone.predict_noise(x, t, cond)
    with adapters_disabled(backbone):
        base = backbone.predict_noise(x, t, cond)
    assert (adapted - base).abs().max() > 1e-4
    torch.testing.assert_close(backbone.predict_noise(x, t, cond), adapted)  # back on after the block


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ({}, "No adapter site is configured"),
        ({"vocoder": AdapterSettings()}, r"no adapter site 'vocoder'; its sites are \['text_encoder', 'unet'\]"),
        ({"unet": AdapterSettings(rank=0)}, "adapters.unet: LoRA rank must be a positive integer"),
        ({"unet": AdapterSettings(targets=["to_qq"])}, r"adapters.unet.targets: .*match no module of the unet"),
        ({"text_encoder": AdapterSettings(targets="Wk")},
         r"model.init_args.adapters.text_encoder.targets: Unknown LoRA target preset 'Wk'.*\['Wq', 'WqWv', 'Wv', 'all_linear'\]"),
        ({"text_encoder": AdapterSettings(targets=["attention.self.qry"])},
         r"adapters.text_encoder.targets: LoRA target module\(s\) \['attention.self.qry'\] match no module of the "
         r"text_encoder. Linear layers it has: .*'query'.*'value'"),
    ],
)
def test_bad_site_settings_are_named(backbone: AudioLDMBackbone, configs: dict, message: str) -> None:
    with pytest.raises(LoraConfigError, match=message):
        attach_adapters(backbone, configs)


@pytest.mark.parametrize(("preset", "suffixes"), [("Wq", {"query"}), ("Wv", {"value"}), ("WqWv", {"query", "value"})])
def test_text_encoder_presets_adapt_the_self_attention_of_every_layer(
    backbone: AudioLDMBackbone, preset: str, suffixes: set[str]
) -> None:
    attach_adapters(backbone, {"text_encoder": AdapterSettings(preset, rank=2, alpha=8.0)})
    names = [name for name, _ in site_layers(backbone)]
    layers = backbone.text_encoder.config.num_hidden_layers
    assert sorted(names) == sorted(
        f"text_encoder/text_model.encoder.layer.{i}.attention.self.{s}" for i in range(layers) for s in suffixes)
    assert set(trainable_counts(backbone)) == {"text_encoder"}
    assert all(not p.requires_grad for p in backbone.unet.parameters())


def test_the_adapters_setting_is_checked_site_by_site() -> None:
    from lightning_modules.adapter_sites import site_settings

    with pytest.raises(LoraConfigError, match=r"No adapter site is switched on \(model.init_args.adapters has unet: "
                                              r"targets none, text_encoder: targets None\)"):
        site_settings({"unet": {"targets": "none"}, "text_encoder": {"targets": None}})
    with pytest.raises(LoraConfigError, match=r"adapters.unet: unknown setting\(s\) \['rnak'\]; settings are"):
        site_settings({"unet": {"rnak": 4}})
    with pytest.raises(LoraConfigError, match=r"adapters.text_encoder.module_dropout needs the site switched on"):
        site_settings({"unet": {}, "text_encoder": {"targets": None, "module_dropout": True}})
    assert site_settings(None) == {"unet": AdapterSettings("paper", rank=2, alpha=4.0)}
    assert list(site_settings({"unet": {"targets": "none"}, "text_encoder": {"targets": "Wq"}})) == ["text_encoder"]


def test_text_embeddings_are_unit_vectors(backbone: AudioLDMBackbone) -> None:
    embeds = backbone.encode_prompts(PROMPTS)["class_labels"]
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(2))
    tokens = backbone.tokenizer(PROMPTS, padding="max_length", max_length=512, return_tensors="pt")
    torch.testing.assert_close(embeds, F.normalize(backbone.text_encoder(**tokens).text_embeds, dim=-1),
                               atol=1e-6, rtol=0)
