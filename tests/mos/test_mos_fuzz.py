"""Fuzzing listening-test answer files (issue 30): a real answer document with parts replaced by any JSON value,
removed, or the whole file replaced by other JSON or bytes. ``load_answers`` must accept it or raise
``MosInputError`` naming the file; ``FAST`` inputs in the fast tier, ``LONG`` in the slow tier."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from audioldm_lora.mos.answers import load_answers
from audioldm_lora.mos.errors import MosInputError
from tests.fuzz_helpers import FAST, LONG, expect, fuzz, json_values, write
from tests.mos.mos_helpers import synthetic_answers

MISSING = object()


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON document."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


def mutated(document: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """The document with up to three parts replaced by any JSON value or removed; or other JSON; or bytes."""
    places = paths(document)[1:]

    def apply(edits: list[tuple[tuple, Any]]) -> bytes:
        result = copy.deepcopy(document)
        for path, value in edits:
            parent = result
            try:
                for step in path[:-1]:
                    parent = parent[step]
                if value is MISSING:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = value
            except (KeyError, IndexError, TypeError):
                continue  # an earlier edit removed or replaced this place
        return json.dumps(result).encode()

    edit = st.tuples(st.sampled_from(places), st.one_of(st.just(MISSING), json_values))
    return st.one_of(st.lists(edit, min_size=1, max_size=3).map(apply), json_values.map(lambda v: json.dumps(v).encode()),
                     st.binary(max_size=200))


def answer_fuzz(built: dict, tmp_path: Path, examples: int) -> int:
    key = built["key"]
    document = synthetic_answers(key, "ann", lambda clip, trial, scale: 3, prefer=lambda trial, clips: clips[0])
    target = tmp_path / "answers.json"

    def check(data: bytes) -> None:
        write(target, data)
        expect(lambda: load_answers(target, key), (MosInputError,), str(target))

    return fuzz(mutated(document), check, examples)


def test_fuzz_answer_files_fast(built: dict, tmp_path: Path) -> None:
    assert answer_fuzz(built, tmp_path, FAST) >= FAST // 2


@pytest.mark.slow
def test_fuzz_answer_files_long(built: dict, tmp_path: Path) -> None:
    tried = answer_fuzz(built, tmp_path, LONG)
    print(f"fuzz MOS answer file: {tried} inputs")
    assert tried >= LONG * 0.9
