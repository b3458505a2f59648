"""Running a sweep file on W&B: the sweep definition with our training command, creation, and the agent."""

from __future__ import annotations

import copy
import shutil
import subprocess
from typing import Any


def wandb_sweep_definition(spec: dict[str, Any], config: str) -> dict[str, Any]:
    """The sweep file plus the agent's command: ``lightning fit --config CONFIG`` with the values as overrides.

    W&B's ``${args}`` macro expands to ``--<name>=<value>`` for each parameter, and parameter names are LightningCLI
    keys (``model.init_args.adapters.unet.rank``), so the agent's runs are ordinary ``fit`` runs of the training config.
    """
    definition = copy.deepcopy(spec)
    definition["command"] = ["${env}", "${interpreter}", "-m", "audioldm_lora", "fit", "--config", config, "${args}"]
    return definition


def agent_command(sweep_path: str, count: int | None = None) -> list[str]:
    """``wandb agent ENTITY/PROJECT/ID`` (the CLI agent runs the definition's ``command``)."""
    command = [shutil.which("wandb") or "wandb", "agent"]
    if count:
        command += ["--count", str(count)]
    return command + [sweep_path]


def create_and_run(definition: dict[str, Any], project: str, entity: str | None, count: int | None) -> int:
    """Create the sweep on W&B and run one agent in this terminal; returns the agent's exit code."""
    import wandb

    sweep_id = wandb.sweep(sweep=definition, project=project, entity=entity)
    path = f"{entity}/{project}/{sweep_id}" if entity else f"{project}/{sweep_id}"
    print(f"Created W&B sweep {path}; more agents: `wandb agent {path}`")
    return subprocess.run(agent_command(path, count)).returncode
