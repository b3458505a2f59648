"""Messages of a `lightning fit/validate/test/predict` run that say nothing to its user, silenced where they start.

Kept out: Lightning's advertisements for its cloud products ("💡 Tip: ..."), printed twice per run, and Lightning's
own deprecation warning from ``lightning/pytorch/utilities/_pytree.py`` (about a torch API it calls, printed once
per rank). Both are filtered by their exact text, so every other message of those loggers and modules still
reaches the user. Installed once per process by :mod:`audioldm_lora.lightning_cli` (DDP ranks run that entry too).
"""

from __future__ import annotations

import logging
import warnings

# The loggers that emit the tips (a logger's filter applies to its own records) and the parents that hold
# Lightning's console handler.
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                     "lightning.pytorch", "lightning.fabric")
_TIP_PREFIX = "💡 Tip:"


class DropProductTips(logging.Filter):
    """Drops Lightning's "💡 Tip: try installing litlogger/litmodels" records, nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP_PREFIX)


def silence_run_noise() -> None:
    """Install the filters above (idempotent)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropProductTips) for f in logger.filters):
            logger.addFilter(DropProductTips())
        for handler in logger.handlers:  # records of child loggers reach these handlers without the logger's filter
            if not any(isinstance(f, DropProductTips) for f in handler.filters):
                handler.addFilter(DropProductTips())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
