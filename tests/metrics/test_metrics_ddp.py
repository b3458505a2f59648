"""Under DDP (2 CPU processes, gloo) the three metrics equal their single-process results on the union."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from metrics_helpers import ddp_worker

from metrics import CLAPScore, FrechetAudioDistance, KernelAudioDistance


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def test_metrics_under_ddp_equal_single_process(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    # uneven shards: rank 0 and rank 1 see different numbers of batches and rows
    real = [[torch.randn(7, 16, generator=generator), torch.randn(5, 16, generator=generator)],
            [torch.randn(9, 16, generator=generator)]]
    fake = [[1.2 * torch.randn(4, 16, generator=generator) + 0.3],
            [1.2 * torch.randn(6, 16, generator=generator) + 0.3, 1.2 * torch.randn(3, 16, generator=generator)]]
    pairs = [[(torch.randn(3, 16, generator=generator), torch.randn(3, 16, generator=generator))],
             [(torch.randn(2, 16, generator=generator), torch.randn(2, 16, generator=generator)),
              (torch.randn(4, 16, generator=generator), torch.randn(4, 16, generator=generator))]]

    kad, fad, clap = KernelAudioDistance(), FrechetAudioDistance(), CLAPScore()
    for rank in range(2):
        for batch in real[rank]:
            kad.update(batch, real=True)
            fad.update(batch, real=True)
        for batch in fake[rank]:
            kad.update(batch, real=False)
            fad.update(batch, real=False)
        for text, audio in pairs[rank]:
            clap.update(text, audio)
    expected = {"kad": kad.compute(), "bandwidth": kad.last_bandwidth, "fad": fad.compute(), "clap": clap.compute()}

    sys.path.insert(0, str(Path(__file__).parent))  # spawned children import metrics_helpers by name
    try:
        mp.spawn(ddp_worker, args=(2, _free_port(), {"real": real, "fake": fake, "pairs": pairs}, str(tmp_path)),
                 nprocs=2, join=True)
    finally:
        sys.path.remove(str(Path(__file__).parent))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["bandwidth"] == expected["bandwidth"]  # the median is exact, whatever the row order
        assert float(got["kad"]) == pytest.approx(float(expected["kad"]), rel=1e-6)
        assert float(got["fad"]) == pytest.approx(float(expected["fad"]), rel=1e-9)
        assert float(got["clap"]) == pytest.approx(float(expected["clap"]), rel=1e-12)
