"""Fixtures of the metrics tests: a tiny random CLAP checkpoint (built once per session, offline), one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from metrics_helpers import build_tiny_clap


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run each metrics test on one intra-op thread, then restore the setting.

    The tests use small matrices, so a second thread buys little, while on a loaded 2-core machine every small
    parallel op pays an OpenMP team hand-off (measured: the metrics tests took 46 s with 2 threads and 21.5 s with 1
    at a load average of 13).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 16-d ClapModel with feature extractor (1 s window, rand_trunc) and tokenizer, in hub layout."""
    return build_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")
