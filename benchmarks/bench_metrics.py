"""Benchmark: our KAD and FAD against kadtk's and fadtk's own functions on N x D random embeddings.

    python benchmarks/bench_metrics.py [--n 10000] [--dim 512] [--reference-path DIR] [--no-doc]

Each measurement runs in a fresh process so that its peak resident memory (``ru_maxrss`` minus the resident size
once the embeddings exist) belongs to that computation alone. Reported per metric: value, wall time, peak extra
memory, for ours and for the reference package, the relative difference of the values and the time ratio.

kadtk 1.1.0 and fadtk 1.1.0 are not project dependencies (they pin numpy<2, torch<2.6, transformers<4.47/<5 and pull
TensorFlow/laion-clap). To compare anyway, install them without dependencies into a throwaway folder:

    pip install --no-deps --target /tmp/bench-deps kadtk==1.1.0 fadtk==1.1.0 hypy-utils

and pass ``--reference-path /tmp/bench-deps`` (or set ``BENCH_REFERENCE_PATH``). The result table replaces the
``bench_metrics`` section of docs/benchmarks.md (``make bench`` runs every benchmark). ``fadtk.fad`` imports as is; ``kadtk``'s package ``__init__`` imports
every embedding model (torchlibrosa, laion-clap...), so this script loads the unmodified ``kadtk/kad.py`` file with
the two modules it imports for its classes (``emb_loader``, ``model_loader``) replaced by empty stand-ins: the
functions timed are kadtk's own code. If the packages cannot be found, only our functions are timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioldm_lora.tool_convention import dashed_argv  # after the path insert


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _embeddings(n: int, dim: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    reference = torch.randn(n, dim, generator=generator)
    generated = 1.05 * torch.randn(n, dim, generator=generator) + 0.02
    return reference, generated


def _load_kadtk(reference_path: str | None):
    """kadtk's ``kad`` module: a normal import, else its source file with stand-ins for its heavy siblings."""
    try:
        import kadtk.kad as kad  # noqa: PLC0415

        return kad
    except Exception:  # noqa: BLE001 - any import failure means: try the source file
        pass
    if reference_path is None:
        return None
    source = Path(reference_path) / "kadtk" / "kad.py"
    if not source.is_file():
        return None
    package = types.ModuleType("kadtk")
    package.__path__ = [str(source.parent)]
    sys.modules["kadtk"] = package
    for name, attribute in (("kadtk.emb_loader", "EmbeddingLoader"), ("kadtk.model_loader", "ModelLoader")):
        stand_in = types.ModuleType(name)
        setattr(stand_in, attribute, type(attribute, (), {}))
        sys.modules[name] = stand_in
    spec = importlib.util.spec_from_file_location("kadtk.kad", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kadtk.kad"] = module
    spec.loader.exec_module(module)
    return module


def _load_fadtk():
    try:
        import fadtk.fad as fad  # noqa: PLC0415

        return fad
    except Exception:  # noqa: BLE001
        return None


def run_case(case: str, n: int, dim: int, seed: int, reference_path: str | None) -> dict:
    """One measurement (in this process): returns value, seconds and peak extra bytes, or why it could not run."""
    import numpy as np
    import torch

    if reference_path:
        sys.path.insert(0, reference_path)
    sys.path.insert(0, str(ROOT))
    x, y = _embeddings(n, dim, seed)
    if case == "ours-kad":
        from metrics.kad import kernel_audio_distance
        from metrics.median_distance import median_pairwise_distance

        def work():
            bandwidth = float(median_pairwise_distance(y))
            return float(kernel_audio_distance(x, y, bandwidth)), bandwidth

        def check(bandwidth):  # same definition in float64 kernels (not timed)
            return float(kernel_audio_distance(x, y, bandwidth, dtype=torch.float64))
    elif case == "ours-fad":
        from metrics.fad import frechet_audio_distance

        def work():
            return float(frechet_audio_distance(x, y)), None
    elif case == "kadtk":
        kad = _load_kadtk(reference_path)
        if kad is None:
            return {"missing": "kadtk is not importable (see --reference-path in the docstring)"}

        def work():
            bandwidth = kad.median_pairwise_distance(y)
            value = kad.calc_kernel_audio_distance(x, y, (None, None), "cpu", bandwidth=bandwidth)
            return float(value), float(bandwidth)

        def check(bandwidth):
            return float(kad.calc_kernel_audio_distance(x, y, (None, None), "cpu", bandwidth=bandwidth,
                                                        precision=torch.float64))
    elif case == "fadtk":
        fad = _load_fadtk()
        if fad is None:
            return {"missing": "fadtk is not importable (see --reference-path in the docstring)"}

        def work():
            mu_x, cov_x = fad.calc_embd_statistics(x.numpy())
            mu_y, cov_y = fad.calc_embd_statistics(y.numpy())
            return float(fad.calc_frechet_distance(mu_x, cov_x, mu_y, cov_y)), None
    else:
        raise ValueError(case)
    if case not in ("ours-kad", "kadtk"):
        check = None
    torch.set_grad_enabled(False)
    np.random.seed(0)
    baseline = _resident_bytes()
    start = time.perf_counter()
    try:
        value, bandwidth = work()
    except Exception as error:  # noqa: BLE001 - report, do not crash the comparison
        return {"missing": f"{type(error).__name__}: {error}"}
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    result = {"value": value, "bandwidth": bandwidth, "seconds": seconds, "peak_bytes": max(peak, 0)}
    if check is not None:
        result["value_float64"] = check(bandwidth)
    return result


def _child(case: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--case", case, "--n", str(args.n), "--dim", str(args.dim),
               "--seed", str(args.seed)]
    if args.reference_path:
        command += ["--reference-path", args.reference_path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"missing": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def render(command: str, n: int, dim: int, results: dict[str, dict]) -> str:
    """The markdown section of docs/benchmarks.md."""
    from benchmarks.report import machine

    lines = [
        "## KAD and FAD against kadtk 1.1.0 and fadtk 1.1.0",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; torch {_torch_version()}",
        f"- data: {n} x {dim} float32 random embeddings per set (seed 0); each computation in a fresh process",
        "",
        "| metric | implementation | value | seconds | peak extra memory |",
        "|---|---|---:|---:|---:|",
    ]
    notes = []
    for metric, ours_case, theirs_case in (("KAD", "ours-kad", "kadtk"), ("FAD", "ours-fad", "fadtk")):
        ours, theirs = results[ours_case], results[theirs_case]
        lines.append(f"| {metric} | audioldm-lora | {ours['value']:.10g} | {ours['seconds']:.2f} | "
                     f"{_mib(ours['peak_bytes'])} |")
        if "missing" in theirs:
            lines.append(f"| {metric} | {theirs_case} | not run | | |")
            notes.append(f"{theirs_case} not run: {theirs['missing']}")
            continue
        lines.append(f"| {metric} | {theirs_case} | {theirs['value']:.10g} | {theirs['seconds']:.2f} | "
                     f"{_mib(theirs['peak_bytes'])} |")
        relative = abs(ours["value"] - theirs["value"]) / max(abs(theirs["value"]), 1e-300)
        notes.append(f"{metric}: relative difference {relative:.1e}; time ours/{theirs_case} "
                     f"{ours['seconds'] / theirs['seconds']:.2f}; peak memory ours/{theirs_case} "
                     f"{ours['peak_bytes'] / max(theirs['peak_bytes'], 1):.2f}")
        if "value_float64" in ours and "value_float64" in theirs:
            relative64 = abs(ours["value_float64"] - theirs["value_float64"]) / max(abs(theirs["value_float64"]), 1e-300)
            notes.append(
                f"{metric} with float64 kernels and the same bandwidth: relative difference {relative64:.1e}; "
                f"error of the float32 value against it: ours {abs(ours['value'] / ours['value_float64'] - 1):.1e}, "
                f"{theirs_case} {abs(theirs['value'] / theirs['value_float64'] - 1):.1e}"
            )
        if ours.get("bandwidth") is not None:
            same = "identical" if ours["bandwidth"] == theirs["bandwidth"] else "DIFFERENT"
            notes.append(f"{metric} bandwidth (median pairwise distance of the generated set): ours "
                         f"{ours['bandwidth']!r}, {theirs_case} {theirs['bandwidth']!r}: {same}")
    lines += ["", *[f"- {note}" for note in notes]]
    lines += [
        "",
        "Peak extra memory is the process's peak resident size minus its size once the embeddings exist. kadtk "
        "materialises torch.pdist of the generated set and three full kernel matrices; ours works in blocks of "
        "2048 rows and selects the median exactly (same float32 value as torch.median(torch.pdist)). fadtk takes "
        "the mean in float32 and also runs scipy's sqrtm for a consistency check; ours takes mean and covariance in "
        "float64 ([metrics.md](metrics.md), \"FAD\") and only the eigenvalues. kadtk and fadtk run from "
        "`pip install --no-deps --target DIR kadtk==1.1.0 fadtk==1.1.0 hypy-utils` (`--reference-path DIR`); "
        "kadtk's `kad.py` is loaded with stand-ins for its model-loading siblings.",
    ]
    return "\n".join(lines)


def _torch_version() -> str:
    import torch

    return f"{torch.__version__}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="embeddings per set")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-path", default=os.environ.get("BENCH_REFERENCE_PATH"),
                        help="folder holding kadtk/ and fadtk/ (pip --target); default $BENCH_REFERENCE_PATH")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    # The underscore spellings of the flags (--reference_path, --no_doc) still work: the tools' convention.
    args = parser.parse_args(dashed_argv(parser, sys.argv[1:] if argv is None else argv))
    if args.case:
        print(json.dumps(run_case(args.case, args.n, args.dim, args.seed, args.reference_path)))
        return 0
    command = "python benchmarks/bench_metrics.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {case: _child(case, args) for case in ("ours-kad", "kadtk", "ours-fad", "fadtk")}
    for case in ("ours-kad", "ours-fad"):
        if "missing" in results[case]:
            print(f"{case} failed: {results[case]['missing']}", file=sys.stderr)
            return 1
    section = render(command.strip(), args.n, args.dim, results)
    print(section)
    if not args.no_doc:
        from benchmarks.report import update_section

        print(f"Updated {update_section('bench_metrics', section)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
