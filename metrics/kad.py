"""Kernel Audio Distance (KAD), the value kadtk 1.1.0 computes, evaluated blockwise in bounded memory.

Definition (docs/metrics.md, 'KAD'), x = reference embeddings (m rows), y = generated embeddings (n rows):

    s     = median of all pairwise Euclidean distances within y (torch.median: the lower middle value)
    gamma = 1 / (2 s^2 + 1e-8),  k(a, b) = exp(-gamma ||a - b||^2)
    KAD   = 100 * [ sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 mean_{i,j} k(x_i, y_j) ]

Why this is written by hand and not imported: kadtk's ``calc_kernel_audio_distance`` materialises the full m x m,
n x n and m x n kernel matrices (and its bandwidth all n(n-1)/2 distances). kadtk also pins numpy<2, torch<2.6 and
transformers<4.47 and pulls TensorFlow, so it cannot be a dependency here. This module computes the same numbers
in blocks of ``block_size`` rows:

* kernel sums (here): per block pair, squared distances from one GEMM, ``exp``, summed in float64;
* bandwidth: :func:`~metrics.median_distance.median_pairwise_distance`, an exact blockwise selection that returns
  the very float32 value ``torch.median(torch.pdist(y))`` returns (its module says how).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from metrics.blockwise import DEFAULT_BLOCK_SIZE, Workspace
from metrics.checks import check_embedding_pair
from metrics.median_distance import median_pairwise_distance

KAD_SCALE = 100.0
KERNEL_EPS = 1e-8


def kernel_audio_distance(
    reference: torch.Tensor | np.ndarray,
    generated: torch.Tensor | np.ndarray,
    bandwidth: float | None = None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    dtype: torch.dtype = torch.float32,
    eps: float = KERNEL_EPS,
) -> torch.Tensor:
    """KAD between ``reference`` [m, D] and ``generated`` [n, D] embeddings, as kadtk 1.1.0 computes it.

    Args:
        reference: the real/background set (kadtk's ``x``).
        generated: the evaluated set (kadtk's ``y``); the default bandwidth is its median pairwise distance.
        bandwidth: fixed RBF bandwidth ``s``; ``None`` uses
            :func:`~metrics.median_distance.median_pairwise_distance` of ``generated``.
        block_size: rows per block; working memory is a few ``block_size^2`` matrices.
        dtype: precision of the kernel matrices; float32 is kadtk's default, float64 for a tighter value.
        eps: added to ``2 s^2`` as in kadtk.

    Returns:
        0-dim float64 tensor (block sums are accumulated in float64): 100 x the unbiased MMD^2, which can be
        negative when the two sets come from the same distribution.

    Rows are centred on the joint mean before the GEMMs (distances are translation invariant); this only reduces
    float32 cancellation, e.g. for log-mel statistics whose means are far from zero.
    """
    x, y = check_embedding_pair(reference, generated, "KAD")
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    y = y.to(x.device)
    if bandwidth is None:
        bandwidth = float(median_pairwise_distance(y, block_size=block_size))
    bandwidth = float(bandwidth)
    if not math.isfinite(bandwidth) or bandwidth < 0.0:
        raise ValueError(f"KAD bandwidth must be a finite non-negative number, got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2 + eps)
    m, n = x.shape[0], y.shape[0]
    center = (x.double().sum(dim=0) + y.double().sum(dim=0)) / (m + n) if max(m, n) <= block_size else (
        sum(z[s : s + block_size].double().sum(dim=0) for z in (x, y) for s in range(0, z.shape[0], block_size))
        / (m + n)
    )
    k_xx = _offdiagonal_kernel_sum(x, center, gamma, dtype, block_size) / (m * (m - 1))
    k_yy = _offdiagonal_kernel_sum(y, center, gamma, dtype, block_size) / (n * (n - 1))
    k_xy = _cross_kernel_sum(x, y, center, gamma, dtype, block_size) / (m * n)
    return (k_xx + k_yy - 2.0 * k_xy) * KAD_SCALE


def _centered_blocks(
    z: torch.Tensor, center: torch.Tensor, block_size: int, dtype: torch.dtype
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Rows of ``z`` minus ``center`` in ``dtype``, cut into blocks, each with its squared row norms.

    Converted once per call (one copy of the set in ``dtype``) rather than once per block pair.
    """
    blocks = []
    for start in range(0, z.shape[0], block_size):
        block = (z[start : start + block_size].to(torch.float64) - center).to(dtype)
        blocks.append((block, block.pow(2).sum(dim=1)))
    return blocks


def _kernel_block_sum(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor], gamma: float,
                      workspace: Workspace, exclude_diagonal: bool = False) -> torch.Tensor:
    """sum_{i,j} exp(-gamma ||a_i - b_j||^2) in float64, optionally without i == j.

    ``-gamma d^2`` comes out of one GEMM (``-gamma (|a|^2 + |b|^2) + 2 gamma a.b``), clamped to <= 0 (rounding can
    make a squared distance slightly negative), then exponentiated in place, all in reused buffers.
    """
    (a_rows, a_sq), (b_rows, b_sq) = a, b
    shape = (a_rows.shape[0], b_rows.shape[0])
    kernel = torch.add(a_sq[:, None], b_sq[None, :], out=workspace.get("kernel", shape, a_rows.dtype))
    kernel.mul_(-gamma).addmm_(a_rows, b_rows.T, alpha=2.0 * gamma).clamp_max_(0.0).exp_()
    # float64 accumulation; Tensor.sum(dtype=float64) is ~25x slower on CPU than converting into a buffer first
    wide = workspace.get("kernel64", shape, torch.float64).copy_(kernel)
    total = wide.sum()
    if exclude_diagonal:
        total = total - wide.diagonal().sum()
    return total


def _offdiagonal_kernel_sum(z: torch.Tensor, center: torch.Tensor, gamma: float, dtype: torch.dtype,
                            block_size: int) -> torch.Tensor:
    """sum_{i != j} k(z_i, z_j) over the upper block triangle, doubling the off-diagonal blocks (k is symmetric)."""
    blocks = _centered_blocks(z, center, block_size, dtype)
    workspace = Workspace(z.device)
    total = torch.zeros((), dtype=torch.float64, device=z.device)
    for i, a in enumerate(blocks):
        total += _kernel_block_sum(a, a, gamma, workspace, exclude_diagonal=True)
        for b in blocks[i + 1 :]:
            total += 2.0 * _kernel_block_sum(a, b, gamma, workspace)
    return total


def _cross_kernel_sum(x: torch.Tensor, y: torch.Tensor, center: torch.Tensor, gamma: float, dtype: torch.dtype,
                      block_size: int) -> torch.Tensor:
    """sum_{i, j} k(x_i, y_j) over all block pairs."""
    x_blocks = _centered_blocks(x, center, block_size, dtype)
    y_blocks = _centered_blocks(y, center, block_size, dtype)
    workspace = Workspace(x.device)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for a in x_blocks:
        for b in y_blocks:
            total += _kernel_block_sum(a, b, gamma, workspace)
    return total
