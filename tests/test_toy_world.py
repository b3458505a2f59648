"""The toy demo's real-music world: a build-real-music catalogue as the toy base's training set and the report's
references, keyed into the toy base's cache, and the pitch-shift augmentation of the VAE's extra clips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("music21", reason="the demo extra (pip install .[demo]); .[dev] installs it")
pytest.importorskip("midirenderer", reason="the demo extra (pip install .[demo]); .[dev] installs it")

from audioldm_demo.real_music.catalogue import build_real_music  # noqa: E402
from audioldm_demo.real_music.traditions import HELD_OUT, tradition  # noqa: E402
from audioldm_demo.toy_base import RECIPE_FILE, ToyBaseError, ensure_toy_base, read_recipe, recipe_on_catalogue  # noqa: E402
from audioldm_demo.toy_eval import settings_for_base  # noqa: E402
from audioldm_demo.toy_settings import ToyEvalSettings, ToyRecipe  # noqa: E402
from audioldm_demo.toy_world import CatalogueWorld, WorldError, pitch_shifted  # noqa: E402
from datamodules.audio import load_audio  # noqa: E402

GENRES = ["irish_fiddle_tune", "german_folk_song", HELD_OUT]
QUICK = ToyRecipe().with_overrides(clips_per_genre=2, vae_steps=2, unet_steps=2, vae_batch_size=2, unet_batch_size=2)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_real_music(tmp_path_factory.mktemp("world") / "music", clips_per_genre=2, duration=1.28,
                            genres=GENRES, clips_per_piece=2, reference_clips=2)


def test_the_recipe_trains_on_every_tradition_but_the_held_out_one(catalogue: Path) -> None:
    recipe = recipe_on_catalogue(QUICK, catalogue)
    assert recipe.genres == ("irish_fiddle_tune", "german_folk_song") and recipe.held_out == HELD_OUT
    assert recipe.catalogue == str(catalogue) and len(recipe.catalogue_digest) == 16
    assert recipe.seed == QUICK.seed and recipe.vae_steps == 2  # the other fields are kept


def test_the_world_reads_training_clips_and_other_pieces_as_references(catalogue: Path) -> None:
    world = CatalogueWorld(catalogue)
    assert world.genres == GENRES and world.held_out == HELD_OUT
    assert world.caption(HELD_OUT) == tradition(HELD_OUT).caption
    references = world.reference_waveforms(HELD_OUT, 2, 1.28)
    record = json.loads((catalogue / "catalogue.json").read_text())["traditions"][HELD_OUT]["clips"]
    files = [c["file"] for c in record if c["split"] == "test"]
    for clip, name in zip(references, files):
        torch.testing.assert_close(clip, load_audio(catalogue / name, 16000))
    mels = world.training_log_mels(GENRES[:2], 2, 1.28, seed=0)
    assert mels.shape == (4, 128, 64) and torch.isfinite(mels).all()
    shifted = world.vae_log_mels(GENRES[:2], 2, 1.28, seed=0, max_shift=12)
    assert shifted.shape == mels.shape and not torch.equal(shifted, mels)
    with pytest.raises(WorldError, match=r"has 2 test clips of 'han_folk_song', 3 are needed: rebuild it with a "
                                         r"larger --reference-clips"):
        world.reference_waveforms(HELD_OUT, 3, 1.28)
    with pytest.raises(WorldError, match="needs 2.56 s clips"):
        world.training_log_mels(GENRES[:1], 1, 2.56, seed=0)
    with pytest.raises(WorldError, match="no clips of 'gugak'"):
        world.caption("gugak")


def test_a_toy_base_on_the_catalogue_is_keyed_by_it_and_the_report_follows_it(catalogue: Path, tmp_path: Path) -> None:
    recipe = recipe_on_catalogue(QUICK, catalogue)
    base = ensure_toy_base(tmp_path / "toy", recipe)
    assert read_recipe(base) == recipe
    assert json.loads((base / RECIPE_FILE).read_text())["measured"]["training_clips"] == 4
    settings = settings_for_base(ToyEvalSettings(), base)
    assert (settings.catalogue, settings.held_out, settings.base_genres) == (str(catalogue), HELD_OUT, recipe.genres)
    assert settings_for_base(ToyEvalSettings(), tmp_path) == ToyEvalSettings()  # not a toy base: unchanged

    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("manifest.csv", "catalogue.json"):
        (changed / name).write_bytes((catalogue / name).read_bytes())
    stale = dataclasses.replace(recipe, catalogue=str(changed))
    with (changed / "manifest.csv").open("a") as handle:
        handle.write(f"{HELD_OUT}/extra.wav,x,{HELD_OUT},test\n")
    with pytest.raises(ToyBaseError, match="has changed since this recipe was made"):
        ensure_toy_base(tmp_path / "stale", stale)
    record = json.loads((base / RECIPE_FILE).read_text())  # the base's catalogue changes after the build:
    record["recipe"]["catalogue"] = str(changed)  # the report refuses to score against other references
    (base / RECIPE_FILE).write_text(json.dumps(record))
    with pytest.raises(ToyBaseError, match=f"The catalogue {changed} has changed"):
        settings_for_base(ToyEvalSettings(), base)


def test_the_build_command_refuses_a_folder_that_is_not_a_catalogue(tmp_path: Path, capsys) -> None:
    from audioldm_demo.commands.build_toy_base import main

    assert main([str(tmp_path / "toy"), "--catalogue", str(tmp_path)]) == 2
    assert "is not a real-music catalogue" in capsys.readouterr().err and not (tmp_path / "toy").exists()


@pytest.mark.parametrize("semitones", [-12, -5, 7, 12])
def test_a_pitch_shift_moves_a_tone_by_its_interval_and_keeps_the_length(semitones: int) -> None:
    time = torch.arange(20480) / 16000
    tone = torch.sin(2 * torch.pi * 440.0 * time)
    shifted = pitch_shifted(tone, semitones)
    assert shifted.shape == tone.shape
    spectrum = torch.fft.rfft(shifted * torch.hann_window(shifted.numel())).abs()
    peak = float(spectrum.argmax()) * 16000 / shifted.numel()
    assert abs(1200 * torch.log2(torch.tensor(peak / (440.0 * 2 ** (semitones / 12))))) < 25  # cents


def test_the_real_music_config_preserves_exactly_the_captions_the_toy_base_learned(catalogue: Path) -> None:
    """Its prior prompts are the five traditions' captions as the catalogue writes them (a prompt the base never
    saw preserves nothing), its LoRA data is the held-out tradition read through the manifest (whose split column
    keeps the report's references out of training), and LightningCLI accepts it as shipped."""
    import contextlib
    import io

    import yaml

    from audioldm_demo.real_music.traditions import TRADITIONS
    from audioldm_lora.lightning_cli import build_cli

    path = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    config = yaml.safe_load(path.read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    assert model["prior_prompts"] == [t.caption for t in TRADITIONS if t.genre != HELD_OUT] + [""]
    assert data["genres"] == [HELD_OUT] and data["caption_template"] == "{caption}"
    assert data["manifest"].endswith("manifest.csv") and "root" not in data
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as stop:
        build_cli(["--config", str(path), "--print_config"], run=False)
    assert stop.value.code in (0, None) and "han_folk_song" in printed.getvalue()


@pytest.mark.slow
def test_the_report_on_a_catalogue_base_scores_its_references_and_adds_the_crepe_table(catalogue: Path,
                                                                                        tmp_path: Path) -> None:
    """toy-report on a base built from a catalogue: the catalogue's captions as prompts and its test clips as
    references, without being told; ``extra_embedders`` adds the same comparison under CREPE."""
    pytest.importorskip("torchcrepe", reason="the crepe extra (pip install .[crepe]); .[dev] installs it")
    from audioldm_demo.commands.toy_report import main as toy_report
    from lightning_modules.module import AudioLDMLoRA

    base = ensure_toy_base(tmp_path / "toy", recipe_on_catalogue(QUICK, catalogue))
    module = AudioLDMLoRA(pretrained_model=str(base), adapters={"unet": {"targets": "attention", "rank": 2, "alpha": 2.0}})
    adapter = module.save_adapter(tmp_path / "run" / "adapters" / "final", step=0)
    quick = ["--settings.clips_per_genre=2", "--settings.reference_clips=2", "--settings.num_inference_steps=2",
             "--settings.extra_embedders=[crepe]"]
    assert toy_report(["--base", str(base), "--adapter", str(adapter), *quick]) == 0
    out = tmp_path / "run" / "toy-report"
    record = json.loads((out / "report.json").read_text())
    genres = {"all", "A..E pooled", *GENRES}
    assert set(record["rows"]) == genres and set(record["rows_by_extra_embedder"]["crepe"]) == genres
    assert record["settings"]["catalogue"] == str(catalogue) and record["rows"][HELD_OUT]["n_reference"] == 2
    crepe = record["rows_by_extra_embedder"]["crepe"][HELD_OUT]
    assert crepe["kad_base"] != record["rows"][HELD_OUT]["kad_base"]  # another embedding space
    # An adapter of zeros is the base: both arms' clips, and so their scores, are the same.
    assert crepe["kad_lora"] == pytest.approx(crepe["kad_base"])
    report = (out / "report.md").read_text()
    assert "han_folk_song (F, held out)" in report and "under the 'crepe' embedder: the tiny CREPE pitch network" in report
    assert sorted(p.name for p in (out / "wavs" / "base").glob("han_folk_song_*.wav")) == [
        "han_folk_song_seed1000.wav", "han_folk_song_seed1001.wav"]
