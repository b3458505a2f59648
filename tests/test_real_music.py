"""``audioldm-lora build-real-music``: real pieces of music21's corpus rendered through pretty_midi's soundfont, as a
folder per tradition; deterministic by seed, no silent clip, failures reported and never skipped silently."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

pytest.importorskip("music21", reason="the demo extra (pip install .[demo]); .[dev] installs it")
pytest.importorskip("midirenderer", reason="the demo extra (pip install .[demo]); .[dev] installs it")

from audioldm_demo.real_music import catalogue  # noqa: E402
from audioldm_demo.real_music.catalogue import CatalogueError, build_real_music  # noqa: E402
from audioldm_demo.real_music.traditions import HELD_OUT, TRADITIONS  # noqa: E402

GENRES = ["irish_fiddle_tune", HELD_OUT]


def digests(root: Path) -> dict[str, str]:
    """Every file of the catalogue but its provenance files, by its bytes' hash."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))} | {"manifest.csv": hashlib.sha256(
                (root / "manifest.csv").read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_real_music(tmp_path_factory.mktemp("real") / "music", clips_per_genre=3, duration=1.28, seed=0,
                            genres=GENRES, clips_per_piece=2, reference_clips=2)


def rows_of(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_the_clips_have_the_rate_duration_genres_and_captions_asked(built: Path) -> None:
    assert sorted(p.name for p in built.iterdir() if p.is_dir()) == sorted([*GENRES, "licences"])
    rows = rows_of(built)
    assert [(r["genre"], r["split"]) for r in rows] == [
        (genre, split) for genre in GENRES for split in ["", "", "", "test", "test"]]
    for row in rows:
        info = sf.info(str(built / row["path"]))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 20480)
        assert row["caption"].startswith(row["genre"].replace("_", " ") + " music")
    assert {r["caption"] for r in rows} == {
        "irish fiddle tune music, a reel or jig from Ryan's Mammoth Collection, played on fiddle",
        "han folk song music, a Han Chinese folk song, played on koto"}


def test_no_clip_is_silent_and_each_comes_from_a_recorded_piece(built: Path) -> None:
    record = json.loads((built / "catalogue.json").read_text())
    for genre in GENRES:
        clips = record["traditions"][genre]["clips"]
        training = [c for c in clips if c["split"] == ""]
        references = [c for c in clips if c["split"] == "test"]
        assert len(training) == 3 and len({c["piece"] for c in training}) >= 2  # at most 2 clips per piece
        assert len(references) == 2  # from pieces no training clip comes from
        assert not {c["piece"] for c in training} & {c["piece"] for c in references}
        for clip in clips:
            audio, _ = sf.read(str(built / clip["file"]))
            assert (audio ** 2).mean() ** 0.5 >= 0.01, clip
    assert record["traditions"][HELD_OUT]["clips"][0]["piece"].startswith("essenFolksong/han")
    assert (built / "licences" / "essenFolksong.txt").is_file() and "TimGM6mb.sf2" in (built / "SOURCES.md").read_text()


def test_the_same_seed_writes_the_same_files_and_another_seed_other_pieces(built: Path, tmp_path: Path) -> None:
    again = build_real_music(tmp_path / "again", clips_per_genre=3, duration=1.28, seed=0, genres=GENRES,
                             clips_per_piece=2, reference_clips=2)
    assert digests(again) == digests(built)
    other = build_real_music(tmp_path / "other", clips_per_genre=3, duration=1.28, seed=1, genres=GENRES,
                             clips_per_piece=2)
    pieces = [{c["piece"] for c in json.loads((root / "catalogue.json").read_text())["traditions"][HELD_OUT]["clips"]}
              for root in (built, other)]
    assert pieces[0] != pieces[1]


def test_a_piece_that_fails_is_reported_and_a_tradition_that_cannot_fill_its_clips_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_parse = catalogue.parse_piece
    calls = {"count": 0}

    def every_other_fails(piece):
        calls["count"] += 1
        if calls["count"] % 2:
            raise ValueError(f"probe: cannot parse {piece.path.name}")
        return real_parse(piece)

    monkeypatch.setattr(catalogue, "parse_piece", every_other_fails)
    root = build_real_music(tmp_path / "half", clips_per_genre=2, duration=1.28, genres=[HELD_OUT], clips_per_piece=1)
    failures = json.loads((root / "catalogue.json").read_text())["traditions"][HELD_OUT]["failures"]
    assert len(failures) == 2 and all("probe: cannot parse han" in f["error"] for f in failures)

    def always_fails(piece):
        raise ValueError("probe: broken encoding")

    monkeypatch.setattr(catalogue, "parse_piece", always_fails)
    with pytest.raises(CatalogueError, match=r"Tradition 'han_folk_song' gave 0 of 2 training clips from \d+ pieces; \d+ failed "
                                             r"to parse or render .*probe: broken encoding"):
        build_real_music(tmp_path / "none", clips_per_genre=2, duration=1.28, genres=[HELD_OUT])
    assert not (tmp_path / "none").exists()  # nothing half-written


def test_the_command_explains_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from audioldm_demo.commands.build_real_music import main

    assert main([str(tmp_path / "x"), "--genres", "[gugak]"]) == 2
    assert "Unknown tradition(s) ['gugak']; choose from" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main([str(tmp_path / "taken"), "--genres", f"[{HELD_OUT}]", "--clips-per-genre", "1"]) == 2
    assert "already exists and was not built with these settings" in capsys.readouterr().err


def test_a_catalogue_built_with_the_same_settings_is_kept_and_other_settings_are_refused(built: Path) -> None:
    from audioldm_demo.commands.build_real_music import main

    stamp = (built / "catalogue.json").stat().st_mtime_ns
    same = ["--genres", f"[{','.join(GENRES)}]", "--clips-per-genre", "3", "--duration", "1.28",
            "--clips-per-piece", "2", "--reference-clips", "2"]
    assert main([str(built), *same]) == 0
    assert (built / "catalogue.json").stat().st_mtime_ns == stamp  # nothing rebuilt
    assert main([str(built), *same[:-1], "3"]) == 2  # more reference clips: not this catalogue
    assert (built / "catalogue.json").stat().st_mtime_ns == stamp


def test_only_the_start_of_a_long_piece_is_rendered() -> None:
    """The renderer plays a MIDI file to its last event; the catalogue cuts the file first (a mass movement lasts
    minutes, a catalogue needs seconds of it), including the late tempo and signature changes that end a file."""
    from audioldm_demo.real_music.render import render_midi, score_midi

    piece = next(p for p in TRADITIONS[2].pieces(catalogue.corpus_root()) if p.path.name == "madrigal.3.1.mxl")
    midi = score_midi(catalogue.parse_piece(piece), TRADITIONS[2].program)
    whole, start = render_midi(midi), render_midi(midi, max_seconds=5.0)
    assert whole.numel() > 60 * 16000  # the madrigal lasts minutes
    assert 5.0 * 16000 <= start.numel() <= 7.0 * 16000  # its first 5 s and the last notes' release
    torch.testing.assert_close(start[: 4 * 16000], whole[: 4 * 16000])


def test_every_tradition_renders_a_clip(tmp_path: Path) -> None:
    """All six repertories parse and sound on their instruments (one short clip each)."""
    root = build_real_music(tmp_path / "all", clips_per_genre=1, duration=1.28, clips_per_piece=1)
    record = json.loads((root / "catalogue.json").read_text())
    assert list(record["traditions"]) == [t.genre for t in TRADITIONS]
    assert {t["program"] for t in record["traditions"].values()} == {19, 52, 48, 110, 73, 107}
