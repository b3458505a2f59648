"""The AudioLDM2 backbone against diffusers' AudioLDM2Pipeline, the reference it must match: the conditioning chain,
the sampler, the presets by stream, and adapter files that plain diffusers + peft load."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import AudioLDM2Pipeline

from lightning_modules.adapter_files import PEFT_CONFIG, PEFT_FORMAT, PEFT_WEIGHTS, parse_adapter_spec, read_adapter
from lightning_modules.adapters import load_adapters
from lightning_modules.audioldm2 import GPT2_STREAM, T5_MASK, T5_STREAM, AudioLDM2Backbone
from lightning_modules.backbone import ModelLoadError, load_backbone
from lightning_modules.sampler import generate
from tests.adapter_helpers import sites_adapter

PROMPTS = ["gugak music", "a slow techno loop with bright synth and warm bass"]  # T5 lengths 9 and 39


@pytest.fixture(scope="module")
def backbone(tiny_audioldm2_dir: Path) -> AudioLDM2Backbone:
    loaded = load_backbone(str(tiny_audioldm2_dir))
    assert isinstance(loaded, AudioLDM2Backbone)
    return loaded


@pytest.fixture(scope="module")
def pipeline(tiny_audioldm2_dir: Path) -> AudioLDM2Pipeline:
    pipe = AudioLDM2Pipeline.from_pretrained(tiny_audioldm2_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def pipeline_chain(pipe: AudioLDM2Pipeline, prompt: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pipeline's (T5 states, T5 mask, GPT2 states) of one prompt encoded alone."""
    with torch.no_grad():
        return pipe.encode_prompt([prompt], "cpu", 1, False)


def test_each_captions_conditioning_is_the_pipelines_chain_for_it_alone(backbone, pipeline) -> None:
    with torch.no_grad():
        ours = backbone.encode_prompts(PROMPTS)
        empty = backbone.unconditional(1)
    assert ours[GPT2_STREAM].shape == (2, 8, 24) and ours[T5_STREAM].shape == (2, 39, 16)
    for row, prompt in enumerate([*PROMPTS, ""]):
        t5, mask, gpt2 = pipeline_chain(pipeline, prompt)
        cond = {key: value[row % 2 if prompt else 0] for key, value in (empty if not prompt else ours).items()}
        length = int(mask.sum())
        assert cond[T5_MASK].tolist() == [1] * length + [0] * (cond[T5_MASK].numel() - length)
        torch.testing.assert_close(cond[T5_STREAM][:length], t5[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(cond[GPT2_STREAM], gpt2[0], atol=1e-5, rtol=0)  # padding changes nothing
    # The pipeline's own batching is padding-dependent (docs/model-facts.md, 'AudioLDM2 padding'): the short prompt
    # batched with the long one gets other GPT2 states than alone.
    with torch.no_grad():
        batched = pipeline.encode_prompt(PROMPTS, "cpu", 1, False)[2][0]
    assert (batched - pipeline_chain(pipeline, PROMPTS[0])[2][0]).abs().max() > 1e-2


@pytest.mark.parametrize(("guidance", "negative"), [(1.0, None), (3.0, "noise")])
def test_sampler_equals_audioldm2_pipeline(backbone, pipeline, guidance: float, negative: str | None) -> None:
    """Same seed, steps, guidance and duration; the pipeline gets each caption's chain computed alone (with the
    unconditional side padded to the prompts' T5 length, which its masked attention ignores)."""
    chains = [pipeline_chain(pipeline, prompt) for prompt in PROMPTS]
    length = max(chain[0].shape[1] for chain in chains)

    def stacked(chain_list: list) -> dict[str, torch.Tensor]:
        return {"prompt_embeds": torch.cat([F.pad(t5, (0, 0, 0, length - t5.shape[1])) for t5, _, _ in chain_list]),
                "attention_mask": torch.cat([F.pad(mask, (0, length - mask.shape[1])) for _, mask, _ in chain_list]),
                "generated_prompt_embeds": torch.cat([gpt2 for _, _, gpt2 in chain_list])}

    embeds = stacked(chains)
    if guidance > 1.0:
        uncond = stacked([pipeline_chain(pipeline, negative or "")] * len(PROMPTS))
        embeds.update({f"negative_{key}": value for key, value in uncond.items()})
    reference = pipeline(num_inference_steps=5, audio_length_in_s=0.64, guidance_scale=guidance,
                         generator=torch.Generator().manual_seed(7), **embeds).audios
    ours = generate(backbone, PROMPTS, 0.64, num_inference_steps=5, guidance_scale=guidance, negative_prompt=negative,
                    generator=torch.Generator().manual_seed(7))
    reference = torch.as_tensor(reference)
    assert ours.shape == reference.shape == (2, 10240)
    assert reference.abs().max() > 1e-3  # audible output, so the tolerance below means something
    assert (ours - reference).abs().max() < 1e-5
    other_seed = generate(backbone, PROMPTS, 0.64, num_inference_steps=5, guidance_scale=guidance,
                          negative_prompt=negative, generator=torch.Generator().manual_seed(8))
    assert (other_seed - reference).abs().max() > 1e-4


def test_presets_pick_attention_by_the_stream_it_reads(backbone) -> None:
    presets = backbone.lora_presets("unet")
    modules = dict(backbone.unet.named_modules())
    widths = {preset: {modules[name.rpartition(".to_")[0]].to_k.in_features for name in presets[preset]}
              for preset in ("cross_gpt2", "cross_t5")}
    assert widths == {"cross_gpt2": {24}, "cross_t5": {16}}  # GPT2 stream 24 wide, T5 stream 16 wide
    assert set(presets["cross"]) == set(presets["cross_gpt2"]) | set(presets["cross_t5"])
    assert not set(presets["self"]) & set(presets["cross"]) and all(name in modules for name in presets["self"])
    assert backbone.lora_presets("text_encoder_2")["WqWv"] == ("SelfAttention.q", "SelfAttention.v")


def test_a_long_caption_is_cut_to_t5s_limit_with_one_warning(backbone, caplog) -> None:
    long_caption = " ".join(["bright synth"] * 100)
    with caplog.at_level(logging.WARNING, logger="lightning_modules.audioldm2"), torch.no_grad():
        cond = backbone.encode_prompts([long_caption])
        backbone.encode_prompts([long_caption])
    assert cond[T5_STREAM].shape[1] == backbone.tokenizer_2.model_max_length == 128
    assert len([r for r in caplog.records if "T5 tokens long" in r.getMessage()]) == 1


def test_a_directory_missing_a_component_names_it_and_the_pipeline(tiny_audioldm2_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_audioldm2_dir, broken)
    shutil.rmtree(broken / "language_model")
    with pytest.raises(ModelLoadError, match=r"lacks the component folder\(s\) language_model\. A AudioLDM2Pipeline"):
        load_backbone(str(broken))


def test_adapter_files_load_with_plain_diffusers_and_peft(backbone, tiny_audioldm2_dir: Path, tmp_path: Path) -> None:
    """Both sites in peft's format, and the README's snippet (no project import) reproduces the project's UNet
    prediction with the adapter loaded."""
    adapter = sites_adapter(tiny_audioldm2_dir, tmp_path / "adapter", seed=3,
                            targets={"unet": "cross_t5", "text_encoder_2": "WqWv"})
    info = json.loads((adapter / "adapter_info.json").read_text())
    assert (info["backbone"], info["pipeline"]) == ("audioldm2", "AudioLDM2Pipeline")
    assert {site: record["format"] for site, record in info["sites"].items()} == {
        "unet": PEFT_FORMAT, "text_encoder_2": PEFT_FORMAT}
    for site in ("unet", "text_encoder_2"):
        assert (adapter / site / PEFT_CONFIG).is_file() and (adapter / site / PEFT_WEIGHTS).is_file()

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = re.search(r"<!-- audioldm2-snippet -->\n```python\n(.*?)```", readme, re.S).group(1)
    code = re.sub(r"^base, adapter = .*$", f'base, adapter = "{tiny_audioldm2_dir}", "{adapter}"', snippet, flags=re.M)
    code = code.replace("num_inference_steps=200", "num_inference_steps=2").replace("10.24", "0.64")
    assert code != snippet and "lightning_modules" not in code
    namespace: dict = {}
    exec(compile(code, "README snippet", "exec"), namespace)  # noqa: S102 - the documented code itself
    pipe = namespace["pipe"]
    assert namespace["audio"].shape == (int(0.64 * 16000),)

    ours = load_backbone(str(tiny_audioldm2_dir))
    load_adapters(ours, [read_adapter(parse_adapter_spec(str(adapter)))], str(tiny_audioldm2_dir))
    noisy = torch.randn(ours.latent_shape(2, 0.64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cond = ours.encode_prompts(PROMPTS)
        expected = ours.predict_noise(noisy, torch.tensor([400, 400]), cond)
        base = backbone.predict_noise(noisy, torch.tensor([400, 400]), backbone.encode_prompts(PROMPTS))
        t5 = [pipe.encode_prompt([prompt], "cpu", 1, False) for prompt in PROMPTS]
        torch.testing.assert_close(t5[0][0][0], cond[T5_STREAM][0, :9], atol=1e-5, rtol=0)  # T5 adapter loaded
        plain = pipe.unet(noisy, torch.tensor([400, 400]), encoder_hidden_states=cond[GPT2_STREAM],
                          encoder_hidden_states_1=cond[T5_STREAM], encoder_attention_mask_1=cond[T5_MASK]).sample
    assert (expected - base).abs().max() > 1e-3  # the adapter acts
    torch.testing.assert_close(plain, expected, atol=1e-5, rtol=1e-4)


def test_a_folder_declaring_gpt2model_loads_and_conditions_the_same(backbone, tiny_audioldm2_dir: Path,
                                                                     tmp_path: Path) -> None:
    """The language model as converted checkpoints declare it (GPT2Model, which AudioLDM2Pipeline cannot generate
    with under transformers 5): the backbone holds the base model either way, and conditions identically."""
    import shutil

    from transformers import GPT2Model

    folder = tmp_path / "gpt2model"
    shutil.copytree(tiny_audioldm2_dir, folder)
    shutil.rmtree(folder / "language_model")
    GPT2Model.from_pretrained(tiny_audioldm2_dir / "language_model").save_pretrained(folder / "language_model")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "language_model": ["transformers", "GPT2Model"]}))
    other = load_backbone(str(folder))
    with torch.no_grad():
        torch.testing.assert_close(other.encode_prompts(PROMPTS), backbone.encode_prompts(PROMPTS), atol=0, rtol=0)
