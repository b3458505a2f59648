"""Checkpoint files that are either the old complete file or the new complete file, never a torn one.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction, which on a local file system writes the
bytes to a temporary file from ``tempfile.mkstemp()`` (in ``$TMPDIR``, usually /tmp) and then ``shutil.move``s it to
the checkpoint path. When /tmp is another file system than the run folder (a local /tmp and a network or scratch
file system for ``runs/``, as on most clusters), that move is a copy into the final path: a job killed during it
(SLURM time limit, OOM killer, pre-emption) leaves a truncated ``last.ckpt`` where the previous good one was, and
the resume fails. No Lightning or fsspec option changes where that temporary file goes, so this plugin writes it
next to the checkpoint and renames it into place (:func:`datamodules.atomic_files.atomic_write_bytes`). Remote paths
(``s3://``, ``gs://``, ...) keep Lightning's writer: object stores publish whole objects.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from datamodules.atomic_files import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (see the module docstring); loading is unchanged.

    The project's command line adds it to every Trainer it builds unless ``trainer.plugins`` already holds a
    CheckpointIO; in Python pass ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint takes no storage_options (got {storage_options!r}); "
                "pass a CheckpointIO that supports them in trainer.plugins."
            )
        filesystem = get_filesystem(path)
        protocols = filesystem.protocol if isinstance(filesystem.protocol, tuple) else (filesystem.protocol,)
        if "file" not in protocols:  # object stores publish whole objects: Lightning's writer is right there
            super().save_checkpoint(checkpoint, path)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(filesystem._strip_protocol(str(path)), buffer.getvalue())
