"""Real music for the demo world, offline: real compositions from music21's corpus played on the sampled
instruments of the General MIDI soundfont that pretty_midi's wheel ships.

- :mod:`audioldm_demo.real_music.traditions`: the six traditions (five for the toy base, one held out), each a
  corpus repertory, an instrument and a caption.
- :mod:`audioldm_demo.real_music.render`: one score to 16 kHz mono audio through the soundfont.
- :mod:`audioldm_demo.real_music.catalogue`: ``build-real-music``'s genre-folder catalogue, deterministic by seed.
"""
