"""Random number generator states in checkpoints, for resumes that continue exactly.

Lightning saves model, optimizer, scheduler and loop state but not the global RNG states, which draw the training
step's noise, timesteps and caption dropout; without them a resumed run diverges (data orders and crops are seeded
per epoch and sample instead: :mod:`datamodules.ordering`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from datamodules.sharding import mix_seed

RNG_STATE_KEY = "rng_states"


def capture_rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (and CUDA's when present).

    Stored as tensors, ints and lists only, so checkpoints still load with ``torch.load(weights_only=True)``.
    """
    version, internal, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_states` captured."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_rng_states(seed: int, rank: int = 0) -> dict[str, Any]:
    """Seed Python's, NumPy's and torch's (and CUDA's) generators for the training stream of ``rank`` and return
    their states: a stream that depends on the run's seed alone, not on what ran before the first step."""
    stream_seed = mix_seed(seed, "training", rank)
    random.seed(stream_seed)
    np.random.seed(stream_seed % 2**32)
    torch.manual_seed(stream_seed)  # seeds CUDA's generators too
    return capture_rng_states()
