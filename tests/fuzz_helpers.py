"""Property-based fuzzing of the project's input parsers with hypothesis (issue 30).

A parser passes an input when it returns, or when it raises one of the project's user errors whose message names
the file (and the row or entry, where the parser says so). Anything else (a ``KeyError``, a ``UnicodeDecodeError``,
an ``AttributeError`` on a YAML list...) is a failure. Two profiles: ``FAST`` examples per parser in ``make test``'s
fast tier, ``LONG`` in the slow tier (the figure docs/reliability.md reports).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = 60
LONG = 1000  # per CI run, with a fresh random seed each time (not derandomised): coverage accumulates across runs

# JSON values of every kind, nested a little.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def json_bytes(values: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """JSON documents of ``values``, and sometimes arbitrary bytes instead."""
    return st.one_of(values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200))


def csv_bytes(columns: list[str]) -> st.SearchStrategy[bytes]:
    """CSV files whose header mixes ``columns`` with stray names and whose rows hold any text (ragged too), and
    sometimes arbitrary bytes."""
    header = st.lists(st.sampled_from([*columns, "extra", ""]), min_size=0, max_size=len(columns) + 1)
    rows = st.lists(st.lists(st.text(max_size=16), max_size=len(columns) + 2), max_size=6)

    def render(parts: tuple[list[str], list[list[str]]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(parts[0])
        writer.writerows(parts[1])
        return buffer.getvalue().encode("utf-8", "surrogatepass")

    return st.one_of(st.tuples(header, rows).map(render), st.binary(max_size=300))


def jsonl_bytes(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSON-lines files of objects over ``keys`` (values of any type), other JSON values, and arbitrary lines."""
    objects = st.dictionaries(st.sampled_from([*keys, "other"]), json_values, max_size=len(keys) + 1)
    line = st.one_of(objects.map(lambda v: json.dumps(v).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                     st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b))
    return st.lists(line, max_size=6).map(lambda lines: b"\n".join(lines))


def expect(call: Callable[[], Any], errors: tuple[type[BaseException], ...], *names: str) -> Any:
    """Run ``call``; a raised error must be one of ``errors`` and its message must name each of ``names``."""
    try:
        return call()
    except errors as error:
        message = str(error)
        for name in names:
            assert name in message, f"the message does not name {name!r}: {message}"
        return None


def fuzz(strategy: st.SearchStrategy, check: Callable[[Any], None], examples: int) -> int:
    """Run ``check`` on ``examples`` generated inputs; return how many were tried."""
    tried = [0]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=examples <= FAST,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(strategy)
    def run(data: Any) -> None:
        tried[0] += 1
        check(data)

    run()
    return tried[0]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
