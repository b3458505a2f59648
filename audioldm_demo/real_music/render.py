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


def truncated_midi(midi_bytes: bytes, seconds: float) -> bytes:
    """The MIDI file without the notes that start after ``seconds`` (notes still sounding then end there).

    A movement of a mass lasts minutes while a catalogue cuts a few seconds from its start; the soundfont renderer
    plays the whole file, so the file is cut first (pretty_midi reads the tempo map, so this is in seconds).
    """
    import pretty_midi

    music = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes))
    # The file ends at its last event of any kind (a late tempo, key or time signature change, a lyric), and the
    # renderer plays up to there: every kind is cut.
    end_tick = music.time_to_tick(seconds)
    music._tick_scales = [scale for scale in music._tick_scales if scale[0] < end_tick] or music._tick_scales[:1]
    for name in ("time_signature_changes", "key_signature_changes", "lyrics", "text_events"):
        setattr(music, name, [event for event in getattr(music, name) if event.time < seconds])
    for instrument in music.instruments:
        instrument.notes = [note for note in instrument.notes if note.start < seconds]
        for note in instrument.notes:
            note.end = min(note.end, seconds)
        instrument.control_changes = [c for c in instrument.control_changes if c.time < seconds]
        instrument.pitch_bends = [b for b in instrument.pitch_bends if b.time < seconds]
    out = io.BytesIO()
    music.write(out)
    return out.getvalue()


def render_midi(midi_bytes: bytes, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> torch.Tensor:
    """The MIDI file played through the soundfont (only its first ``max_seconds`` when given): mono ``[samples]``
    at ``sample_rate``."""
    import midirenderer

    if max_seconds is not None:
        midi_bytes = truncated_midi(midi_bytes, max_seconds)
    wav = midirenderer.render_wave_from(soundfont()[1], midi_bytes)
    data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.mean(axis=1))
    return torchaudio.functional.resample(mono, rate, sample_rate) if rate != sample_rate else mono
