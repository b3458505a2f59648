"""`make bench`: run every ``benchmarks/bench_*.py`` in turn; each rewrites its own section of docs/benchmarks.md.

    python benchmarks/run_all.py [NAME ...]     # e.g. `python benchmarks/run_all.py training sampler`
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {f"bench_{name.removeprefix('bench_').removesuffix('.py')}.py" for name in argv}
        unknown = wanted - {s.name for s in scripts}
        if unknown:
            print(f"Unknown benchmark(s) {sorted(unknown)}; available: {[s.stem for s in scripts]}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.name in wanted]
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {script.name}: exit {result.returncode} in {time.perf_counter() - start:.0f} s", flush=True)
        if result.returncode:
            failed.append(script.name)
    if failed:
        print(f"Failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
