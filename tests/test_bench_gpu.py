"""benchmarks/bench_gpu.py: the CPU dry run exercises every code path, and without CUDA the script is a no-op.

The GPU numbers themselves need an NVIDIA GPU; these tests make sure that the prepared GPU run cannot fail on a
code path nobody ran, and that ``make bench`` on a CPU machine passes without touching docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import bench_gpu

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def run_script(*args: str, hide_cuda: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if hide_cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def table_rows(text: str, first_cell_prefix: str) -> list[list[str]]:
    """Cells of the markdown table rows whose first cell starts with ``first_cell_prefix``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(first_cell_prefix):
            rows.append(cells)
    return rows


@pytest.mark.slow
def test_cpu_dry_run_writes_every_variant_and_the_vram_table(tmp_path: Path) -> None:
    out = tmp_path / "x.md"
    result = run_script("--device", "cpu", "--tiny", "--out", str(out), "--steps", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert "<!-- bench_gpu:begin -->" in text and "--device cpu --tiny" in text  # the command is recorded

    header = next(line for line in text.splitlines() if line.startswith("| variant"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert "samples/s" in columns and "MFU" in columns
    rows = table_rows(text, "(")
    labels = [row[0] for row in rows]
    for wanted in ("(a) authors", "(b) framework fp32", "(c) framework bf16"):
        assert any(label.startswith(wanted) for label in labels), labels
    for row in rows:
        assert float(row[columns.index("samples/s")]) > 0
        assert row[columns.index("MFU")].endswith("%")
    assert "Checked at run time: (b) attention AttnProcessor2_0" in text

    vram = [row for row in table_rows(text, "") if len(row) == 4 and row[0] in {"1", "2"}]
    assert [(row[0], row[1]) for row in vram] == [("1", "0.64"), ("2", "0.64")]
    assert all(float(cell) > 0 for row in vram for cell in row[2:])  # 4 cells: batch {1, 2} x checkpointing

    raw = json.loads(out.with_name(out.name + ".json").read_text())
    assert [r["variant"] for r in raw["results"]] == ["authors", "framework_fp32", "framework_bf16"]
    assert len(raw["vram"]) == 4
    assert result.stdout.count("| variant |") == 1  # the section is printed too


def test_without_cuda_it_says_so_and_leaves_the_docs_alone() -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    before = (doc.read_bytes(), doc.stat().st_mtime_ns) if doc.exists() else None
    for args in ((), ("--device", "cuda")):
        result = run_script(*args, hide_cuda=True)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "needs a CUDA GPU" in result.stdout
        assert len(result.stdout.strip().splitlines()) == 1
    after = (doc.read_bytes(), doc.stat().st_mtime_ns) if doc.exists() else None
    assert after == before


class _StubModule(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self.weight.grad = torch.ones(2)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def test_a_cell_that_runs_out_of_memory_reads_oom(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*_: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(bench_gpu, "latent_cache_batch", out_of_memory)
    module = _StubModule()
    memory = bench_gpu.PeakMemory(torch.device("cpu"))
    assert bench_gpu.vram_cell(module, 8, 30.72, bench_gpu.FRAMEWORK_BF16, memory) is None
    assert module.weight.grad is None  # gradients are dropped so that the next cell starts clean

    setup = bench_gpu.Setup(device=torch.device("cpu"), tiny=True, steps=1, warmup=1, compile=False, vram=True,
                            peak_tflops=1.0, peak_source="test", command="x")
    grid = {bench_gpu.cell_key(1, 0.64, False): 1.5, bench_gpu.cell_key(1, 0.64, True): None}
    assert "| 1 | 0.64 | 1.50 | OOM |" in bench_gpu.vram_table(grid, setup)


def test_merge_copies_the_section_of_a_gpu_run(tmp_path: Path) -> None:
    gpu_file, doc = tmp_path / "bench_gpu.md", tmp_path / "benchmarks.md"
    bench_gpu.update_section("bench_gpu", "## GPU\n\nfrom the GPU machine", gpu_file)
    bench_gpu.update_section("other", "## Other\n\nkept", doc)
    bench_gpu.merge_section(gpu_file, doc)
    text = doc.read_text()
    assert "from the GPU machine" in text and "kept" in text


def test_peak_table_matches_device_names() -> None:
    assert bench_gpu.peak_tflops(torch.device("cpu"), 123.0) == (123.0, "--peak-tflops")
    assert bench_gpu.peak_tflops(torch.device("cpu"), None)[0] == bench_gpu.CPU_PEAK_TFLOPS
    names = {"NVIDIA H200": 989.0, "NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H100 PCIe": 756.0,
             "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA L40S": 362.0}
    for name, tflops in names.items():
        assert bench_gpu.peak_for_name(name)[1] == tflops, name
    assert bench_gpu.peak_for_name("Some Other GPU") is None
