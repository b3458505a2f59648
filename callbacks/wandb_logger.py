"""A WandbLogger that goes offline by itself when no W&B credentials are configured.

wandb raises ``UsageError`` at ``wandb.init`` without an API key (docs/environment.md, 'W&B offline'); a training
run must never die or block on that, so the logger switches to offline mode, says so, and says how to upload later.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning import Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

OFFLINE_MODES = {"offline", "dryrun", "disabled"}


def wandb_credentials_available() -> bool:
    """True when an API key is in the environment or in the netrc file for the configured W&B host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(str(path)).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    """The W&B loggers of a run (any WandbLogger, ours or Lightning's)."""
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


class AutoOfflineWandbLogger(WandbLogger):
    """Lightning's WandbLogger, offline when there is no API key (``wandb sync`` uploads the run later)."""

    def __init__(
        self,
        name: str | None = None,
        save_dir: str = ".",
        version: str | None = None,
        offline: bool = False,
        project: str | None = "audioldm-lora",
        group: str | None = None,
        tags: list[str] | None = None,
        log_model: bool | str = False,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            name: run display name.
            save_dir: folder that receives ``wandb/`` (offline runs live in ``wandb/offline-run-*``).
            version: run id, to resume a W&B run.
            offline: force offline mode.
            project: W&B project.
            group: W&B group (e.g. one per sweep or genre).
            tags: W&B tags.
            log_model: upload Lightning checkpoints as artifacts.
            **kwargs: passed to ``wandb.init``.
        """
        mode = os.environ.get("WANDB_MODE", "").lower()
        if not offline and mode not in OFFLINE_MODES and not wandb_credentials_available():
            rank_zero_warn(
                "No W&B API key found (WANDB_API_KEY or `wandb login`): logging offline to "
                f"{Path(save_dir) / 'wandb'}. Upload later with `wandb sync {Path(save_dir) / 'wandb'}/offline-run-*`."
            )
            offline = True
        self.went_offline = offline
        super().__init__(
            name=name,
            save_dir=save_dir,
            version=version,
            offline=offline,
            project=project,
            group=group,
            tags=tags,
            log_model=log_model,
            **kwargs,
        )
        # Lightning passes `anonymous=None` to wandb.init whatever the user set, and wandb warns on every run that
        # the setting has no effect; an unset value is dropped instead.
        if getattr(self, "_wandb_init", {}).get("anonymous", "unset") is None:
            del self._wandb_init["anonymous"]

    @property
    def experiment(self) -> Any:
        """The W&B run, started on first use. Its folder is created first: wandb looks for the git repository from
        there, and for a folder that does not exist yet it warns and records no commit."""
        if getattr(self, "_experiment", None) is None and self.save_dir:
            Path(self.save_dir).mkdir(parents=True, exist_ok=True)
        return super().experiment
