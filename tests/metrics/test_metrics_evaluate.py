"""``audioldm-lora evaluate`` on small wav folders: JSON values equal the functional results, errors are clear."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from metrics_helpers import PROMPTS, write_genre_folder

import metrics.cache as cache_module
from audioldm_lora.commands.evaluate import main
from datamodules.audio import load_audio
from metrics import ClapEmbedder, MelStatisticsEmbedder, clap_score, frechet_audio_distance, kernel_audio_distance


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    generated = tmp_path / "generated"
    reference = tmp_path / "reference"
    write_genre_folder(generated, {"boom_bap": 3, "gugak": 4}, base_frequency=220.0, noise=0.05, seed=0)
    write_genre_folder(reference, {"boom_bap": 4, "gugak": 3}, base_frequency=230.0, noise=0.2, seed=1)
    return generated, reference


def _embed(paths: list[Path], embedder) -> torch.Tensor:
    return torch.cat([embedder.embed_audio([load_audio(p, embedder.sample_rate)], embedder.sample_rate) for p in paths])


def _run(tmp_path: Path, *args: str) -> int:
    return main([*args, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])


def test_mel_stats_overall_and_per_genre_values(folders, tmp_path: Path, capsys, monkeypatch) -> None:
    generated, reference = folders
    assert _run(tmp_path, "--generated", str(generated), "--reference", str(reference)) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    embedder = MelStatisticsEmbedder()
    gen_paths, ref_paths = sorted(generated.rglob("*.wav")), sorted(reference.rglob("*.wav"))
    gen, ref = _embed(gen_paths, embedder), _embed(ref_paths, embedder)
    rows = report["rows"]
    assert list(rows) == ["all", "boom_bap", "gugak"]
    assert report["embedder_id"] == "mel-stats-v1" and report["embedding_dim"] == 128
    assert rows["all"]["n_generated"] == 7 and rows["all"]["n_reference"] == 7
    assert rows["all"]["kad"] == pytest.approx(float(kernel_audio_distance(ref, gen)), rel=1e-9)
    assert rows["all"]["fad"] == pytest.approx(float(frechet_audio_distance(ref, gen)), rel=1e-9)
    assert rows["all"]["clap_score"] is None
    for genre in ("boom_bap", "gugak"):
        g = [i for i, p in enumerate(gen_paths) if p.parent.name == genre]
        r = [i for i, p in enumerate(ref_paths) if p.parent.name == genre]
        assert rows[genre]["reference_set"] == genre and rows[genre]["n_generated"] == len(g)
        assert rows[genre]["kad"] == pytest.approx(float(kernel_audio_distance(ref[r], gen[g])), rel=1e-9)
        assert rows[genre]["fad"] == pytest.approx(float(frechet_audio_distance(ref[r], gen[g])), rel=1e-9)
    markdown = (tmp_path / "out" / "metrics.md").read_text()
    assert "| set | generated | reference | CLAP | KAD | FAD |" in markdown
    low, high = rows["gugak"]["kad_ci"]
    assert low < high
    kad = f"{rows['gugak']['kad']:.4f} [{low:.4f}, {high:.4f}]"
    fad_low, fad_high = rows["gugak"]["fad_ci"]
    assert fad_low < rows["gugak"]["fad"] < fad_high  # FAD's jackknife interval is centred on the value
    fad = f"{rows['gugak']['fad']:.4f} [{fad_low:.4f}, {fad_high:.4f}]"
    assert f"| gugak | 4 | 3 | – | {kad} | {fad} |" in markdown
    assert report["intervals"]["resamples"] == 1000 and "left out of the within-set sums" in markdown
    assert "FAD: normal interval, standard error from the grouped jackknife" in markdown
    assert markdown in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "out")) == ["metrics.json", "metrics.md"]  # no temp files left

    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 14 and all(p.parent.name.startswith("mel-stats-v1-") for p in cached)

    def must_not_embed(self, clips):  # the second run reads every embedding from the cache
        raise AssertionError("embedding recomputed despite the cache")

    monkeypatch.setattr(MelStatisticsEmbedder, "_embed_clips", must_not_embed)
    assert _run(tmp_path, "--generated", str(generated), "--reference", str(reference)) == 0
    again = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert again["rows"] == rows


def test_clap_score_from_manifest_with_tiny_clap(tiny_clap_dir: Path, tmp_path: Path) -> None:
    generated, reference = tmp_path / "flat", tmp_path / "reference"
    paths = write_genre_folder(generated, {"x": 4}, base_frequency=300.0, noise=0.1, seed=2, sample_rate=48_000)
    write_genre_folder(reference, {"rock": 2, "jazz": 3}, base_frequency=310.0, noise=0.3, seed=3)
    genres = ["rock", "rock", "jazz", "jazz"]
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "caption", "genre"])
        for path, prompt, genre in zip(paths, PROMPTS, genres):
            writer.writerow([path.relative_to(tmp_path).as_posix(), prompt, genre])
    args = ["--generated", str(generated), "--reference", str(reference), "--manifest", str(manifest),
            "--embedder", f"clap:{tiny_clap_dir}", "--clap-convention", "shifted"]
    assert _run(tmp_path, *args) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())

    embedder = ClapEmbedder(tiny_clap_dir)
    text, audio = embedder.embed_text(PROMPTS), _embed(paths, embedder)
    rows = report["rows"]
    assert report["clap_convention"] == "shifted" and rows["all"]["clap_pairs"] == 4
    assert rows["all"]["clap_score"] == pytest.approx(float(clap_score(text, audio, "shifted")), rel=1e-5)
    assert rows["rock"]["clap_score"] == pytest.approx(float(clap_score(text[:2], audio[:2], "shifted")), rel=1e-5)
    ref = _embed(sorted(reference.rglob("*.wav")), embedder)
    assert rows["all"]["kad"] == pytest.approx(float(kernel_audio_distance(ref, audio)), rel=1e-4, abs=1e-6)
    assert rows["jazz"]["reference_set"] == "jazz" and rows["jazz"]["n_reference"] == 3
    assert [f["prompt"] for f in report["generated"]["files"]] == PROMPTS
    assert "CLAP (shifted)" in (tmp_path / "out" / "metrics.md").read_text()


def test_prompt_text_file_and_sidecars(folders, tiny_clap_dir: Path, tmp_path: Path) -> None:
    generated, reference = folders
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(7)) + "\n")
    base = ["--generated", str(generated), "--reference", str(reference), "--embedder", f"clap:{tiny_clap_dir}"]
    assert _run(tmp_path, *base, "--prompts", str(prompts)) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [f["prompt"] for f in report["generated"]["files"]] == [f"prompt {i}" for i in range(7)]
    assert report["rows"]["all"]["clap_pairs"] == 7 and report["clap_convention"] == "raw"

    first = sorted(generated.rglob("*.wav"))[0]
    first.with_suffix(".json").write_text(json.dumps({"prompt": "from the sidecar", "seed": 3}))
    assert _run(tmp_path, *base) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["rows"]["all"]["clap_pairs"] == 1
    assert any("6 generated clips have no prompt" in note for note in report["notes"])


def test_precomputed_embeddings(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    gen, ref = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((8, 5)).astype(np.float32) + 0.5
    np.save(tmp_path / "gen.npy", gen)
    np.save(tmp_path / "ref.npy", ref)
    args = ["--generated-embeddings", str(tmp_path / "gen.npy"), "--reference-embeddings", str(tmp_path / "ref.npy")]
    assert _run(tmp_path, *args, "--kad-bandwidth", "1.5") == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["rows"]["all"]["kad"] == pytest.approx(float(kernel_audio_distance(ref, gen, 1.5)), rel=1e-9)
    assert report["rows"]["all"]["fad"] == pytest.approx(float(frechet_audio_distance(ref, gen)), rel=1e-9)
    assert report["embedder"] == "precomputed" and report["rows"]["all"]["kad_bandwidth"] == 1.5
    assert not (tmp_path / "cache").exists()


def _error(tmp_path: Path, capsys, *args: str) -> str:
    assert _run(tmp_path, *args) == 2
    assert not (tmp_path / "out").exists()  # nothing written
    return capsys.readouterr().err


def test_input_errors_are_clear(folders, tmp_path: Path, capsys) -> None:
    generated, reference = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "generated folder" in _error(tmp_path, capsys, "--generated", str(empty), "--reference", str(reference))
    assert "holds no audio files" in _error(tmp_path, capsys, "--generated", str(empty), "--reference", str(reference))
    assert "does not exist" in _error(tmp_path, capsys, "--generated", str(tmp_path / "no"), "--reference",
                                      str(reference))

    single = tmp_path / "single"
    write_genre_folder(single, {"rock": 1}, base_frequency=200.0, noise=0.1, seed=5)
    message = _error(tmp_path, capsys, "--generated", str(generated), "--reference", str(single))
    assert "reference folder holds 1 audio file; KAD and FAD need at least 2" in message

    broken = generated / "gugak" / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    message = _error(tmp_path, capsys, "--generated", str(generated), "--reference", str(reference),
                     "--no-cache")
    assert f"{broken}: cannot" in message
    broken.unlink()

    tiny = generated / "gugak" / "tiny.wav"
    sf.write(tiny, np.zeros(100, dtype=np.float32), 16_000)  # 6 ms: too short for the log-mel
    message = _error(tmp_path, capsys, "--generated", str(generated), "--reference", str(reference), "--no-cache")
    assert f"{tiny}: cannot be embedded" in message and "too short" in message
    tiny.unlink()

    np.save(tmp_path / "five.npy", np.zeros((4, 5), dtype=np.float32))
    message = _error(tmp_path, capsys, "--generated-embeddings", str(tmp_path / "five.npy"), "--reference",
                     str(reference))
    assert "reference embeddings have dimension 128 but generated embeddings have dimension 5" in message

    nan = np.random.default_rng(0).standard_normal((4, 128)).astype(np.float32)
    nan[2, 7] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    message = _error(tmp_path, capsys, "--generated-embeddings", str(tmp_path / "nan.npy"), "--reference",
                     str(reference))
    assert "generated embeddings contain NaN or inf in 1 of 4 rows (rows [2]" in message

    message = _error(tmp_path, capsys, "--generated", str(generated), "--generated-embeddings",
                     str(tmp_path / "nan.npy"), "--reference", str(reference))
    assert "exactly one of --generated DIR or --generated-embeddings" in message

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("only one prompt\n")
    message = _error(tmp_path, capsys, "--generated", str(generated), "--reference", str(reference), "--prompts",
                     str(prompts))
    assert "1 prompts for 7 clips" in message

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,caption,genre\nelsewhere.wav,a prompt,rock\n")
    message = _error(tmp_path, capsys, "--generated", str(generated), "--reference", str(reference), "--manifest",
                     str(manifest))
    assert "row 2" in message and "is not one of the generated clips" in message


def test_outputs_are_atomic(folders, tmp_path: Path, monkeypatch) -> None:
    generated, reference = folders

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _run(tmp_path, "--generated", str(generated), "--reference", str(reference), "--no-cache")
    leftovers = [p.name for p in (tmp_path / "out").iterdir()] if (tmp_path / "out").exists() else []
    assert leftovers == []  # neither a partial metrics.json nor a temp file


def test_a_baseline_folder_adds_the_paired_comparison(folders, tmp_path: Path, capsys) -> None:
    """--baseline: the same file names made another way; the deltas equal the two folders' own scores' difference,
    with the paired interval metrics.paired gives, and a folder that lacks a file is refused with its name."""
    from metrics.bootstrap import paired_distance_difference

    generated, reference = folders
    baseline = tmp_path / "baseline"
    write_genre_folder(baseline, {"boom_bap": 3, "gugak": 4}, base_frequency=225.0, noise=0.1, seed=2)
    assert _run(tmp_path, "--generated", str(generated), "--reference", str(reference), "--baseline", str(baseline)) == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rows = report["comparison"]["rows"]
    assert report["comparison"]["paired_by"] == "file name" and set(rows) == {"all", "boom_bap", "gugak"}
    assert rows["all"]["kad_lora"] == pytest.approx(report["rows"]["all"]["kad"], rel=1e-12)
    embedder = MelStatisticsEmbedder()
    keys = sorted(p.relative_to(generated) for p in generated.rglob("*.wav"))
    gen, base = (_embed([folder / key for key in keys], embedder) for folder in (generated, baseline))
    ref = _embed(sorted(reference.rglob("*.wav")), embedder)
    expected = paired_distance_difference("kad", ref, base, gen)
    assert rows["all"]["kad_delta"] == pytest.approx(expected.value, rel=1e-4)
    assert rows["all"]["kad_delta_ci"] == pytest.approx([expected.low, expected.high], rel=1e-3, abs=1e-6)
    markdown = (tmp_path / "out" / "metrics.md").read_text()
    assert "--baseline" in markdown and "| KAD base | KAD LoRA | KAD delta |" in markdown and "paired" in markdown

    (baseline / "gugak" / sorted(p.name for p in (baseline / "gugak").glob("*.wav"))[0]).unlink()
    capsys.readouterr()
    assert main(["--generated", str(generated), "--reference", str(reference), "--baseline", str(baseline),
                 "--out", str(tmp_path / "refused"), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert not (tmp_path / "refused").exists()
    message = capsys.readouterr().err
    assert f"--baseline {baseline} lacks 1 clip(s) that --generated has: gugak/" in message
