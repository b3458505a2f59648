"""``audioldm-lora build-real-music``: real pieces of music21's corpus rendered through pretty_midi's soundfont, as a
folder per tradition; deterministic by seed, no silent clip, failures reported and never skipped silently."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import soundfile as sf

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
                            genres=GENRES, clips_per_piece=2)


def test_the_clips_have_the_rate_duration_genres_and_captions_asked(built: Path) -> None:
    assert sorted(p.name for p in built.iterdir() if p.is_dir()) == sorted([*GENRES, "licences"])
    with (built / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["genre"] for r in rows] == [GENRES[0]] * 3 + [GENRES[1]] * 3
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
        assert len(clips) == 3 and len({c["piece"] for c in clips}) >= 2  # at most 2 clips per piece
        for clip in clips:
            audio, _ = sf.read(str(built / clip["file"]))
            assert (audio ** 2).mean() ** 0.5 >= 0.01, clip
    assert record["traditions"][HELD_OUT]["clips"][0]["piece"].startswith("essenFolksong/han")
    assert (built / "licences" / "essenFolksong.txt").is_file() and "TimGM6mb.sf2" in (built / "SOURCES.md").read_text()


def test_the_same_seed_writes_the_same_files_and_another_seed_other_pieces(built: Path, tmp_path: Path) -> None:
    again = build_real_music(tmp_path / "again", clips_per_genre=3, duration=1.28, seed=0, genres=GENRES,
                             clips_per_piece=2)
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
    with pytest.raises(CatalogueError, match=r"Tradition 'han_folk_song' gave 0 of 2 clips from \d+ pieces; \d+ failed "
                                             r"to parse or render .*probe: broken encoding"):
        build_real_music(tmp_path / "none", clips_per_genre=2, duration=1.28, genres=[HELD_OUT])
    assert not (tmp_path / "none").exists()  # nothing half-written


def test_the_command_explains_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from audioldm_demo.commands.build_real_music import main

    assert main([str(tmp_path / "x"), "--genres", "[gugak]"]) == 2
    assert "Unknown tradition(s) ['gugak']; choose from" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main([str(tmp_path / "taken"), "--genres", f"[{HELD_OUT}]", "--clips-per-genre", "1"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_every_tradition_renders_a_clip(tmp_path: Path) -> None:
    """All six repertories parse and sound on their instruments (one short clip each)."""
    root = build_real_music(tmp_path / "all", clips_per_genre=1, duration=1.28, clips_per_piece=1)
    record = json.loads((root / "catalogue.json").read_text())
    assert list(record["traditions"]) == [t.genre for t in TRADITIONS]
    assert {t["program"] for t in record["traditions"].values()} == {19, 52, 48, 110, 73, 107}
