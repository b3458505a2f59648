"""Per-listener presentation order, identical in Python and in the page's JavaScript (``static/mos.js``).

The page derives a 32-bit seed from the test id and the listener id (FNV-1a over their UTF-8 bytes), draws from
a mulberry32 generator, and Fisher-Yates-shuffles the trials of each block, then the clips of each trial in
presented order. This module implements the same integer arithmetic so that ``mos analyze`` can recompute the
order from the answer file and reject files whose recorded order does not match (edited or corrupted files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

MASK32 = 0xFFFFFFFF
T = TypeVar("T")


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a hash of the UTF-8 bytes of ``text``."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * 0x01000193) & MASK32
    return value


def listener_seed(test_id: str, listener_id: str) -> int:
    """The listener's seed: :func:`fnv1a32` of ``"<test_id>:<listener_id>"``."""
    return fnv1a32(f"{test_id}:{listener_id}")


def _imul(a: int, b: int) -> int:
    """JavaScript ``Math.imul`` on unsigned 32-bit operands, returned unsigned."""
    return (a * b) & MASK32


def mulberry32(seed: int) -> Callable[[], float]:
    """A generator of floats in [0, 1): the mulberry32 algorithm, matching ``mulberry32`` in mos.js bit for bit."""
    state = seed & MASK32

    def draw() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & MASK32
        t = _imul(state ^ (state >> 15), state | 1)
        t = ((t + _imul(t ^ (t >> 7), t | 61)) & MASK32) ^ t
        return ((t ^ (t >> 14)) & MASK32) / 4294967296.0

    return draw


def shuffle(values: Sequence[T], draw: Callable[[], float]) -> list[T]:
    """Fisher-Yates shuffle (from the end), as in mos.js: ``j = floor(draw() * (i + 1))``."""
    out = list(values)
    for i in range(len(out) - 1, 0, -1):
        j = int(draw() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


def presentation_plan(blocks: list[dict[str, Any]], test_id: str, listener_id: str) -> list[dict[str, Any]]:
    """The trials in the order a listener sees them, each with its clips in on-screen order.

    ``blocks`` is the page configuration's list of ``{"kind", "trials": [{"id", "item", "clips"}]}``; blocks keep
    their order (MOS before A/B), trials are shuffled within a block.
    """
    draw = mulberry32(listener_seed(test_id, listener_id))
    plan = []
    for block in blocks:
        for trial in shuffle(block["trials"], draw):
            plan.append({"trial": trial["id"], "kind": block["kind"], "clips": shuffle(trial["clips"], draw)})
    return plan
