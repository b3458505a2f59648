"""The offline demo and test scaffolding, kept out of the framework's core packages.

Nothing here is needed to fine-tune a real AudioLDM: it builds what the offline world lacks (no weights, no data).

- :mod:`audioldm_demo.tiny`: a tiny random AudioLDM (real geometry, random weights) that proves the plumbing runs;
  :class:`audioldm_demo.models.TinyAudioLDMLoRA` builds it on first use (``configs/tiny.yaml``);
  :mod:`audioldm_demo.tiny_audioldm2` and ``TinyAudioLDM2LoRA`` the same for AudioLDM2 (``configs/tiny_audioldm2.yaml``).
- :mod:`audioldm_demo.synthetic`: procedural genre audio; :class:`audioldm_demo.data.SyntheticGenreDataModule`
  writes it into its own cache folder on first use (``configs/tiny.yaml``, ``configs/demo_synthetic.yaml``).
- :mod:`audioldm_demo.toy_base`, :mod:`audioldm_demo.toy_training`, :mod:`audioldm_demo.toy_eval`,
  :mod:`audioldm_demo.griffin_lim_vocoder`: the toy AudioLDM, trained on genres A to E of a world
  (:mod:`audioldm_demo.toy_world`: a real-music catalogue for ``make demo``, or the procedural genres for
  ``make demo-synthetic``), and its KAD/FAD report on the held-out genre F.
- :mod:`audioldm_demo.real_music`: the real-music catalogue (music21's corpus through a General MIDI soundfont).
- :mod:`audioldm_demo.commands`: the ``build-tiny``, ``build-toy-base``, ``toy-report``, ``synth-data`` and
  ``build-real-music`` tools.

The classes are imported lazily (``audioldm_demo.TinyAudioLDMLoRA`` works in a config's ``class_path``) so that a
tool importing one demo module does not pay for the others.
"""

from __future__ import annotations

from datamodules.lazy_exports import lazy_exports

_LAZY = {
    "TinyAudioLDMLoRA": "audioldm_demo.models",
    "TinyAudioLDM2LoRA": "audioldm_demo.models",
    "SyntheticGenreDataModule": "audioldm_demo.data",
    "GriffinLimVocoder": "audioldm_demo.griffin_lim_vocoder",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
