"""The test design: which trials exist, which clips each holds, and where the attention checks are.

Pure data, no file access, so that it can be tested on its own and written both into the page (blinded) and into
the key (unblinded). Clip identifiers are salted hashes: without the salt, which only the key holds, nothing in
an identifier says which system made the clip.

Trials come in blocks: a ``mos`` block (one trial per prompt, all systems' clips, each rated on every scale) and
an ``ab`` block (one trial per prompt and pair of systems: which clip is better). Each block gets attention
checks that look like ordinary trials:

* ``repeat``: a copy of a real trial under fresh clip identifiers; a listener should rate it as before.
* ``anchor``: a copy of a real trial in which one clip is replaced by a clearly degraded version (MOS), or the
  degraded clip against its own original (A/B); a listener should rate it at the bottom, or prefer the original.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

import numpy as np

from .manifest import Manifest

MODES = ("mos", "ab", "both")


@dataclass
class ClipSpec:
    """One audio file of the page. ``source`` is the real clip it copies (None for a real clip)."""

    id: str
    system: str
    item: int
    role: str  # "real", "repeat", "context" (a plain copy beside an anchor) or "anchor" (degraded copy)
    source: str | None = None


@dataclass
class TrialSpec:
    """One screen of the page: a prompt (``item``) and its clips. ``original`` links a repeat to its trial."""

    kind: str  # "mos" or "ab"
    item: int
    role: str  # "real", "repeat" or "anchor"
    clips: list[str]
    id: str = ""
    original: TrialSpec | None = None
    anchor: str | None = None  # the degraded clip's id in an anchor trial


@dataclass
class Design:
    """Everything the page and the key are written from."""

    test_id: str
    salt: str
    manifest: Manifest
    clips: dict[str, ClipSpec] = field(default_factory=dict)
    blocks: list[tuple[str, list[TrialSpec]]] = field(default_factory=list)

    def trials(self) -> list[TrialSpec]:
        """All trials, block by block."""
        return [trial for _, trials in self.blocks for trial in trials]


class _Ids:
    """Salted, collision-checked clip identifiers."""

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self.counter = itertools.count()
        self.used: set[str] = set()

    def new(self) -> str:
        while True:
            digest = hashlib.sha256(f"{self.salt}:{next(self.counter)}".encode()).hexdigest()[:20]
            if digest not in self.used:
                self.used.add(digest)
                return digest


def _copy(design: Design, ids: _Ids, source: str, role: str) -> str:
    """Add a copy of clip ``source`` under a fresh id and return the id."""
    real = design.clips[source]
    clip = ClipSpec(ids.new(), real.system, real.item, role, source)
    design.clips[clip.id] = clip
    return clip.id


def _pick(rng: np.random.Generator, count: int, avoid: set[int], n_items: int) -> list[int]:
    """``count`` distinct item indices, preferring ones not in ``avoid`` (attention checks on different prompts)."""
    order = [int(i) for i in rng.permutation(n_items)]
    order = [i for i in order if i not in avoid] + [i for i in order if i in avoid]
    return order[: min(count, n_items)]


def make_design(
    manifest: Manifest,
    *,
    mode: str,
    test_id: str,
    salt: str,
    repeats: int = 1,
    anchors: int = 1,
    seed: int = 0,
) -> Design:
    """Lay out the trials of a test over ``manifest`` (see the module doc); ``seed`` fixes the build's choices."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    rng = np.random.default_rng(seed)
    design = Design(test_id=test_id, salt=salt, manifest=manifest)
    ids = _Ids(salt)
    real: dict[tuple[int, str], str] = {}
    for index, item in enumerate(manifest.items):
        for system in manifest.systems:
            clip = ClipSpec(ids.new(), system, index, "real")
            design.clips[clip.id] = clip
            real[index, system] = clip.id
    n_items = len(manifest.items)
    if mode in ("mos", "both"):
        trials = [TrialSpec("mos", i, "real", sorted(real[i, s] for s in manifest.systems)) for i in range(n_items)]
        repeat_items = _pick(rng, repeats, set(), n_items)
        for i in repeat_items:
            copies = sorted(_copy(design, ids, real[i, s], "repeat") for s in manifest.systems)
            trials.append(TrialSpec("mos", i, "repeat", copies, original=trials[i]))
        for i in _pick(rng, anchors, set(repeat_items), n_items):
            degraded_system = manifest.systems[int(rng.integers(len(manifest.systems)))]
            clips, anchor = [], ""
            for system in manifest.systems:
                if system == degraded_system:
                    anchor = _copy(design, ids, real[i, system], "anchor")
                    clips.append(anchor)
                else:
                    clips.append(_copy(design, ids, real[i, system], "context"))
            trials.append(TrialSpec("mos", i, "anchor", sorted(clips), original=trials[i], anchor=anchor))
        design.blocks.append(("mos", trials))
    if mode in ("ab", "both"):
        pairs = list(itertools.combinations(manifest.systems, 2))
        trials = [
            TrialSpec("ab", i, "real", sorted([real[i, a], real[i, b]])) for i in range(n_items) for a, b in pairs
        ]
        n_real = len(trials)
        repeat_trials = [int(t) for t in rng.permutation(n_real)[: min(repeats, n_real)]]
        for t in repeat_trials:
            original = trials[t]
            copies = sorted(_copy(design, ids, clip, "repeat") for clip in original.clips)
            trials.append(TrialSpec("ab", original.item, "repeat", copies, original=original))
        for i in _pick(rng, anchors, {trials[t].item for t in repeat_trials}, n_items):
            system = manifest.systems[int(rng.integers(len(manifest.systems)))]
            anchor = _copy(design, ids, real[i, system], "anchor")
            context = _copy(design, ids, real[i, system], "context")
            trials.append(TrialSpec("ab", i, "anchor", sorted([anchor, context]), anchor=anchor))
        design.blocks.append(("ab", trials))
    number = itertools.count(1)
    for index, (kind, trials) in enumerate(design.blocks):
        shuffled = [trials[int(k)] for k in rng.permutation(len(trials))]
        for trial in shuffled:
            trial.id = f"t{next(number):03d}"
        design.blocks[index] = (kind, shuffled)
    return design
