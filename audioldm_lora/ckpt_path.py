"""``--ckpt_path`` of ``lightning fit/validate/test/predict``: checked before anything is built, and never silent.

``validate``, ``test`` and ``predict`` without a checkpoint would score the adapter as initialised (its ``lora_B``
matrices are zero, so: the base model) and end with exit status 0 and numbers that look real. They therefore need
``--ckpt_path``; scoring the base model is a choice spelt ``--ckpt_path base``. Whatever is scored is named on the
first line of the run. A path that is not a Lightning checkpoint (an adapter folder, a ``.safetensors`` file, a
missing file) is refused with what to use instead, rather than with torch's unpickling traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning_modules.adapter_files import ADAPTER_WEIGHTS

BASE_MODEL = "base"
"""``--ckpt_path base``: score or sample the base model with the untrained adapter, on purpose."""
LIGHTNING_NAMES = ("last", "best", "hpc", "registry")
"""Values Lightning resolves itself (``last``: the newest ``last*.ckpt`` of the run's checkpoint folder)."""
# What a torch.save file starts with: a zip archive (torch >= 1.6) or a legacy pickle stream.
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


class CheckpointPathError(ValueError):
    """``--ckpt_path`` names no usable Lightning checkpoint; the message says what to pass instead."""


def _refuse_path(path: Path, subcommand: str) -> None:
    """Raise :class:`CheckpointPathError` unless ``path`` is a file that looks like a torch checkpoint."""
    if path.is_dir():
        if (path / ADAPTER_WEIGHTS).is_file():
            raise CheckpointPathError(
                f"--ckpt_path {path} is an adapter folder, not a Lightning checkpoint. Score an adapter with "
                f"`audioldm-lora generate --adapter {path}` and `audioldm-lora evaluate`; `lightning {subcommand}` "
                "takes the run's .ckpt (e.g. <run>/checkpoints/last.ckpt)."
            )
        raise CheckpointPathError(f"--ckpt_path {path} is a folder; give the .ckpt file in it (e.g. last.ckpt).")
    if not path.is_file():
        raise CheckpointPathError(f"--ckpt_path {path} does not exist; a run writes <run>/checkpoints/last.ckpt.")
    if path.suffix == ".safetensors":
        raise CheckpointPathError(
            f"--ckpt_path {path} is a .safetensors weights file (an adapter's), not a Lightning checkpoint; pass "
            "its folder to `audioldm-lora generate --adapter`, or give `lightning` the run's .ckpt."
        )
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head.startswith(_CHECKPOINT_MAGIC):
        raise CheckpointPathError(
            f"--ckpt_path {path} is not a PyTorch checkpoint (it is neither a torch.save zip nor a pickle); give "
            "the .ckpt that `lightning fit` wrote."
        )


def checked_ckpt_path(subcommand: str, value: str | None) -> str | None:
    """The ``ckpt_path`` to pass to the Trainer for ``subcommand``, after the checks above; announces what is scored.

    Raises:
        CheckpointPathError: no checkpoint for validate/test/predict, ``base`` for fit, or a path that is no
            Lightning checkpoint.
    """
    if value in (None, ""):
        if subcommand == "fit":
            return None
        raise CheckpointPathError(
            f"`lightning {subcommand}` needs --ckpt_path: the checkpoint whose adapter to score (e.g. "
            "<run>/checkpoints/last.ckpt, or best-kad-*.ckpt). Without one it would score the untrained adapter, "
            f"which is the base model; to do that on purpose pass --ckpt_path {BASE_MODEL}."
        )
    if value == BASE_MODEL:
        if subcommand == "fit":
            raise CheckpointPathError(f"--ckpt_path {BASE_MODEL} is for validate/test/predict; `lightning fit` "
                                      "starts from the base model without --ckpt_path.")
        print(f"lightning {subcommand}: the base model (--ckpt_path {BASE_MODEL}: untrained adapter, no "
              "checkpoint)", file=sys.stderr)
        return None
    if value in LIGHTNING_NAMES:
        return value
    _refuse_path(Path(value), subcommand)
    if subcommand != "fit":
        print(f"lightning {subcommand}: the adapter of checkpoint {value}", file=sys.stderr)
    return value
