"""One score to 16 kHz mono audio: every part on the tradition's General MIDI instrument, written as MIDI by music21
and played through ``TimGM6mb.sf2`` (the General MIDI soundfont in pretty_midi's wheel) by midirenderer, a Rust
soundfont synthesizer with manylinux wheels (tinysoundfont's wheel declares pyaudio, which needs portaudio headers
to build; pyfluidsynth needs Debian's libfluidsynth). Rendering is deterministic: the same score gives the same
samples.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16_000


@functools.lru_cache(maxsize=1)
def soundfont() -> tuple[Path, bytes]:
    """The path and bytes of pretty_midi's General MIDI soundfont (read once)."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    return path, path.read_bytes()


def score_midi(score, program: int, transpose: int = 0) -> bytes:
    """The MIDI file of a music21 score with every part on General MIDI ``program`` (0-based), ``transpose``
    semitones up; the score is changed in place."""
    from music21 import instrument, midi

    if transpose:
        score.transpose(transpose, inPlace=True)
    for part in score.parts:
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            part.remove(old, recurse=True)
        part.insert(0, instrument.instrumentFromMidiProgram(program))
    return midi.translate.streamToMidiFile(score).writestr()


def render_midi(midi_bytes: bytes, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """The MIDI file played through the soundfont: mono ``[samples]`` at ``sample_rate``."""
    import midirenderer

    wav = midirenderer.render_wave_from(soundfont()[1], midi_bytes)
    data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.mean(axis=1))
    return torchaudio.functional.resample(mono, rate, sample_rate) if rate != sample_rate else mono
