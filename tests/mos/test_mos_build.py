"""``mos build``: pairing, prompts, blinding, attention pages, and every bad-input message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mos_helpers import ITEMS, SAMPLE_RATE, write_clips

from audioldm_lora.commands.mos import main
from audioldm_lora.mos.audio import read_clip
from audioldm_lora.mos.degrade import degrade
from audioldm_lora.mos.errors import MosInputError
from audioldm_lora.mos.manifest import build_manifest
from audioldm_lora.mos.page import BuildOptions, build_page


def spectrum(x: np.ndarray) -> np.ndarray:
    """Magnitude spectrum."""
    return np.abs(np.fft.rfft(x))


def _page_config(out: Path) -> dict:
    text = (out / "test.js").read_text()
    return json.loads(text[text.index("=") + 1 : text.rindex(";")])


def test_build_writes_a_complete_blinded_page(built: dict, tmp_path: Path) -> None:
    out, key = built["out"], built["key"]
    assert {p.name for p in out.iterdir()} == {"index.html", "static", "test.js", "audio", "README.txt"}
    assert built["key_path"] == tmp_path / "page.key.json"  # outside the folder sent to listeners
    config = _page_config(out)
    assert config["test_id"] == key["test_id"]
    audio = {p.stem for p in (out / "audio").glob("*.wav")}
    assert audio == set(key["clips"])
    # 4 prompts x 2 systems real clips + 2 repeat copies + 1 anchor + 1 context copy
    assert len(audio) == 12
    trials = config["blocks"][0]["trials"]
    assert len(trials) == 6 and all(set(t["clips"]) <= audio for t in trials)
    roles = sorted(t["role"] for t in key["trials"].values())
    assert roles == ["anchor", "real", "real", "real", "real", "repeat"]
    assert [s["id"] for s in config["scales"]] == ["mos", "genre_fidelity"]
    assert {item["genre"] for item in config["items"]} == {"rock", "jazz"}
    assert (out / "index.html").read_text().count("Listening test") == 2


def test_no_system_name_or_source_path_in_the_page(built: dict, tmp_path: Path) -> None:
    forbidden = [b"sysalpha", b"sysbeta", str(tmp_path / "clips").encode(), b"rock/0000", b"0000.wav"]
    for path in built["out"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for word in forbidden:
                assert word not in data, f"{word!r} leaks into {path}"
    # within every page the clip order says nothing about the system: ids are sorted hashes
    for trial in _page_config(built["out"])["blocks"][0]["trials"]:
        assert trial["clips"] == sorted(trial["clips"])


def test_repeat_copies_are_identical_audio_and_the_anchor_is_degraded(built: dict) -> None:
    out, key = built["out"], built["key"]
    for clip_id, info in key["clips"].items():
        if info["role"] in ("repeat", "context"):
            assert (out / "audio" / f"{clip_id}.wav").read_bytes() == (
                out / "audio" / f"{info['source']}.wav"
            ).read_bytes()
        if info["role"] == "anchor":
            anchor = read_clip(out / "audio" / f"{clip_id}.wav").samples[:, 0]
            source = read_clip(out / "audio" / f"{info['source']}.wav").samples[:, 0]
            high = slice(int(2500 * len(source) / SAMPLE_RATE), None)  # above the 2 kHz low-pass: the 3 kHz partial
            assert spectrum(anchor)[high].max() < 0.5 * spectrum(source)[high].max()
            assert np.sqrt(np.mean(anchor**2)) == pytest.approx(np.sqrt(np.mean(source**2)), rel=0.35)


def test_degrade_is_deterministic_and_lowpassed() -> None:
    from audioldm_lora.mos.audio import Clip

    t = np.arange(16000) / 16000
    clip = Clip((0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)[:, None], 16000)
    a, b = degrade(clip, seed=3), degrade(clip, seed=3)
    assert np.array_equal(a.samples, b.samples) and a.samples.shape == clip.samples.shape
    tone = np.abs(np.fft.rfft(a.samples[:, 0]))[5000]
    assert tone < 0.05 * np.abs(np.fft.rfft(clip.samples[:, 0]))[5000]


def test_modes_ab_and_both_lay_out_pages(tmp_path: Path, clip_dirs: list[str]) -> None:
    ab = build_page(clip_dirs, tmp_path / "ab", BuildOptions(mode="ab"))
    key = json.loads(ab.key.read_text())
    assert [b["kind"] for b in key["blocks"]] == ["ab"]
    assert ab.n_trials == 4 + 1 + 1 and all(len(t["clips"]) == 2 for t in key["trials"].values())
    both = build_page(clip_dirs, tmp_path / "both", BuildOptions(mode="both", repeats=0, anchors=2))
    key = json.loads(both.key.read_text())
    assert [b["kind"] for b in key["blocks"]] == ["mos", "ab"]
    assert both.n_trials == (4 + 2) + (4 + 2)


def test_prompts_from_text_csv_and_jsonl(tmp_path: Path) -> None:
    specs = write_clips(tmp_path / "clips", sidecars=False)
    stems = sorted(stem for stem, _, _ in ITEMS)
    text = tmp_path / "prompts.txt"
    text.write_text("\n".join(f"prompt for {stem}" for stem in stems) + "\n")
    manifest = build_manifest(specs, text)
    assert [item.prompt for item in manifest.items] == [f"prompt for {stem}" for stem in stems]
    assert [item.genre for item in manifest.items] == [stem.split("/")[0] for stem in stems]  # from the folder
    table = tmp_path / "prompts.csv"
    table.write_text("path,prompt,genre\n" + "".join(f"sysalpha/{s}.wav,csv {s},g{i}\n" for i, s in enumerate(stems)))
    assert [(i.prompt, i.genre) for i in build_manifest(specs, table).items] == [
        (f"csv {s}", f"g{n}") for n, s in enumerate(stems)
    ]
    lines = tmp_path / "prompts.jsonl"
    lines.write_text("".join(json.dumps({"stem": s, "caption": f"j {s}"}) + "\n" for s in stems))
    assert [i.prompt for i in build_manifest(specs, lines).items] == [f"j {s}" for s in stems]


def test_no_prompts_at_all_gives_empty_prompts(tmp_path: Path) -> None:
    specs = write_clips(tmp_path / "clips", sidecars=False)
    manifest = build_manifest(specs)
    assert {item.prompt for item in manifest.items} == {""}


def _expect_error(tmp_path: Path, specs: list[str], options: BuildOptions, *needles: str) -> str:
    out = tmp_path / "page"
    with pytest.raises(MosInputError) as info:
        build_page(specs, out, options)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert not out.exists() and not (tmp_path / "page.key.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".page")], "staging left behind"
    return message


def test_error_missing_folder_and_bad_specs(tmp_path: Path, clip_dirs: list[str]) -> None:
    _expect_error(
        tmp_path, [clip_dirs[0], f"sysbeta={tmp_path / 'nope'}"], BuildOptions(), "sysbeta", "folder not found"
    )
    _expect_error(tmp_path, [clip_dirs[0]], BuildOptions(), "at least two --system")
    _expect_error(tmp_path, [clip_dirs[0], clip_dirs[0]], BuildOptions(), "given twice")
    _expect_error(tmp_path, [clip_dirs[0], "justaname"], BuildOptions(), "expected NAME=DIR")
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_error(tmp_path, [clip_dirs[0], f"sysbeta={empty}"], BuildOptions(), "no audio files")


def test_error_prompt_with_clips_for_only_one_system(tmp_path: Path, clip_dirs: list[str]) -> None:
    (tmp_path / "clips" / "sysbeta" / "jazz" / "0001.wav").unlink()
    (tmp_path / "clips" / "sysalpha" / "rock" / "0000.wav").unlink()
    message = _expect_error(tmp_path, clip_dirs, BuildOptions(), "2 prompt(s) lack a clip")
    assert "'jazz/0001': clips only for sysalpha; missing in sysbeta" in message
    assert "'rock/0000': clips only for sysbeta; missing in sysalpha" in message


def test_error_unreadable_and_empty_clips_are_all_listed(tmp_path: Path, clip_dirs: list[str]) -> None:
    broken = tmp_path / "clips" / "sysbeta" / "rock" / "0001.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    empty = tmp_path / "clips" / "sysalpha" / "jazz" / "0000.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    message = _expect_error(tmp_path, clip_dirs, BuildOptions(), "2 clip(s) cannot be used", str(broken), str(empty))
    assert "cannot decode audio" in message and "no samples" in message


def test_error_prompt_file_problems(tmp_path: Path, clip_dirs: list[str]) -> None:
    text = tmp_path / "p.txt"
    text.write_text("only one\n")
    _expect_error(tmp_path, clip_dirs, BuildOptions(prompts=str(text)), "1 prompts for 4 clips")
    table = tmp_path / "p.csv"
    table.write_text("path,prompt\nrock/0000,a\nrock/9999,b\n")
    _expect_error(tmp_path, clip_dirs, BuildOptions(prompts=str(table)), "'rock/9999'", "matches no clip")
    table.write_text("path,prompt\nrock/0000,a\n")
    _expect_error(tmp_path, clip_dirs, BuildOptions(prompts=str(table)), "no prompt for 3 clip(s)")
    lines = tmp_path / "p.jsonl"
    lines.write_text('{"path": "rock/0000", "prompt": "a"}\n{broken\n')
    _expect_error(tmp_path, clip_dirs, BuildOptions(prompts=str(lines)), "line 2 is not valid JSON")
    _expect_error(tmp_path, clip_dirs, BuildOptions(prompts=str(tmp_path / "absent.csv")), "prompt file not found")


def test_error_sidecars_that_disagree(tmp_path: Path, clip_dirs: list[str]) -> None:
    (tmp_path / "clips" / "sysbeta" / "rock" / "0000.json").write_text(json.dumps({"prompt": "something else"}))
    _expect_error(tmp_path, clip_dirs, BuildOptions(), "'rock/0000'", "sidecar prompts differ")
    (tmp_path / "clips" / "sysbeta" / "rock" / "0000.json").write_text("{not json")
    _expect_error(tmp_path, clip_dirs, BuildOptions(), "0000.json", "not valid JSON")


def test_error_existing_output_and_key_inside_page(tmp_path: Path, clip_dirs: list[str]) -> None:
    out = tmp_path / "page"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MosInputError, match="not empty"):
        build_page(clip_dirs, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(MosInputError, match="must not lie inside the page folder"):
        build_page(clip_dirs, tmp_path / "other", BuildOptions(key=str(tmp_path / "other" / "key.json")))
    replaced = build_page(clip_dirs, out, BuildOptions(overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "index.html").is_file() and replaced.key.is_file()


def test_cli_build_reports_errors_with_status_2(
    tmp_path: Path, clip_dirs: list[str], capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "build",
                "--system",
                clip_dirs[0],
                "--system",
                clip_dirs[1],
                "--out",
                str(out),
                "--mode",
                "both",
                "--second-scale",
                "Genre fidelity",
                "--normalize",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Built listening test mos-" in printed and "keep it private" in printed
    assert main(["build", "--system", clip_dirs[0], "--out", str(tmp_path / "x")]) == 2
    assert "at least two --system" in capsys.readouterr().err
    assert main(["build", "--out", str(tmp_path / "x")]) == 2  # missing --system: the parser's own message
    assert main(["--help"]) == 0
