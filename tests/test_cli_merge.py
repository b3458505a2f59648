"""``audioldm-lora merge`` on the tiny model: the merged folder loads in plain diffusers and sounds the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audioldm_lora.commands import merge as merge_command
from lightning_modules.lora import ADAPTER_WEIGHTS
from tests.adapter_helpers import make_adapters

SETTINGS = {"num_inference_steps": 4, "audio_length_in_s": 0.64, "guidance_scale": 2.5}
PROMPTS = ["jazz music", "lofi beat"]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_adapters(tiny_model_dir, tmp_path_factory.mktemp("adapters"))


def pipeline_audio(pipe) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    return pipe(PROMPTS, generator=torch.Generator().manual_seed(3), output_type="pt", **SETTINGS).audios


@pytest.mark.filterwarnings("ignore:Already found a `peft_config` attribute")
def test_merged_folder_loads_in_plain_diffusers_and_equals_the_adapters(
    tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path
) -> None:
    from diffusers import AudioLDMPipeline
    from safetensors.torch import load_file

    out = tmp_path / "merged"
    argv = ["--base", str(tiny_model_dir), "--adapter", f"{adapters['jazz']}=0.7", "--adapter",
            f"lofi={adapters['lofi']}=0.3", "--out", str(out), "--model-card"]
    assert merge_command.main(argv) == 0
    assert not any("lora" in key for key in load_file(out / "unet" / "diffusion_pytorch_model.safetensors"))
    merged = pipeline_audio(AudioLDMPipeline.from_pretrained(out))

    pipe = AudioLDMPipeline.from_pretrained(tiny_model_dir)
    for name in ("jazz", "lofi"):
        pipe.unet.load_lora_adapter(str(adapters[name]), prefix=None, weight_name=ADAPTER_WEIGHTS, adapter_name=name)
    pipe.unet.set_adapters(["jazz", "lofi"], weights=[0.7, 0.3])
    with_adapters = pipeline_audio(pipe)
    pipe.unet.set_adapters(["jazz", "lofi"], weights=[0.0, 0.0])
    base = pipeline_audio(pipe)
    assert (with_adapters - base).abs().max() > 1e-2  # the merge matters...
    assert (merged - with_adapters).abs().max() < 1e-5  # ...and equals the adapters applied on the fly

    info = json.loads((out / "merge_info.json").read_text())
    assert info["base_model"] == str(tiny_model_dir)
    assert [(a["name"], a["weight"], a["info"]["genres"]) for a in info["adapters"]] == [
        ("jazz", 0.7, ["jazz"]), ("lofi", 0.3, ["lofi"])]
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers\n")
    assert "| jazz | 0.7 | 2 | 4.0 | jazz |" in card and "| lofi | 0.3 | 2 | 4.0 | lofi |" in card
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]  # no staging folder left


def test_merge_refuses_an_adapter_for_another_base_and_writes_nothing(
    tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--base", str(tiny_model_dir), "--adapter", str(adapters["jazz"]), "--adapter", str(adapters["other"]),
            "--out", str(tmp_path / "merged")]
    assert merge_command.main(argv) == 2
    error = capsys.readouterr().err
    assert "audioldm-lora merge: error: Adapter 'other'" in error and "does not fit the base model" in error
    assert list(tmp_path.iterdir()) == []


def test_merge_needs_an_adapter_and_a_free_out(tiny_model_dir: Path, adapters: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    assert merge_command.main(["--base", str(tiny_model_dir), "--out", str(tmp_path / "m")]) == 2
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep me")
    argv = ["--adapter", str(adapters["jazz"]), "--out", str(tmp_path / "taken")]  # base from adapter_info.json
    assert merge_command.main(argv) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (tmp_path / "taken" / "file").read_text() == "keep me"
