"""An adapter knows its base: the fingerprint it records matches the same base in any dtype, catches another base
with the same shapes, and the recorded base is found from another folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audioldm_demo.tiny import build_tiny_audioldm
from audioldm_lora.commands import generate as generate_command
from lightning_modules import AudioLDMLoRA
from lightning_modules.adapter_files import ADAPTER_INFO, AdapterError, parse_adapter_spec, read_adapter
from lightning_modules.adapters import load_adapters
from lightning_modules.backbone import load_backbone
from lightning_modules.base_identity import base_fingerprint, base_reference
from tests.adapter_helpers import site_adapter

FAST = ["--steps", "2", "--duration", "0.64", "--progress", "false", "--prompt", "jazz music"]


@pytest.fixture(scope="module")
def other_tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny AudioLDM's architecture with other weights (seed 1): every adapter shape fits it."""
    return build_tiny_audioldm(tmp_path_factory.mktemp("other") / "tiny-audioldm", seed=1)


@pytest.fixture(scope="module")
def trained_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter whose adapter_info.json is what training writes (AudioLDMLoRA.adapter_info), base given relative."""
    root = tmp_path_factory.mktemp("trained")
    module = AudioLDMLoRA(pretrained_model=str(tiny_model_dir), adapters={"unet": {"targets": "attention"}},
                          frozen_dtype="bfloat16", sample_duration=0.64)
    return module.save_adapter(root / "adapter", step=3)


def test_the_fingerprint_ignores_dtype_and_adapters_and_sees_other_weights(tiny_model_dir: Path,
                                                                         other_tiny_base: Path,
                                                                         trained_adapter: Path) -> None:
    info = json.loads((trained_adapter / ADAPTER_INFO).read_text())
    plain = base_fingerprint(load_backbone(str(tiny_model_dir)).adapter_sites())
    assert info["base_fingerprint"] == plain  # recorded in training (bf16, LoRA attached) = a tool's plain float32
    assert info["base_model_path"] == str(tiny_model_dir.resolve())
    assert base_fingerprint(load_backbone(str(other_tiny_base)).adapter_sites())["value"] != plain["value"]


def test_an_adapter_on_another_base_with_the_same_shapes_is_refused(tiny_model_dir: Path, other_tiny_base: Path,
                                                                   trained_adapter: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    adapter = read_adapter(parse_adapter_spec(str(trained_adapter)))
    backbone = load_backbone(str(other_tiny_base))
    with pytest.raises(AdapterError, match="was trained on another base.*--allow-other-base"):
        load_adapters(backbone, [adapter], str(other_tiny_base))
    assert not getattr(backbone.unet, "peft_config", None)  # nothing was loaded
    code = generate_command.main(["--base", str(other_tiny_base), "--adapter", str(trained_adapter),
                                  "--out", str(tmp_path / "refused"), *FAST])
    assert code == 2 and "was trained on another base" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    with pytest.warns(UserWarning, match="Applied anyway"):
        code = generate_command.main(["--base", str(other_tiny_base), "--adapter", str(trained_adapter),
                                      "--allow-other-base", "--out", str(tmp_path / "allowed"), *FAST])
    assert code == 0 and len(list((tmp_path / "allowed").glob("*.wav"))) == 1


def test_a_relative_base_is_found_from_another_folder(tiny_model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Trained with `pretrained_model: tiny-audioldm` in the model's parent folder, run from elsewhere."""
    monkeypatch.chdir(tiny_model_dir.parent)
    adapter = site_adapter(Path("tiny-audioldm"), tmp_path / "adapter", seed=3, text_encoder_targets=None)
    info = json.loads((adapter / ADAPTER_INFO).read_text())
    reference = base_reference("tiny-audioldm", None, base_fingerprint(load_backbone("tiny-audioldm").adapter_sites()))
    (adapter / ADAPTER_INFO).write_text(json.dumps({**info, **reference}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert generate_command.main(["--adapter", str(adapter), "--out", "clips", *FAST]) == 0
    sidecar = json.loads(next((elsewhere / "clips").glob("*.json")).read_text())
    assert sidecar["base_model"] == str(tiny_model_dir.resolve())
    # Where the recorded folder is gone too, the message says where the value came from and how to override it.
    (adapter / ADAPTER_INFO).write_text(json.dumps({**info, **reference, "base_model_path": str(tmp_path / "gone")}))
    assert generate_command.main(["--adapter", str(adapter), "--out", "more", *FAST]) == 2
    err = capsys.readouterr().err
    assert "'tiny-audioldm' recorded in" in err and "adapter_info.json" in err and "pass --base" in err
    shutil.rmtree(elsewhere)
