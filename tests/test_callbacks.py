"""Sampling, evaluation and adapter-health callbacks in real tiny fits, with CSV and offline W&B loggers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from callbacks import AdapterExport, AutoOfflineWandbLogger
from callbacks.ab_sampling import ABSampling
from callbacks.adapter_health import AdapterHealth, lora_update_norms
from lightning_modules.adapter_sites import site_layers
from callbacks.conditioning_gain import ConditioningGain
from callbacks.evaluation import GenreEvaluation
from datamodules import GenreAudioDataModule
from lightning_modules.ab import generate_ab
from lightning_modules.module import AudioLDMLoRA


def make_module(model_dir: Path) -> AudioLDMLoRA:
    return AudioLDMLoRA(pretrained_model=str(model_dir), adapters={"unet": {"targets": "attention", "rank": 4, "alpha": 4.0}},
                        learning_rate=5e-3, num_inference_steps=3, sample_duration=0.64)


def make_data(root: Path) -> GenreAudioDataModule:
    return GenreAudioDataModule(root=str(root), duration=0.64, batch_size=4, val_fraction=0.25)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with next(run_dir.rglob("metrics.csv")).open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def csv_run(tiny_model_dir: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("callbacks")
    sampling = ABSampling(prompts=["boom bap music", "gugak music"], seeds=[0], every_n_steps=2,
                          guidance_scales=[1.0, 2.5])
    evaluation = GenreEvaluation(embedder="mel-stats", clips_per_genre=2, reference_dir=str(synthetic_root))
    health = AdapterHealth(every_n_steps=1)
    gain = ConditioningGain()
    best = ModelCheckpoint(monitor="val/kad", mode="min", save_top_k=1, filename="best-{step}")
    trainer = Trainer(max_steps=4, val_check_interval=2, check_val_every_n_epoch=None, accelerator="cpu",
                      logger=CSVLogger(str(run_dir), name="cb"), log_every_n_steps=1, enable_progress_bar=False,
                      callbacks=[sampling, evaluation, health, gain, best, AdapterExport()],
                      default_root_dir=run_dir,
                      num_sanity_val_steps=0)
    module = make_module(tiny_model_dir)
    with patch("callbacks.ab_sampling.generate_ab", wraps=generate_ab) as generation:
        trainer.fit(module, datamodule=make_data(synthetic_root))
    sampling.base_generations = sum(call.kwargs["with_base"] for call in generation.call_args_list)
    return trainer, module, sampling, evaluation, best


def test_ab_pair_is_identical_before_training_and_differs_after(csv_run) -> None:
    _, _, sampling, _, _ = csv_run
    assert [round_["step"] for round_ in sampling.history] == [0, 2, 4]
    for pair in sampling.history[0]["pairs"]:
        torch.testing.assert_close(pair["lora"], pair["base"], atol=0, rtol=0)  # LoRA B starts at zero
    assert any((p["lora"] - p["base"]).abs().max() > 0 for p in sampling.history[-1]["pairs"])
    for earlier, later in zip(sampling.history[0]["pairs"], sampling.history[-1]["pairs"]):
        torch.testing.assert_close(earlier["base"], later["base"], atol=0, rtol=0)  # B is the fixed base


def test_the_base_arm_is_generated_once_per_guidance_scale_not_every_round(csv_run) -> None:
    """Three rounds at two guidance scales: B (the frozen base) is generated in the first round only."""
    sampling = csv_run[2]
    assert len(sampling.history) == 3 and sampling.base_generations == 2


def test_sampling_writes_audio_images_and_table(csv_run) -> None:
    trainer = csv_run[0]
    folder = Path(trainer.log_dir) / "samples" / "step-000000"
    wavs = sorted(p.name for p in folder.glob("*.wav"))
    assert len(wavs) == 2 * 2 * 2  # prompts x guidance scales x (A, B)
    assert "boom_bap_music_seed0_g2.5_A_lora.wav" in wavs
    assert len(list(folder.glob("*.png"))) == 4
    with (folder / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["prompt"] for r in rows] == ["boom bap music", "gugak music"] * 2
    assert {r["guidance"] for r in rows} == {"1.0", "2.5"}


def test_evaluation_logs_kad_against_base_and_drives_checkpointing(csv_run) -> None:
    trainer, _, _, evaluation, best = csv_run
    rows = [r for r in metric_rows(Path(trainer.log_dir)) if r.get("val/kad")]
    assert len(rows) == 2  # steps 2 and 4
    for row in rows:
        assert float(row["val/kad_delta"]) == pytest.approx(float(row["val/kad"]) - float(row["val/kad_base"]), abs=1e-5)
        assert row["val/kad/boom_bap"] and row["val/fad"]
    assert float(rows[0]["val/kad_base"]) == float(rows[1]["val/kad_base"])  # base scored once
    assert best.best_model_score.item() == pytest.approx(min(float(r["val/kad"]) for r in rows), abs=1e-6)
    assert Path(best.best_model_path).is_file()
    report = json.loads((Path(trainer.log_dir) / "evaluation" / "step-000004.json").read_text())
    assert set(report["rows"]) == {"all", "boom_bap", "chiptune", "gugak"}
    assert report["rows"]["all"]["n_generated"] == 6
    table = (Path(trainer.log_dir) / "evaluation" / "step-000004.md").read_text()
    assert "| KAD base | KAD LoRA | KAD delta |" in table
    assert "| all | 6 |" in table


def test_evaluation_keeps_embeddings_of_each_generated_batch_not_audio(csv_run, monkeypatch) -> None:
    """Each generated batch is embedded as it comes (at most ``batch_size`` clips of audio are ever held): scoring
    again with batches of 2 instead of 8 gives the last validation's report (to 1e-4: a batch's size changes the
    float summation order of the UNet's batched kernels, 3e-5 relative on KAD here)."""
    trainer, module, _, evaluation, _ = csv_run
    last = evaluation.last_report["rows"]
    embedder = evaluation.embedder(module)
    embedded: list[int] = []
    real_embed = embedder.embed_audio

    def recording(audio, sample_rate, batch_size=None):
        embedded.append(len(audio))
        return real_embed(audio, sample_rate, batch_size)

    monkeypatch.setattr(embedder, "embed_audio", recording)
    monkeypatch.setattr(evaluation, "batch_size", 2)
    again = evaluation.evaluate(trainer, module, "val")["rows"]
    assert embedded == [2, 2, 2]  # 3 genres x 2 clips, LoRA arm only (the base arm was scored once, at step 2)
    for group, row in last.items():
        for key in ("kad_lora", "fad_lora", "kad_base"):
            assert again[group][key] == pytest.approx(row[key], rel=1e-4, abs=1e-7), (group, key)


def test_a_resumed_evaluation_scores_the_base_from_its_checkpointed_embeddings(csv_run, monkeypatch) -> None:
    """The callback's checkpoint state: a fresh GenreEvaluation loaded from it counts validations on and scores the
    base arm from the stored embeddings without generating it; other sampling settings generate the base again."""
    import callbacks.evaluation as evaluation_module

    trainer, module, _, evaluation, _ = csv_run
    expected = evaluation.evaluate(trainer, module, "val")["rows"]
    state = torch.load(_saved(evaluation.state_dict()), weights_only=True)  # as a checkpoint holds it
    assert state["validations"] == 2
    with_base: list[bool] = []
    real_generate = evaluation_module.generate_ab

    def recording(*args, **kwargs):
        with_base.append(kwargs["with_base"])
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(evaluation_module, "generate_ab", recording)
    resumed = GenreEvaluation(embedder="mel-stats", clips_per_genre=2, reference_dir=evaluation.reference_dir)
    resumed.load_state_dict(state)
    rows = resumed.evaluate(trainer, module, "val")["rows"]
    assert with_base == [False] and resumed._validations == 2
    for group, row in expected.items():
        assert rows[group]["kad_base"] == row["kad_base"] and rows[group]["kad_lora"] == row["kad_lora"], group
    other = GenreEvaluation(embedder="mel-stats", clips_per_genre=2, reference_dir=evaluation.reference_dir,
                            num_inference_steps=2)
    other.load_state_dict(state)
    other.evaluate(trainer, module, "val")
    assert with_base == [False, True]


def _saved(state: dict) -> "io.BytesIO":
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_conditioning_gain_is_logged_per_genre_on_fixed_noise(csv_run, synthetic_root: Path) -> None:
    trainer, module, _, _, _ = csv_run
    """A random tiny model barely listens to its prompt: its gains are about 1e-5 against an error of about 1.1."""
    rows = [r for r in metric_rows(Path(trainer.log_dir)) if r.get("val/cond_gain/gugak")]
    assert len(rows) == 2  # both validations
    for genre in ("boom_bap", "chiptune", "gugak"):
        for row in rows:
            scale = float(row[f"val/cond_error/{genre}"])
            for key in ("cond_gain", "cond_gain_empty", "cond_gain_base", "cond_gain_empty_base"):
                assert abs(float(row[f"val/{key}/{genre}"])) < 1e-3 * scale, (key, genre, row)
        assert rows[0][f"val/cond_gain_base/{genre}"] == rows[1][f"val/cond_gain_base/{genre}"]  # measured once
    # the same timesteps and noise at every validation: two validations of one model give the same gains
    first, second = (trainer.validate(module, datamodule=make_data(synthetic_root), verbose=False)[0]
                     for _ in range(2))
    gains = {key: value for key, value in first.items() if "cond_" in key}
    assert len(gains) == 5 * 3 and gains == {key: second[key] for key in gains}


def test_adapter_health_reports_the_update_norm(csv_run) -> None:
    trainer, module, _, _, _ = csv_run
    rows = [r for r in metric_rows(Path(trainer.log_dir)) if r.get("lora/update_norm_total")]
    assert rows and float(rows[-1]["lora/update_norm_total"]) > 0
    norms = lora_update_norms(site_layers(module.backbone))
    expected = sum(v * v for v in norms.values()) ** 0.5
    assert float(rows[-1]["lora/update_norm_total"]) == pytest.approx(expected, rel=1e-5)
    fresh = make_module(Path(module.hparams.pretrained_model))
    fresh_norms = lora_update_norms(site_layers(fresh.backbone))
    assert fresh_norms and all(v == 0 for v in fresh_norms.values())  # B = 0 at start: no update yet


def test_test_command_writes_the_paper_table(csv_run, tiny_model_dir: Path, synthetic_root: Path) -> None:
    trainer, module, _, evaluation, _ = csv_run
    trainer.test(module, datamodule=make_data(synthetic_root))
    table = (Path(trainer.log_dir) / "evaluation" / "test.md").read_text()
    assert "| genre | clips | ref clips | KAD base | KAD LoRA | KAD delta | FAD base | FAD LoRA | FAD delta |" in table
    assert "| all | 6 |" in table
    assert trainer.callback_metrics["test/kad"].isfinite()
    # every value carries its interval, and each delta its paired interval (same prompts and seeds on both arms)
    report = json.loads((Path(trainer.log_dir) / "evaluation" / "test.json").read_text())
    overall = report["rows"]["all"]
    for metric in ("kad", "fad"):
        for arm in ("base", "lora"):
            low, high = overall[f"{metric}_{arm}_ci"]
            assert low <= overall[f"{metric}_{arm}"] <= high or metric == "kad"  # KAD's percentile may lie off it
        low, high = overall[f"{metric}_delta_ci"]
        assert low < high and overall[f"{metric}_delta_significant"] == (low > 0 or high < 0)
    all_line = next(line for line in table.splitlines() if line.startswith("| all | 6 |"))
    assert all_line.count("[") == 6 and "paired" in table


def test_offline_wandb_run_holds_media_tables_and_history(tiny_model_dir, synthetic_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = AutoOfflineWandbLogger(save_dir=str(tmp_path), project="audioldm-lora-test")
    trainer = Trainer(max_steps=2, val_check_interval=2, check_val_every_n_epoch=None, accelerator="cpu",
                      logger=logger, log_every_n_steps=1, enable_progress_bar=False, num_sanity_val_steps=0,
                      callbacks=[ABSampling(prompts=["gugak music"], every_n_steps=2),
                                 GenreEvaluation(clips_per_genre=2), AdapterExport()], default_root_dir=tmp_path)
    trainer.fit(make_module(tiny_model_dir), datamodule=make_data(synthetic_root))
    logger.experiment.finish()
    run = next((tmp_path / "wandb").glob("offline-run-*"))
    media = run / "files" / "media"
    assert list(media.glob("audio/samples/audio_*.wav")), list(media.rglob("*"))[:20]
    assert list(media.glob("images/samples/mel_*.png"))
    assert list(media.glob("table/samples/table_*.table.json"))
    evaluation_table = json.loads(next(media.glob("table/evaluation/step-000002_*.table.json")).read_text())
    assert {"kad_delta_ci_low", "kad_delta_ci_high", "fad_lora_ci_low"} <= set(evaluation_table["columns"])
    assert any(run.glob("*.wandb"))


def test_sampling_progress_reports_clips_and_time_left(caplog) -> None:
    import logging

    from callbacks.progress import clip_progress

    ticks = iter([100.0, 110.0, 130.0])
    report = clip_progress("Evaluation on val", clock=lambda: next(ticks))
    with caplog.at_level(logging.INFO):
        report(2, 8)
        report(4, 8)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Evaluation on val")]
    assert lines == ["Evaluation on val: 2/8 clips, 10 s elapsed, about 30 s left",
                     "Evaluation on val: 4/8 clips, 30 s elapsed, about 30 s left"]
