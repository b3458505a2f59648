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
    module = AudioLDMLoRA(pretrained_model="someone/tiny-audioldm", adapters={"unet": {"targets": "attention"}},
                          sample_duration=0.64)
    info = module.adapter_info(step=0)
    assert (info["base_model"], info["base_commit"], info["base_model_path"]) == ("someone/tiny-audioldm", COMMIT, None)
    assert f"| base model | someone/tiny-audioldm (commit `{COMMIT[:12]}`) |" in adapter_card(info)


def offline_with_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """huggingface_hub offline, reading ``cache`` (empty or laid out by :func:`hub_cache_with`)."""
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_a_hub_id_neither_cached_nor_reachable_says_how_to_fetch_it(capsys: pytest.CaptureFixture[str],
                                                                      synthetic_root: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new user meets offline with the shipped recipe: the model named, and both ways out."""
    from audioldm_lora.cli import main

    offline_with_cache(monkeypatch, tmp_path / "empty-hub")
    args = ["fit", "--config", "configs/genre.yaml", f"--data.init_args.root={synthetic_root}",
            f"--trainer.default_root_dir={tmp_path / 'run'}"]
    try:
        code = main(args)
    except SystemExit as exit_:
        code = int(exit_.code)
    err = capsys.readouterr().err
    assert code == 2
    assert ("Base model 'cvssp/audioldm-s-full-v2' is not in the local Hugging Face cache and the Hub cannot be "
            "reached") in err
    assert "`hf download cvssp/audioldm-s-full-v2`" in err and "model.init_args.pretrained_model" in err
    assert "does not appear to have a file named" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_hub_id_is_dispatched_by_its_model_index(tiny_model_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline class in a hub model's model_index.json picks the backbone, as a local folder's does."""
    from lightning_modules.backbone import ModelLoadError

    other = tmp_path / "sd"
    shutil.copytree(tiny_model_dir, other)
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    offline_with_cache(monkeypatch, tmp_path / "hub")
    hub_cache_with(other, "someone/not-audio", tmp_path / "hub")
    with pytest.raises(ModelLoadError, match=r"a StableDiffusionPipeline \(its model_index.json\), which audioldm-lora "
                                             r"does not support; supported pipelines: \['AudioLDM2Pipeline', 'AudioLDMPipeline'\]"):
        load_backbone("someone/not-audio")
    with pytest.raises(ModelLoadError, match="revision v9"):
        load_backbone("someone/not-audio", revision="v9")
