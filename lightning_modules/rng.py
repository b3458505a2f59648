"""Random number generator states in checkpoints, for resumes that continue exactly.

Lightning saves model, optimizer, scheduler and loop state but not the global RNG states, which draw the noise,
timesteps, caption dropout and the data order of the next epoch; without them a resumed run diverges.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

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
