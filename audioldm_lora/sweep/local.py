"""The local sweep runner: one ``lightning fit`` process per point, N at a time, resumable, failures recorded.

Each point trains in ``<runs dir>/<point name>/`` with a CSVLogger (so the report reads its metrics without W&B);
``status.json`` records ``running``, ``done`` or ``failed`` (with the error's last lines). A rerun skips ``done``
points, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from audioldm_lora.sweep.spec import SweepPoint
from datamodules.atomic_files import atomic_write_json

STATUS = "status.json"


def read_status(directory: Path) -> dict[str, Any]:
    path = directory / STATUS
    return json.loads(path.read_text()) if path.is_file() else {}


def write_status(directory: Path, status: dict[str, Any]) -> None:
    atomic_write_json(directory / STATUS, status, default=str)


def summarize_error(lines: list[str]) -> str:
    """The one line of a failed run's log that says what went wrong.

    The CLI reports a setting it refuses as ``<prog>: error: message`` (:mod:`audioldm_lora.lightning_cli`); with
    ``AUDIOLDM_LORA_DEBUG`` set, a failing constructor is a jsonargparse union error whose cause is a ``  - `` line;
    other failures end in ``SomeError: message``.
    """
    reported = [line.split(": error: ", 1)[1].strip() for line in lines if ": error: " in line]
    if reported:
        return reported[-1]
    causes = [line.strip()[2:] for line in lines
              if line.startswith("  - ") and "Expected a <class 'NoneType'>" not in line]
    if causes:
        return causes[-1]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    return (errors or lines or ["(empty log)"])[-1]


def point_command(config: str, point: SweepPoint, directory: Path, extra: list[str]) -> list[str]:
    """The ``fit`` command of one point: the training config, a CSVLogger in the point's folder, its values."""
    return [
        sys.executable, "-m", "audioldm_lora", "fit", "--config", config,
        f"--trainer.default_root_dir={directory}",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.init_args.save_dir={directory}",
        "--trainer.logger.init_args.name=logs",
        "--trainer.logger.init_args.version=0",
        *extra,
        *point.overrides(),
    ]


def run_point(config: str, point: SweepPoint, runs_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Train one point unless it is already done; never raises for a failed training run."""
    directory = runs_dir / point.name
    status = read_status(directory)
    if status.get("state") == "done":
        return {**status, "skipped": True}
    command = point_command(config, point, directory, extra)
    write_status(directory, {"state": "running", "params": point.params, "command": command})
    started = time.perf_counter()
    with (directory / "train.log").open("w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    status = {"state": "done" if result.returncode == 0 else "failed", "params": point.params, "seconds": seconds,
              "returncode": result.returncode, "command": command}
    if result.returncode:
        lines = (directory / "train.log").read_text(errors="replace").strip().splitlines()
        status["error"] = "\n".join(lines[-15:])
        status["summary"] = summarize_error(lines)
    write_status(directory, status)
    return status


def run_local_sweep(
    config: str, points: list[SweepPoint], runs_dir: str | Path, parallel: int = 1, extra: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run every point (``parallel`` at a time); returns their statuses in point order."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(lambda p: run_point(config, p, runs_dir, extra or []), points))
