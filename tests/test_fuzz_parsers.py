"""Fuzzing every file the project reads from a user (issue 30): manifests, sidecar captions, clip sidecars, prompt
files, WebDataset members, ``adapter_info.json`` and sweep files. The MOS answer files: tests/mos/test_mos_fuzz.py.

Each parser gets ``FAST`` generated inputs in the fast tier and ``LONG`` in the slow tier; an input passes when the
parser returns or raises the project's user error naming the file (and the row where the parser reports rows).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from datamodules.bad_items import BadItemError
from datamodules.captions import CaptionPolicy
from datamodules.clip_folder import ClipFolderError, read_prompt_file, read_sidecar
from datamodules.errors import DataSourceError
from datamodules.manifest import read_csv_manifest, read_jsonl_manifest, scan_genre_folders
from datamodules.webdataset_source import WebDatasetSource
from lightning_modules.adapter_files import AdapterError, AdapterSpec, read_adapter_info
from tests.data_helpers import clip, wav_bytes
from tests.fuzz_helpers import FAST, LONG, csv_bytes, expect, fuzz, json_bytes, json_values, jsonl_bytes, write

MANIFEST_COLUMNS = ["path", "caption", "genre", "start", "end", "split"]
WORK = Path(tempfile.mkdtemp(prefix="audioldm-lora-fuzz-"))  # one folder, rewritten per input


def manifest_csv(data: bytes) -> None:
    path = write(WORK / "manifest.csv", data)
    expect(lambda: read_csv_manifest(path), (DataSourceError,), str(path))
    problems: list = []
    expect(lambda: read_csv_manifest(path, problems=problems), (DataSourceError,), str(path))
    assert all(str(path) in problem.source and " row " in problem.source for problem in problems), problems


def manifest_jsonl(data: bytes) -> None:
    path = write(WORK / "manifest.jsonl", data)
    expect(lambda: read_jsonl_manifest(path), (DataSourceError,), str(path))
    problems: list = []
    expect(lambda: read_jsonl_manifest(path, problems=problems), (DataSourceError,), str(path))
    assert all(str(path) in problem.source and " line " in problem.source for problem in problems), problems


AUDIO = wav_bytes(clip("gugak", 0, 0.6))


def sidecar_caption(data: bytes) -> None:
    root = WORK / "folder"
    write(root / "gugak" / "clip.wav", AUDIO)
    write(root / "gugak" / "clip.txt", data)
    for fallback in ("{genre} music", None):
        problems: list = []
        items = scan_genre_folders(root, CaptionPolicy("{caption}", fallback), problems=problems)
        assert len(items) + len(problems) == 1
        assert all(problem.source == str(root / "gugak" / "clip.wav") for problem in problems)


def clip_sidecar(data: bytes) -> None:
    write(WORK / "clips" / "a.wav", AUDIO)
    path = write(WORK / "clips" / "a.json", data)
    expect(lambda: read_sidecar(WORK / "clips" / "a.wav"), (ClipFolderError,), str(path))


@st.composite
def prompt_files(draw: Any) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".txt", ".csv", ".jsonl", ".json"]))
    keys = ["path", "prompt", "genre", "file", "caption"]
    body = {".txt": st.one_of(st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
                              st.binary(max_size=80)),
            ".csv": csv_bytes(keys), ".jsonl": jsonl_bytes(keys),
            ".json": json_bytes(st.one_of(json_values, st.dictionaries(st.sampled_from(["a", "b", "x"]), json_values),
                                          st.lists(st.dictionaries(st.sampled_from(keys), json_values))))}[suffix]
    return suffix, draw(body)


def prompt_file(case: tuple[str, bytes]) -> None:
    suffix, data = case
    path = write(WORK / f"prompts{suffix}", data)
    expect(lambda: read_prompt_file(path, ["a", "b"]), (ClipFolderError,), str(path))


SHARD = str(write(WORK / "shards" / "train-000.tar", b""))  # the source checks that its shards exist
member_bytes = st.one_of(st.binary(max_size=60), st.text(max_size=20).map(str.encode), st.just(AUDIO),
                         json_values.map(lambda v: __import__("json").dumps(v).encode()),
                         st.dictionaries(st.sampled_from(["caption", "text", "genre", "start", "end"]), json_values)
                         .map(lambda v: __import__("json").dumps(v).encode()))
webdataset_samples = st.dictionaries(st.sampled_from(["json", "txt", "cls", "genre", "wav", "flac", "mp3", "png"]),
                                     member_bytes, max_size=5)


def webdataset_members(members: dict[str, bytes]) -> None:
    source = WebDatasetSource(SHARD, CaptionPolicy("{caption}", "{genre} music"))
    sample = {"__key__": "clip0001", "__url__": SHARD, **members}
    record = expect(lambda: source.to_record(sample), (BadItemError,), f"{SHARD}#clip0001")
    if record is not None:
        item, audio = record
        assert item.genre and isinstance(audio, bytes)


def adapter_info(data: bytes) -> None:
    folder = WORK / "adapter"
    path = write(folder / "adapter_info.json", data)
    info = expect(lambda: read_adapter_info(AdapterSpec(name="mine", directory=folder)), (AdapterError,), str(path))
    assert info is None or isinstance(info, dict)


sweep_documents = st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries({}, optional={
        "method": st.one_of(st.sampled_from(["grid", "random", "bayes", "nope"]), json_values),
        "metric": json_values,
        "parameters": st.one_of(json_values, st.dictionaries(
            st.sampled_from(["model.init_args.adapters.unet.rank", "model.init_args.adapters.unet.alpha", "x"]),
            st.one_of(json_values, st.dictionaries(st.sampled_from(["values", "value", "min", "max", "distribution"]),
                                                   json_values)))),
    }).map(lambda v: __import__("yaml").safe_dump(v).encode()),
    json_values.map(lambda v: __import__("yaml").safe_dump(v).encode()),
)


def sweep_file(data: bytes) -> None:
    from audioldm_lora.sweep.spec import SweepSpecError, grid_points, load_sweep

    path = write(WORK / "sweep.yaml", data)
    spec = expect(lambda: load_sweep(path), (SweepSpecError,), str(path))
    if spec is not None and spec.get("method") == "grid":
        expect(lambda: grid_points(spec), (SweepSpecError,))


PARSERS = {
    "manifest csv": (csv_bytes(MANIFEST_COLUMNS), manifest_csv),
    "manifest jsonl": (jsonl_bytes(MANIFEST_COLUMNS), manifest_jsonl),
    "sidecar caption": (st.binary(max_size=120), sidecar_caption),
    "clip sidecar": (json_bytes(json_values), clip_sidecar),
    "prompt file": (prompt_files(), prompt_file),
    "webdataset members": (webdataset_samples, webdataset_members),
    "adapter_info.json": (json_bytes(json_values), adapter_info),
    "sweep file": (sweep_documents, sweep_file),
}


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_fuzz_fast(parser: str) -> None:
    strategy, check = PARSERS[parser]
    assert fuzz(strategy, check, FAST) >= FAST // 2


@pytest.mark.slow
@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_fuzz_long(parser: str) -> None:
    strategy, check = PARSERS[parser]
    tried = fuzz(strategy, check, LONG)
    print(f"fuzz {parser}: {tried} inputs")
    assert tried >= LONG * 0.9
