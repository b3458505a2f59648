"""Start-up of every tool: wall time and peak memory of ``audioldm-lora TOOL --help``, and whether it imported torch.

A tool should answer ``--help`` (and do work that needs no model) without importing torch, Lightning or diffusers.
Each command runs ``--repeats`` times in fresh processes, interleaved with the baseline ``python -c 'import torch'``
so that machine load affects both alike; the table reports the fastest run of each and its ratio to the baseline.

    python benchmarks/bench_startup.py [--repeats 3] [--reference DIR] [--no-doc]

``--reference DIR`` also measures another checkout of the project (e.g. ``git worktree add /tmp/before HEAD~5``)
in the same run, for before/after figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioldm_lora.cli import TOOLS  # noqa: E402  (light: the dispatcher imports no tool)
from benchmarks.report import machine, update_section  # noqa: E402

HEAVY = ("torch", "lightning", "diffusers", "transformers")

# Runs in the child: the command, then (at exit, also after --help's SystemExit) its peak RSS and heavy imports.
PROBE = """
import atexit, resource, sys
def _report():
    loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))
    sys.stderr.write("\\n@@ %d %s\\n" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, ",".join(loaded)))
atexit.register(_report)
{body}
"""


def command_body(tool: str | None) -> str:
    """The child's code: the baseline import, or the CLI with ``TOOL --help``."""
    if tool is None:
        return "import torch"
    return (f"sys.argv = ['audioldm-lora', {tool!r}, '--help']\n"
            "from audioldm_lora.cli import main\nsys.exit(main())")


def run_once(tool: str | None, checkout: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, heavy modules imported) of one fresh process."""
    code = PROBE.format(heavy=HEAVY, body=command_body(tool))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True,
                            env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    marker = [line for line in result.stderr.splitlines() if line.startswith("@@ ")]
    if result.returncode not in (0, None) or not marker:
        raise RuntimeError(f"{tool or 'import torch'} failed in {checkout}:\n{result.stderr[-2000:]}")
    _, rss, *loaded = marker[-1].split(" ")
    return wall, int(rss) / 1024, (loaded[0] if loaded else "") or "-"


def measure(tools: list[str], checkouts: dict[str, Path], repeats: int) -> dict[tuple[str, str], dict]:
    """Fastest run of each (checkout, tool) and of the baseline, interleaved over ``repeats`` rounds."""
    best: dict[tuple[str, str], dict] = {}
    for _ in range(repeats):
        for label, checkout in checkouts.items():
            for tool in [None, *tools]:
                if label != "now" and tool is None:
                    continue
                name = tool or "import torch (baseline)"
                wall, rss, loaded = run_once(tool, checkout)
                entry = best.setdefault((label, name), {"wall": wall, "rss": rss, "loaded": loaded})
                if wall < entry["wall"]:
                    entry.update(wall=wall, rss=rss, loaded=loaded)
    return best


def table(best: dict[tuple[str, str], dict], labels: list[str], tools: list[str]) -> str:
    baseline = best[("now", "import torch (baseline)")]["wall"]
    header = "| command | " + " | ".join(f"{label}: s (x torch import), peak MB, heavy imports" for label in labels)
    lines = [header + " |", "|---|" + "---|" * len(labels)]
    for name in ["import torch (baseline)", *(f"{tool}" for tool in tools)]:
        cells = []
        for label in labels:
            entry = best.get((label, name))
            if entry is None:
                cells.append("")
                continue
            cells.append(f"{entry['wall']:.2f} ({entry['wall'] / baseline:.2f}x), {entry['rss']:.0f}, {entry['loaded']}")
        shown = name if name.startswith("import") else f"`audioldm-lora {name} --help`"
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per command (fastest is reported)")
    parser.add_argument("--reference", type=Path, default=None, help="another checkout to measure in the same run")
    parser.add_argument("--tools", nargs="*", default=sorted(TOOLS), help="tools to measure (default: all)")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    context = machine()
    checkouts = {"now": ROOT}
    if args.reference is not None:
        checkouts = {"reference": args.reference.resolve(), "now": ROOT}
    print(f"Tool start-up, {args.repeats} runs each; {context}", flush=True)
    best = measure(args.tools, checkouts, args.repeats)
    report = table(best, list(checkouts), args.tools)
    print(report)
    if not args.no_doc:
        reference = f" (`--reference {args.reference}`: the checkout before the change)" if args.reference else ""
        body = (
            "## Tool start-up\n\n"
            f"`python benchmarks/bench_startup.py --repeats {args.repeats}{' --reference DIR' if args.reference else ''}`"
            f"{reference}; {context}. Fastest of {args.repeats} fresh processes per command; the ratio is to "
            "`python -c 'import torch'` in the same run. Heavy imports: which of torch, lightning, diffusers, "
            "transformers the command loaded.\n\n" + report + "\n"
        )
        print(f"Updated {update_section('bench_startup', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
