"""The clip folder format: one writer and one reader for sidecars and prompt files, shared by every tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audioldm_lora.mos.errors import MosInputError
from audioldm_lora.mos.prompts import load_prompt_file
from datamodules.clip_folder import ClipFolderError, clip_stem, read_prompt_file, read_sidecar, slugify, write_sidecar
from metrics.clip_labels import EvaluationInputError, discover_clips, label_clips

STEMS = ["jazz/00000_jazz_seed0", "jazz/00001_jazz_seed1"]


@given(st.text(max_size=80))
def test_slugs_are_file_name_safe(text: str) -> None:
    slug = slugify(text)
    assert slug and len(slug) <= 48 and set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")


def test_sidecars_round_trip(tmp_path: Path) -> None:
    wav = tmp_path / f"{clip_stem(3, 'Boom Bap, 90 BPM!', 7)}.wav"
    assert wav.name == "00003_boom_bap_90_bpm_seed7.wav"
    assert read_sidecar(wav) is None
    write_sidecar(wav, {"prompt": "boom bap", "seed": 7, "steps": 3})
    assert read_sidecar(wav) == {"prompt": "boom bap", "seed": 7, "steps": 3}
    wav.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ClipFolderError, match="must hold a JSON object, not list"):
        read_sidecar(wav)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("prompts.txt", "swing\nbebop\n"),
        ("prompts.csv", "path,prompt,genre\njazz/00000_jazz_seed0.wav,swing,jazz\njazz/00001_jazz_seed1,bebop,\n"),
        ("prompts.jsonl", '{"file": "00000_jazz_seed0", "caption": "swing", "genre": "jazz"}\n'
                          '{"path": "sys/jazz/00001_jazz_seed1.wav", "prompt": "bebop"}\n'),
        ("prompts.json", json.dumps([{"stem": "jazz/00000_jazz_seed0", "text": "swing", "genre": "jazz"},
                                     {"path": "jazz/00001_jazz_seed1", "prompt": "bebop"}])),
        ("mapping.json", json.dumps({"jazz/00000_jazz_seed0.wav": "swing", "00001_jazz_seed1": "bebop"})),
    ],
)
def test_every_prompt_file_format_reads_the_same(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    found = read_prompt_file(path, STEMS)
    assert {stem: entry["prompt"] for stem, entry in found.items()} == {STEMS[0]: "swing", STEMS[1]: "bebop"}
    # The MOS kit and evaluation read it through the same function (the JSON mapping used to work for one only).
    assert {stem: info.prompt for stem, info in load_prompt_file(path, STEMS).items()} == {STEMS[0]: "swing",
                                                                                          STEMS[1]: "bebop"}


def test_evaluation_labels_clips_from_the_same_formats(tmp_path: Path) -> None:
    (tmp_path / "clips" / "jazz").mkdir(parents=True)
    for stem in STEMS:
        (tmp_path / "clips" / f"{stem}.wav").write_bytes(b"")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"00000_jazz_seed0": "swing", "00001_jazz_seed1": "bebop"}))
    clips = label_clips(discover_clips(tmp_path / "clips", "generated"), prompts=mapping)
    assert [(clip.prompt, clip.genre) for clip in clips] == [("swing", "jazz"), ("bebop", "jazz")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.txt", "only one\n", "1 prompts for 2 clips"),
        ("p.csv", "", "no header row"),
        ("p.jsonl", '{"path": "x"\n', "line 1 is not valid JSON"),
        ("p.json", '"text"', "expected a JSON object"),
        ("p.csv", "path,prompt\nnowhere,swing\n", "entry 1 names 'nowhere', which matches no clip"),
        ("p.csv", "path,genre\njazz/00000_jazz_seed0,jazz\n", "entry 1 lacks a path or a prompt"),
        ("p.txt", "swing\nbe\udc80bop\n", "not UTF-8 text"),  # found by fuzzing: was a UnicodeDecodeError
    ],
)
def test_bad_prompt_files_are_named_in_every_tool(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ClipFolderError, match=message):
        read_prompt_file(path, STEMS)
    with pytest.raises(MosInputError, match=message):
        load_prompt_file(path, STEMS)
    (tmp_path / "clips" / "jazz").mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        (tmp_path / "clips" / f"{stem}.wav").write_bytes(b"")
    with pytest.raises(EvaluationInputError, match=message):
        label_clips(discover_clips(tmp_path / "clips", "generated"), prompts=path)
