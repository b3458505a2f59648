"""The demo's scaffolding lives outside the core: the core never writes a model or data, the demo's classes do,
and only into their own folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audioldm_demo.data import SyntheticGenreDataModule
from audioldm_demo.models import TinyAudioLDM2LoRA, TinyAudioLDMLoRA
from datamodules.datamodule import GenreAudioDataModule
from datamodules.errors import DataSourceError
from lightning_modules.backbone import ModelLoadError
from lightning_modules.module import AudioLDMLoRA

ROOT = Path(__file__).resolve().parents[1]


def test_the_core_model_never_imports_metrics_or_the_demo() -> None:
    code = (
        "import sys, lightning_modules.module, lightning_modules.adapters, lightning_modules.sampler, "
        "datamodules.datamodule; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'metrics', 'audioldm_demo'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("cls", [GenreAudioDataModule, SyntheticGenreDataModule])
def test_a_missing_data_root_is_an_error_and_nothing_is_written(tmp_path: Path, cls: type) -> None:
    missing = tmp_path / "nonexistent"
    # Refused when the module is built: Lightning would start the loggers (a W&B run) before its setup.
    with pytest.raises(DataSourceError, match=rf"Data root {missing} \(data.init_args.root\) does not exist"):
        cls(root=str(missing), duration=0.64)
    assert not missing.exists() and not list(tmp_path.iterdir())


def test_the_demo_data_module_writes_only_its_own_folder(tmp_path: Path) -> None:
    folder = tmp_path / "synthetic"
    module = SyntheticGenreDataModule(synthetic_dir=str(folder), synthetic_clips_per_genre=2, duration=0.64)
    module.prepare_data()
    module.setup("fit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]
    assert len(module.genres) == 6 and len(list(folder.glob("*/*.wav"))) == 12
    assert module.hparams.root == str(folder)
    stamp = (folder / "manifest.csv").stat().st_mtime_ns
    SyntheticGenreDataModule(synthetic_dir=str(folder), synthetic_clips_per_genre=2).prepare_data()
    assert (folder / "manifest.csv").stat().st_mtime_ns == stamp  # written once


def test_the_core_module_refuses_a_missing_model_and_the_demo_builds_it(tmp_path: Path) -> None:
    missing = tmp_path / "tiny"
    with pytest.raises(ModelLoadError, match="neither an existing directory nor a hub id"):
        AudioLDMLoRA(pretrained_model=str(missing))
    assert not missing.exists()
    module = TinyAudioLDMLoRA(pretrained_model=str(missing), adapters={"unet": {"rank": 2}})
    assert (missing / "model_index.json").is_file()
    assert module.backbone.kind == "audioldm"
    again = TinyAudioLDMLoRA.load_backbone(str(missing), None)  # present now: loaded, not rebuilt
    assert again.identity() == module.backbone.identity()
    audioldm2 = TinyAudioLDM2LoRA.load_backbone(str(tmp_path / "tiny2"), None)
    assert audioldm2.kind == "audioldm2" and (tmp_path / "tiny2" / "model_index.json").is_file()


def test_shipped_recipes_choose_the_demo_classes() -> None:
    import yaml

    for name in ("tiny", "tiny_audioldm2", "demo_synthetic"):
        config = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        assert config["data"]["class_path"] == "audioldm_demo.SyntheticGenreDataModule", name
    # The real-music demo reads a build-real-music catalogue with the project's own data module, as a user would.
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    assert demo["data"]["class_path"] == "datamodules.GenreAudioDataModule"
    assert demo["model"]["class_path"] == "lightning_modules.AudioLDMLoRA"
    for name, module in (("tiny", "TinyAudioLDMLoRA"), ("tiny_audioldm2", "TinyAudioLDM2LoRA")):
        config = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        assert config["model"]["class_path"] == f"audioldm_demo.{module}", name
    for name in ("genre", "genre_audioldm2"):
        genre = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        assert genre["model"]["class_path"] == "lightning_modules.AudioLDMLoRA", name
        assert genre["data"]["class_path"] == "datamodules.GenreAudioDataModule", name


def test_the_toy_table_marks_no_row_that_compared_with_its_own_genre() -> None:
    """F's row is relabelled "(F, held out)" for the table; it compared with F's own clips, so it is not "vs"."""
    from audioldm_demo.toy_eval import POOLED, ToyEvalResult, result_markdown
    from audioldm_demo.toy_settings import ToyEvalSettings

    settings = ToyEvalSettings()
    row = {"n_generated": 4, "n_reference": 8, "kad_base": 2.0, "kad_lora": 1.0, "kad_delta": -1.0,
           "fad_base": 3.0, "fad_lora": 2.0, "fad_delta": -1.0, "clap_score_base": None, "clap_score_lora": None,
           "clap_score_delta": None}
    groups = [settings.held_out, *settings.base_genres, POOLED]
    rows = {g: {**row, "reference_set": g} for g in groups} | {"all": {**row, "reference_set": "all"}}
    table = result_markdown(ToyEvalResult(rows=rows, settings=settings))
    assert f"| {settings.held_out} (F, held out) | 4 | 8 |" in table and "(vs" not in table
