"""``audioldm-lora sweep``: run a sweep file (rank x alpha, target x rank, ...) on W&B, or locally without W&B,
then write the report.

    audioldm-lora sweep --sweep configs/sweep.yaml --config configs/genre.yaml [--backend auto|wandb|local]
                        [--parallel N] [--runs-dir runs/sweep] [--extra "[--trainer.max_steps=500]"]

``auto`` uses W&B when an API key is configured and ``SWEEP_BACKEND`` is not ``local``.
"""

from __future__ import annotations

import contextlib
import io
import os

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.sweep.local import run_local_sweep
from audioldm_lora.sweep.report import collect, markdown, write_report
from audioldm_lora.sweep.spec import SweepPoint, SweepSpecError, covering_points, grid_points, load_sweep
from audioldm_lora.tool_convention import run_tool, tool_parser


def check_overrides(config: str, point: SweepPoint, extra: list[str]) -> None:
    """Parse the training config with one point's overrides, so a misspelt parameter or a value of the wrong type
    fails before any run starts.

    The parse is LightningCLI's own (``--print_config``, which exits after parsing and never builds a model), in
    this process: a subprocess per point would spend most of its time importing Lightning again.
    """
    from audioldm_lora.lightning_cli import build_cli  # imports Lightning: only when a local sweep is checked

    args = ["--config", config, *extra, *point.overrides(), "--print_config"]
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        try:
            build_cli(args, run=False)
        except SystemExit as stop:
            code = stop.code
        else:  # --print_config always exits; reaching here means the parser changed under us
            raise RuntimeError(f"LightningCLI did not stop after --print_config for {args}")
    if code not in (0, None):
        lines = [line for line in errors.getvalue().strip().splitlines() if not line.startswith("(")]  # the parser's
        tail = "\n".join(lines[-6:])  # own hint names this process, not `lightning fit`
        raise SweepSpecError(f"The training config {config} rejects the sweep's parameters {point.params}:\n{tail}\n"
                             f"(`lightning fit --config {config} --help` lists the settings)")


def choose_backend(requested: str) -> str:
    """``wandb`` or ``local``: ``auto`` picks W&B when a key is configured and ``SWEEP_BACKEND`` is not local."""
    if requested != "auto":
        return requested
    if os.environ.get("SWEEP_BACKEND", "").lower() == "local":
        return "local"
    from callbacks.wandb_logger import wandb_credentials_available  # imports Lightning: only when it is asked

    return "wandb" if wandb_credentials_available() else "local"


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("sweep", __doc__)
    parser.add_argument("--sweep", type=str, default="configs/sweep.yaml", help="W&B-format sweep file")
    parser.add_argument("--config", type=str, default="configs/genre.yaml", help="training config (lightning fit)")
    parser.add_argument("--backend", type=str, default="auto", choices=["auto", "wandb", "local"])
    parser.add_argument("--parallel", type=int, default=1, help="local: points trained at once")
    parser.add_argument("--runs-dir", type=str, default="runs/sweep", help="local: one folder per point")
    parser.add_argument("--extra", type=list[str], default=[], help="more LightningCLI overrides for every run")
    parser.add_argument("--project", type=str, default="audioldm-lora", help="W&B project")
    parser.add_argument("--entity", type=str | None, default=None, help="W&B entity")
    parser.add_argument("--count", type=int | None, default=None, help="W&B: runs for this agent")
    return parser


def run(args: Namespace) -> int:
    """Check the sweep against the training config, run its points, write the report; 1 when every point failed."""
    spec = load_sweep(args.sweep)
    backend = choose_backend(args.backend)
    if backend == "wandb":
        from audioldm_lora.sweep.wandb_backend import create_and_run, wandb_sweep_definition

        return create_and_run(wandb_sweep_definition(spec, args.config), args.project, args.entity, args.count)
    points = grid_points(spec)
    for point in covering_points(spec):
        check_overrides(args.config, point, args.extra)
    print(f"Local sweep: {len(points)} point(s) of {args.sweep} into {args.runs_dir} ({args.parallel} at a time)")
    statuses = run_local_sweep(args.config, points, args.runs_dir, args.parallel, args.extra)
    paths = write_report(args.runs_dir)
    print(markdown(collect(args.runs_dir)))
    print(f"Report: {paths['md']}, {paths['csv']}, {paths['heatmap']}")
    failed = [s for s in statuses if s.get("state") == "failed"]
    if failed:
        print(f"{len(failed)} point(s) failed; see their train.log (rerun resumes, skipping finished points).")
    return 1 if failed and len(failed) == len(statuses) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 every point failed, 2 bad input)."""
    return run_tool("sweep", build_parser(), argv, run)
