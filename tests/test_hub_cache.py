"""A hub id loads through the same path as a local folder: from the Hugging Face cache, offline, quietly."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from lightning_modules.backbone import load_backbone

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache_with(model_dir: Path, repo_id: str, cache: Path) -> Path:
    """``cache`` laid out as huggingface_hub's cache holding ``model_dir`` as ``repo_id`` at :data:`COMMIT`: what a
    user's machine holds after one download of the model."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def test_a_hub_id_loads_from_the_cache_offline_without_warnings(tiny_model_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache = hub_cache_with(tiny_model_dir, "someone/tiny-audioldm", tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        by_id = load_backbone("someone/tiny-audioldm")
    assert [str(w.message) for w in caught if "local_dir_use_symlinks" in str(w.message)] == []
    local = load_backbone(str(tiny_model_dir))
    for name, module in local.named_modules().items():
        for (key, expected), actual in zip(module.state_dict().items(), by_id.named_modules()[name].state_dict().values()):
            torch.testing.assert_close(actual, expected, atol=0, rtol=0, msg=f"{name}.{key}")


def test_an_adapter_of_a_hub_base_records_the_commit_it_was_trained_on(tiny_model_dir: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_modules import AudioLDMLoRA
    from lightning_modules.model_card import adapter_card

    cache = hub_cache_with(tiny_model_dir, "someone/tiny-audioldm", tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    module = AudioLDMLoRA(pretrained_model="someone/tiny-audioldm", adapters={"unet": {"targets": "attention"}}, sample_duration=0.64)
    info = module.adapter_info(step=0)
    assert (info["base_model"], info["base_commit"], info["base_model_path"]) == ("someone/tiny-audioldm", COMMIT, None)
    assert f"| base model | someone/tiny-audioldm (commit `{COMMIT[:12]}`) |" in adapter_card(info)
