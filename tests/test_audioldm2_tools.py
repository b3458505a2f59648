"""The tools on AudioLDM2 adapters: `generate` (weighted mixes), `merge` (a folder AudioLDM2Pipeline loads and runs),
`model-card` (its usage code runs with plain diffusers + peft), sweeps over the T5 site, and an adapter given to the
other backbone refused with both named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import soundfile as sf
import torch

from audioldm_lora.commands import generate as generate_command
from audioldm_lora.commands import merge as merge_command
from audioldm_lora.commands import model_card as model_card_command
from lightning_modules.adapter_files import parse_adapter_spec, read_adapter
from lightning_modules.adapters import load_adapters
from lightning_modules.audioldm2 import GPT2_STREAM, T5_MASK, T5_STREAM
from lightning_modules.backbone import load_backbone
from tests.adapter_helpers import sites_adapter

FAST = ["--steps", "2", "--duration", "0.64", "--progress", "false", "--seed", "5"]
PROMPTS = ["gugak music", "a slow techno loop with bright synth and warm bass"]


@pytest.fixture(scope="module")
def adapter(tiny_audioldm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AudioLDM2 adapter on the UNet's T5 cross-attention and the T5 encoder, recording its base."""
    return sites_adapter(tiny_audioldm2_dir, tmp_path_factory.mktemp("a2-adapters") / "gugak", seed=4,
                         targets={"unet": "cross_t5", "text_encoder_2": "WqWv"})


def with_adapter(model_dir: Path, adapter: Path):
    backbone = load_backbone(str(model_dir))
    load_adapters(backbone, [read_adapter(parse_adapter_spec(str(adapter)))], str(model_dir))
    return backbone


def unet_prediction(unet, cond: dict[str, torch.Tensor]) -> torch.Tensor:
    batch = cond[GPT2_STREAM].shape[0]
    noisy = torch.randn(batch, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet(noisy, torch.tensor([400] * batch), encoder_hidden_states=cond[GPT2_STREAM],
                    encoder_hidden_states_1=cond[T5_STREAM], encoder_attention_mask_1=cond[T5_MASK]).sample


def test_generate_reads_the_base_from_the_adapter_and_mixes_weights(adapter: Path, tmp_path: Path) -> None:
    """Base from adapter_info.json (no --base); two halves of the adapter give the adapter at weight 1."""
    def clips(out: Path, *adapters: str) -> torch.Tensor:
        argv = [arg for a in adapters for arg in ("--adapter", a)] + ["--prompt", PROMPTS[0], "--out", str(out)]
        assert generate_command.main([*argv, *FAST]) == 0
        return torch.stack([torch.from_numpy(sf.read(str(w), dtype="float32")[0]) for w in sorted(out.glob("*.wav"))])

    whole = clips(tmp_path / "whole", str(adapter))
    halves = clips(tmp_path / "halves", f"a={adapter}=0.5", f"b={adapter}=0.5")
    assert whole.shape == (1, 10240) and whole.abs().max() > 1e-3
    assert (halves - whole).abs().max() < 5e-5  # 16-bit PCM quantisation on top of the sampler's < 1e-5
    sidecar = json.loads(next((tmp_path / "whole").glob("*.json")).read_text())
    assert sidecar["base_model"] == read_adapter(parse_adapter_spec(str(adapter))).info["base_model"]


def test_merge_writes_a_folder_audioldm2_pipeline_loads_and_runs(adapter: Path, tiny_audioldm2_dir: Path,
                                                                  tmp_path: Path) -> None:
    from diffusers import AudioLDM2Pipeline

    out = tmp_path / "merged"
    assert merge_command.main(["--adapter", str(adapter), "--out", str(out), "--model-card", "--progress",
                               "false"]) == 0
    pipe = AudioLDM2Pipeline.from_pretrained(out)
    assert type(pipe.language_model).__name__ == "GPT2LMHeadModel"  # the class the pipeline generates with
    assert not any("lora" in name for name, _ in pipe.unet.named_parameters())
    ours = with_adapter(tiny_audioldm2_dir, adapter)
    with torch.no_grad():
        cond = ours.encode_prompts(PROMPTS[:1])
        t5, _, gpt2 = pipe.encode_prompt(PROMPTS[:1], "cpu", 1, False)
    torch.testing.assert_close(t5, cond[T5_STREAM], atol=1e-5, rtol=0)  # the T5 adapter is fused
    torch.testing.assert_close(gpt2, cond[GPT2_STREAM], atol=1e-5, rtol=0)
    torch.testing.assert_close(unet_prediction(pipe.unet, cond), unet_prediction(ours.unet, cond), atol=1e-5,
                               rtol=1e-4)
    audio = pipe(PROMPTS[0], num_inference_steps=2, audio_length_in_s=0.64,
                 generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, 10240)
    assert "AudioLDM2Pipeline.from_pretrained" in (out / "README.md").read_text()


def test_the_model_cards_usage_code_loads_the_adapter_with_plain_diffusers_and_peft(
    adapter: Path, tiny_audioldm2_dir: Path, tmp_path: Path
) -> None:
    assert model_card_command.main([str(adapter)]) == 0
    card = (adapter / "README.md").read_text()
    code = re.search(r"## Usage\n\n```python\n(.*?)```", card, re.S).group(1)
    code = code.replace('"path/to/the/base"', f'"{tiny_audioldm2_dir}"').replace('"path/to/this/folder"',
                                                                                  f'"{adapter}"')
    code = code.replace("num_inference_steps=200", "num_inference_steps=2").replace("10.24", "0.64")
    assert "AudioLDM2Pipeline" in code and "inject_adapter_in_model" in code and "lightning_modules" not in code
    namespace: dict = {}
    exec(compile(code, "model card usage", "exec"), namespace)  # noqa: S102 - the card's code itself
    ours = with_adapter(tiny_audioldm2_dir, adapter)
    with torch.no_grad():
        cond = ours.encode_prompts(PROMPTS)
    torch.testing.assert_close(unet_prediction(namespace["pipe"].unet, cond), unet_prediction(ours.unet, cond),
                               atol=1e-5, rtol=1e-4)
    assert namespace["audio"].shape == (10240,)


def test_an_adapter_for_the_other_backbone_is_refused_naming_both(adapter: Path, tiny_model_dir: Path,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clips"
    argv = ["--base", str(tiny_model_dir), "--adapter", str(adapter), "--prompt", "gugak music", "--out", str(out)]
    assert generate_command.main([*argv, *FAST]) == 2
    err = capsys.readouterr().err
    assert "was trained for the audioldm2 backbone (AudioLDM2Pipeline" in err
    assert "but the base model is audioldm (AudioLDMPipeline)" in err and "Traceback" not in err
    assert not out.exists()


def test_a_sweep_over_the_t5_site_is_accepted_by_the_audioldm2_recipe() -> None:
    from audioldm_lora.commands.sweep import check_overrides
    from audioldm_lora.sweep.spec import SweepPoint, short_name

    point = SweepPoint({"model.init_args.adapters.text_encoder_2.rank": 4,
                        "model.init_args.adapters.unet.targets": "cross_t5"})
    check_overrides("configs/tiny_audioldm2.yaml", point, [])  # raises when the recipe rejects a parameter
    assert short_name("model.init_args.adapters.text_encoder_2.rank") == "te2_rank"
