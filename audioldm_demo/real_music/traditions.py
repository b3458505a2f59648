"""The traditions of the real-music catalogue: which pieces of music21's corpus, on which General MIDI instrument,
under which caption.

Each tradition has its own repertory and its own instrument, so that a genre is told apart by both its musical
language and its timbre (as genres are in the wild). The held-out one, Han Chinese folk song on the koto, plays the
part Korean traditional music plays in the paper: a tradition the base model never heard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ABC_TUNE = re.compile(r"^X:\s*(\d+)", re.MULTILINE)
"""An ABC file holds many tunes, each starting with an ``X:<number>`` line (music21 parses one by that number)."""


@dataclass(frozen=True)
class PieceRef:
    """One piece of the corpus: its file and, for a collection of ABC tunes, the tune's number."""

    path: Path
    number: int | None = None

    def describe(self, corpus_root: Path) -> str:
        """``bach/bwv66.6.mxl`` or ``essenFolksong/han1.abc#7``: where the piece is in music21's corpus."""
        relative = self.path.relative_to(corpus_root).as_posix()
        return relative if self.number is None else f"{relative}#{self.number}"


@dataclass(frozen=True)
class Tradition:
    """A genre of the catalogue: a corpus repertory played on one General MIDI instrument."""

    genre: str
    description: str
    instrument: str
    program: int  # General MIDI program, 0-based (19: church organ)
    corpus_files: tuple[str, ...]  # corpus-relative globs
    transpose: int = 0  # semitones, into the instrument's comfortable range

    @property
    def caption(self) -> str:
        """What the clip is, in words a prompt would use: the tradition and its instrument."""
        return f"{self.genre.replace('_', ' ')} music, {self.description}, played on {self.instrument}"

    def pieces(self, corpus_root: Path) -> list[PieceRef]:
        """Every piece of the repertory, in a fixed order (files sorted; ABC tunes by their number)."""
        refs: list[PieceRef] = []
        for pattern in self.corpus_files:
            for path in sorted(corpus_root.glob(pattern)):
                if path.suffix == ".abc":
                    numbers = sorted({int(n) for n in ABC_TUNE.findall(path.read_text(encoding="latin-1"))})
                    refs += [PieceRef(path, number) for number in numbers]
                else:
                    refs.append(PieceRef(path))
        return refs


TRADITIONS: tuple[Tradition, ...] = (
    Tradition("baroque_chorale", "a four-part Bach chorale", "church organ", 19, ("bach/bwv*.mxl",)),
    Tradition("renaissance_polyphony", "Palestrina's vocal polyphony", "choir", 52, ("palestrina/*.krn",)),
    Tradition("madrigal", "a Monteverdi madrigal", "string ensemble", 48, ("monteverdi/madrigal.*.mxl",)),
    Tradition("irish_fiddle_tune", "a reel or jig from Ryan's Mammoth Collection", "fiddle", 110,
              ("ryansMammoth/*.abc",)),
    Tradition("german_folk_song", "a German folk song from Erk's Liederhort", "flute", 73,
              ("essenFolksong/erk*.abc",), transpose=12),
    Tradition("han_folk_song", "a Han Chinese folk song", "koto", 107, ("essenFolksong/han*.abc",)),
)
HELD_OUT = "han_folk_song"
"""The tradition the toy base never hears; the demo's LoRA learns it."""


def tradition(genre: str) -> Tradition:
    """The tradition named ``genre``.

    Raises:
        KeyError: naming the traditions there are.
    """
    for candidate in TRADITIONS:
        if candidate.genre == genre:
            return candidate
    raise KeyError(f"No tradition {genre!r}; there are {[t.genre for t in TRADITIONS]}.")
