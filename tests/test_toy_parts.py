"""The toy AudioLDM's parts, fast: the Griffin-Lim vocoder, loading it by class name, the recipe cache, the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from datamodules.features import log_mel_spectrogram
from audioldm_demo.synthetic_mels import synthetic_waveforms
from lightning_modules.audioldm import vocoder_class
from lightning_modules.backbone import load_backbone
from audioldm_demo.griffin_lim_vocoder import GriffinLimVocoder
from audioldm_demo.toy_base import RECIPE_FILE, ToyBaseError, ensure_toy_base, read_recipe
from audioldm_demo.toy_settings import ToyRecipe
from audioldm_demo.toy_eval import POOLED, kad_failures
from audioldm_demo.toy_settings import ToyEvalSettings

# A recipe that builds in seconds: it proves the cache and the directory, not the learning (test_toy_learns does).
QUICK = ToyRecipe().with_overrides(clips_per_genre=2, vae_steps=2, unet_steps=2, vae_batch_size=2, unet_batch_size=2)


def test_griffin_lim_vocoder_inverts_the_log_mel() -> None:
    wave = synthetic_waveforms("gugak", 1, 1.28, seed=5)[0]
    mel = log_mel_spectrogram(wave)  # [frames, 64]
    vocoder = GriffinLimVocoder()
    audio = vocoder(mel.unsqueeze(0))
    assert audio.shape == (1, mel.shape[0] * 160)
    again = log_mel_spectrogram(audio[0])[: mel.shape[0]]
    # The magnitude comes back (the phase is estimated): mean log-mel error well under 1 nat on the loud bins.
    loud = mel > mel.max() - 6.0
    assert float((again - mel)[loud].abs().mean()) < 0.5
    torch.testing.assert_close(vocoder(mel), audio[0])  # unbatched input, deterministic phase


def test_vocoder_class_follows_model_index() -> None:
    from transformers import SpeechT5HifiGan

    assert vocoder_class({}) is SpeechT5HifiGan
    assert vocoder_class({"vocoder": ["audioldm_demo", "GriffinLimVocoder"]}) is GriffinLimVocoder
    assert vocoder_class({"vocoder": ["evil_module", "os.system"]}) is SpeechT5HifiGan  # only project classes
    assert vocoder_class({"vocoder": "GriffinLimVocoder"}) is SpeechT5HifiGan


def test_toy_base_is_cached_by_recipe_and_loads_as_audioldm(tmp_path: Path) -> None:
    directory = tmp_path / "toy"
    ensure_toy_base(directory, QUICK)
    assert read_recipe(directory) == QUICK
    measured = json.loads((directory / RECIPE_FILE).read_text())["measured"]
    assert measured["training_clips"] == 2 * len(QUICK.genres) and measured["scaling_factor"] > 0
    parts = load_backbone(str(directory))
    assert isinstance(parts.vocoder, GriffinLimVocoder)
    assert parts.vae.config.scaling_factor == pytest.approx(measured["scaling_factor"])

    stamp = (directory / RECIPE_FILE).stat().st_mtime_ns
    ensure_toy_base(directory, QUICK)  # same recipe: nothing rebuilt
    assert (directory / RECIPE_FILE).stat().st_mtime_ns == stamp
    other = QUICK.with_overrides(seed=1)
    ensure_toy_base(directory, other)  # another recipe: rebuilt in place
    assert read_recipe(directory) == other
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".toy")]  # no staging folder left behind


def test_toy_base_refuses_a_directory_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ToyBaseError, match="not a toy AudioLDM"):
        ensure_toy_base(tmp_path, QUICK)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_recipe_rejects_a_held_out_genre_among_the_base_genres() -> None:
    with pytest.raises(ValueError, match="must not be one of the base genres"):
        ToyRecipe(held_out="techno")


def _row(base: float, lora: float, significant: bool | None = None) -> dict[str, float | bool | None]:
    row = {"kad_base": base, "kad_lora": lora}
    return row if significant is None else {**row, "kad_delta_significant": significant, "kad_delta_ci": [0.1, 0.2]}


def test_verdict_names_each_missed_target() -> None:
    settings = ToyEvalSettings(base_genres=("techno", "chiptune"))
    rows = {"gugak": _row(10.0, 6.9), POOLED: _row(2.0, 2.1), "techno": _row(4.0, 4.3), "chiptune": _row(-1.0, -0.95)}
    assert kad_failures(rows, settings) == []  # -31%; +5%; +7.5%; negative KAD measured against |base|
    rows = {"gugak": _row(10.0, 7.1), POOLED: _row(2.0, 2.3), "techno": _row(4.0, 4.5), "chiptune": _row(1.0, 0.5)}
    failures = kad_failures(rows, settings)
    assert [f.split(":")[0] for f in failures] == ["gugak", POOLED, "techno"]


def test_the_verdict_weighs_each_difference_by_its_paired_interval() -> None:
    """A 16% rise whose interval holds 0 is no failure (techno on the one-thread toy base: +16%, interval
    [-0.32, +4.54]); the same rise, significant, is; F's drop must be significant as well as 30%."""
    settings = ToyEvalSettings(base_genres=("techno",))
    rows = {"gugak": _row(67.8, 30.7, True), POOLED: _row(0.71, 0.74, False), "techno": _row(11.0, 12.8, False)}
    assert kad_failures(rows, settings) == []
    rows["techno"] = _row(11.0, 12.8, True)
    assert [f.split(":")[0] for f in kad_failures(rows, settings)] == ["techno"]
    rows = {"gugak": _row(67.8, 30.7, False), POOLED: _row(0.71, 0.74, False), "techno": _row(11.0, 11.0, True)}
    assert kad_failures(rows, settings) == ["gugak: KAD 67.800 -> 30.700, but the paired interval [0.1, 0.2] holds 0 "
                                            "(not significant)"]


def test_toy_report_writes_the_table_and_checks_the_targets(tmp_path: Path) -> None:
    """A random adapter on a barely trained toy base: the report is written, and --check exits 1 iff a target fails."""
    from audioldm_demo.commands.toy_report import main as toy_report
    from lightning_modules.module import AudioLDMLoRA

    base = ensure_toy_base(tmp_path / "toy", QUICK)
    module = AudioLDMLoRA(pretrained_model=str(base), adapters={"unet": {"targets": "attention", "rank": 2, "alpha": 2.0}})
    with torch.no_grad():
        for name, parameter in module.unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    adapter = module.save_adapter(tmp_path / "run" / "adapters" / "final", step=0)
    quick = ["--settings.clips_per_genre=3", "--settings.reference_clips=4", "--settings.num_inference_steps=2"]
    assert toy_report(["--base", str(base), "--adapter", str(adapter), *quick]) == 0
    out = tmp_path / "run" / "toy-report"
    record = json.loads((out / "report.json").read_text())
    assert set(record["rows"]) == {"all", POOLED, QUICK.held_out, *QUICK.genres}
    assert record["rows"][QUICK.held_out]["n_generated"] == 3
    assert "gugak (F, held out)" in (out / "report.md").read_text()
    assert len(list((out / "wavs" / "lora").glob("*.wav"))) == 3 * 6
    assert record["passed"] is (not record["failures"])
    # The two arms' wavs are a listening test as they are: same stems, sidecars with each clip's prompt and genre.
    from audioldm_lora.cli import main as cli_main

    page = tmp_path / "listening"
    wavs = out / "wavs"
    assert cli_main(["mos", "build", "--system", f"base={wavs / 'base'}", "--system", f"lora={wavs / 'lora'}",
                     "--out", str(page)]) == 0
    items = json.loads((tmp_path / "listening.key.json").read_text())["items"]
    assert len(items) == 3 * 6 and {item["genre"] for item in items} == {QUICK.held_out, *QUICK.genres}
    from audioldm_demo.synthetic_mels import genre_caption

    assert all(item["prompt"] == genre_caption(item["genre"], QUICK.caption_template) for item in items), items[:2]
    assert toy_report(["--base", str(base), "--adapter", str(adapter), "--check", "true", *quick]) == (0 if record["passed"] else 1)


def test_the_synthetic_demo_config_preserves_exactly_the_prompts_the_toy_base_knows() -> None:
    """The prior prompts are the base genres' captions as the toy renders them ("boom bap music", not
    "boom_bap music"): a prompt the base never saw preserves nothing (this once broke boom_bap, ambient_drone
    and bell_choir in the demo), and the LoRA data is the held-out genre under the same caption template."""
    import yaml

    from audioldm_demo.synthetic_mels import genre_caption
    from audioldm_demo.toy_settings import BASE_GENRES, HELD_OUT_GENRE

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "demo_synthetic.yaml").read_text())
    recipe = ToyRecipe()
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    expected = {genre_caption(g, recipe.caption_template) for g in BASE_GENRES}
    assert set(model["prior_prompts"]) == expected | {""}
    assert data["genres"] == [HELD_OUT_GENRE] and data["caption_template"] == recipe.caption_template
    assert ToyEvalSettings().caption_template == recipe.caption_template
