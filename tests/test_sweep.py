"""`make sweep`: the local backend end to end on the tiny config, the report, bad input, and the W&B command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from audioldm_lora.commands.sweep import check_overrides
from audioldm_lora.commands.sweep import main as sweep_main
from audioldm_lora.sweep.report import collect, distinguishing_digits, heatmap
from audioldm_lora.sweep.spec import SweepSpecError, covering_points, grid_points, load_sweep
from audioldm_lora.sweep.wandb_backend import agent_command, wandb_sweep_definition
from tests.cli_helpers import CONFIG, tiny_args


def write_sweep(path: Path, parameters: dict) -> Path:
    path.write_text(yaml.safe_dump({"method": "grid", "metric": {"name": "val/kad", "goal": "minimize"},
                                    "parameters": parameters}, sort_keys=False))
    return path


def fixture_overrides(model_dir: Path, data_root: Path, run_dir: Path) -> list[str]:
    """The tiny-fixture overrides of tests.cli_helpers, without the subcommand, config and run folder."""
    args = tiny_args("fit", model_dir, data_root, run_dir)[3:]
    return [a for a in args if not a.startswith(("--trainer.default_root_dir", "--trainer.logger"))]


@pytest.mark.slow
def test_local_sweep_end_to_end(tiny_model_dir: Path, synthetic_root: Path, tmp_path: Path, capsys) -> None:
    sweep = write_sweep(tmp_path / "sweep.yaml", {"model.init_args.adapters.unet.rank": {"values": [0, 2]},
                                                  "model.init_args.adapters.unet.alpha": {"values": [2, 4]}})
    runs = tmp_path / "runs"
    extra = fixture_overrides(tiny_model_dir, synthetic_root, tmp_path) + [
        "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--adapter_export.every_n_steps=0"]
    argv = ["--sweep", str(sweep), "--config", CONFIG, "--backend", "local", "--runs-dir", str(runs),
            "--parallel", "2", "--extra", "[" + ",".join(extra) + "]"]
    assert sweep_main(argv) == 0  # failed points do not stop the sweep
    with (runs / "sweep_report.csv").open() as handle:
        rows = {row["point"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"rank=0,alpha=2", "rank=0,alpha=4", "rank=2,alpha=2", "rank=2,alpha=4"}
    for name in ("rank=0,alpha=2", "rank=0,alpha=4"):
        assert rows[name]["state"] == "failed"
        assert "rank must be a positive integer" in rows[name]["error"]
    for name, alpha in (("rank=2,alpha=2", "2"), ("rank=2,alpha=4", "4")):
        row = rows[name]
        assert row["state"] == "done" and row["rank"] == "2" and row["alpha"] == alpha
        assert int(row["trainable_params"]) > 0 and float(row["adapter_mb"]) > 0
        assert float(row["steps_per_s"]) > 0 and float(row["peak_memory_mib"]) > 0
        assert row["val/kad"] and row["val/kad_delta"]
    assert rows["rank=2,alpha=2"]["trainable_params"] == rows["rank=2,alpha=4"]["trainable_params"]
    done = [rows["rank=2,alpha=2"], rows["rank=2,alpha=4"]]
    assert sorted(row["vs_best"] in ("~best", "worse") for row in done) == [False, True]  # one best, one compared
    for row in done:
        assert float(row["val/kad_low"]) < float(row["val/kad_high"])
    compared = next(row for row in done if row["vs_best"] != "best")
    assert float(compared["kad_minus_best_low"]) < float(compared["kad_minus_best_high"])
    assert (runs / "sweep_kad_heatmap.png").stat().st_size > 1000
    assert "| rank=2,alpha=4 | done | 2 | 4 |" in (runs / "sweep_report.md").read_text()

    log_before = (runs / "rank=2,alpha=2" / "train.log").stat().st_mtime_ns
    assert sweep_main(argv) == 0  # resumable: finished points are not trained again
    assert (runs / "rank=2,alpha=2" / "train.log").stat().st_mtime_ns == log_before


def test_unknown_parameter_fails_before_any_run(tmp_path: Path, capsys) -> None:
    sweep = write_sweep(tmp_path / "sweep.yaml", {"model.init_args.lora_rnak": {"values": [2, 4]}})
    code = sweep_main(["--sweep", str(sweep), "--config", CONFIG, "--backend", "local", "--runs-dir", str(tmp_path / "r")])
    assert code == 2
    assert "lora_rnak" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bad_sweep_files(tmp_path: Path) -> None:
    with pytest.raises(SweepSpecError, match="`parameters` is empty"):
        load_sweep(write_sweep(tmp_path / "a.yaml", {}))
    with pytest.raises(SweepSpecError, match="needs a non-empty list in `values`, got \\[\\]"):
        load_sweep(write_sweep(tmp_path / "b.yaml", {"model.init_args.adapters.unet.rank": {"values": []}}))
    with pytest.raises(SweepSpecError, match="needs a non-empty list in `values`, got 4"):
        load_sweep(write_sweep(tmp_path / "c.yaml", {"model.init_args.adapters.unet.rank": {"values": 4}}))
    (tmp_path / "d.yaml").write_text("- method: grid\n")
    with pytest.raises(SweepSpecError, match="expected a mapping"):
        load_sweep(tmp_path / "d.yaml")
    (tmp_path / "e.yaml").write_bytes(b"method: \x80\n")
    with pytest.raises(SweepSpecError, match="not UTF-8"):
        load_sweep(tmp_path / "e.yaml")
    with pytest.raises(SweepSpecError, match="does not exist"):
        load_sweep(tmp_path / "missing.yaml")
    spec = load_sweep(write_sweep(tmp_path / "c.yaml", {"model.init_args.learning_rate": {"min": 1e-5, "max": 1e-3}}))
    with pytest.raises(SweepSpecError, match="needs an explicit `values` list"):
        grid_points(spec)


def test_grid_points_and_overrides() -> None:
    spec = load_sweep(Path(__file__).resolve().parents[1] / "configs" / "sweep.yaml")
    points = grid_points(spec)
    assert len(points) == 16
    assert points[0].overrides() == ["--model.init_args.adapters.unet.rank=2", "--model.init_args.adapters.unet.alpha=2"]
    assert points[-1].name == "rank=16,alpha=16"


def test_wandb_agent_command_is_built_offline() -> None:
    spec = load_sweep(Path(__file__).resolve().parents[1] / "configs" / "sweep.yaml")
    definition = wandb_sweep_definition(spec, "configs/other.yaml")
    assert definition["command"] == ["${env}", "${interpreter}", "-m", "audioldm_lora", "fit", "--config",
                                     "configs/other.yaml", "${args}"]
    assert definition["metric"] == {"name": "val/kad", "goal": "minimize"}
    assert "command" not in spec  # the file's spec is not modified
    assert agent_command("me/proj/abc123", count=3)[1:] == ["agent", "--count", "3", "me/proj/abc123"]


def test_the_authors_grid_is_twelve_text_encoder_points_the_training_config_accepts() -> None:
    spec = load_sweep(Path(__file__).resolve().parents[1] / "configs" / "sweep_authors_grid.yaml")
    points = grid_points(spec)
    assert len(points) == 12
    assert {(p.params["model.init_args.adapters.text_encoder.targets"],
             p.params["model.init_args.adapters.text_encoder.rank"]) for p in points} == {(t, r) for t in ("Wq", "Wv", "WqWv") for r in (1, 2, 4, 8)}
    assert all(p.params["model.init_args.adapters.unet.targets"] == "none"
               and p.params["model.init_args.adapters.text_encoder.alpha"] == 8 and p.params["model.init_args.learning_rate"] == 1e-4 for p in points)
    assert points[0].name == "te_targets=Wq,te_rank=1,targets=none,te_alpha=8,learning_rate=0.0001"
    covering = covering_points(spec)
    assert len(covering) == 4  # every value of every parameter, in as many parse runs as the longest list
    for key, rule in spec["parameters"].items():
        assert {p.params[key] for p in covering} == set(rule.get("values", [rule.get("value")]))
    for point in covering:
        check_overrides(CONFIG, point, [])  # valid LightningCLI keys and types of the shipped tiny config
    with pytest.raises(SweepSpecError, match=r"(?s)rejects the sweep's parameters.*Parser key \"rank\".*Got value: four"):
        check_overrides(CONFIG, covering[0].__class__({"model.init_args.adapters.text_encoder.rank": "four"}), [])


def test_heatmap_is_drawn_over_the_two_swept_parameters() -> None:
    rows = [{"point": f"te_targets={t},te_rank={r}", "state": "done", "te_targets": t, "te_rank": r, "targets": "none",
             "val/kad": float(i)} for i, (t, r) in enumerate((t, r) for t in ("Wq", "Wv", "WqWv") for r in (8, 1, 2))]
    rows[-1]["val/kad"] = None  # a failed point
    figure = heatmap(rows)
    axis = figure.axes[0]
    assert axis.get_ylabel() == "te_targets" and axis.get_xlabel() == "te_rank"
    assert [t.get_text() for t in axis.get_yticklabels()] == ["Wq", "Wv", "WqWv"]
    assert [t.get_text() for t in axis.get_xticklabels()] == ["1", "2", "8"]  # numbers ascending
    grid = axis.images[0].get_array()
    assert grid[0, 2] == 0.0 and grid[0, 0] == 1.0 and grid[1, 1] == 5.0 and grid.mask[2, 1]
    assert axis.get_title() == "val/kad over te_targets x te_rank"


def test_cells_that_differ_in_the_fourth_decimal_read_differently() -> None:
    """On the authors' 12-point grid the tiny model's cells all read 83.3 at three digits."""
    assert distinguishing_digits([83.3112, 83.3156, 83.3101]) == 5  # 83.311, 83.316, 83.31
    assert distinguishing_digits([1.0, 2.0]) == 3 and distinguishing_digits([]) == 3
    rows = [{"point": f"rank={r}", "state": "done", "rank": r, "val/kad": 83.31 + r / 10_000,
             "vs_best": "best" if r == 1 else "~best"} for r in (1, 2, 4)]
    labels = [text.get_text() for text in heatmap(rows).axes[0].texts]
    assert labels == ["83.3101\nbest", "83.3102\n~best", "83.3104\n~best"]


def test_points_are_compared_with_the_best_by_a_paired_interval(tmp_path: Path) -> None:
    """Three points evaluated on the same prompts and seeds: the best, one that differs by noise only (~best) and
    one clearly worse; a fourth evaluated on another prompt set is not paired."""
    import json

    import numpy as np

    from metrics.embedding_file import save_embeddings
    from metrics.genre_scores import LabelledEmbeddings

    rng = np.random.default_rng(0)
    reference = LabelledEmbeddings(rng.normal(size=(40, 8)), ["a"] * 40, "reference")
    shared = rng.normal(size=(40, 8))
    points = {"best": shared + 0.1, "noise": shared + 0.1 + 0.01 * rng.normal(size=(40, 8)), "worse": shared + 1.5,
              "other": rng.normal(size=(30, 8)) + 3.0}
    for name, clips in points.items():
        evaluation = tmp_path / name / "logs" / "version_0" / "evaluation"
        evaluation.mkdir(parents=True)
        (tmp_path / name / "status.json").write_text(json.dumps({"state": "done", "params": {}}))
        save_embeddings(evaluation / "step-000002.npz", reference, clips, ["a"] * len(clips))
        from metrics.kad import kernel_audio_distance

        kad = float(kernel_audio_distance(reference.embeddings, clips))
        (evaluation.parent / "metrics.csv").write_text(f"step,val/kad\n2,{kad}\n")
    rows = {row["point"]: row for row in collect(tmp_path)}
    near = sorted(("best", "noise"), key=lambda name: rows[name]["vs_best"])  # either may be the lower by noise
    assert [rows[name]["vs_best"] for name in near] == ["best", "~best"]
    assert rows[near[0]]["kad_minus_best_low"] is None
    assert rows[near[1]]["kad_minus_best_low"] < 0 < rows[near[1]]["kad_minus_best_high"]
    assert rows["worse"]["vs_best"] == "worse" and rows["worse"]["kad_minus_best_low"] > 0
    assert rows["other"]["vs_best"].startswith("not paired")
    for row in rows.values():
        assert row["val/kad_low"] < row["val/kad"] < row["val/kad_high"] or row["point"] == "other"
