"""The median of all pairwise Euclidean distances of an embedding set, exactly as kadtk computes it, in bounded memory.

KAD's default bandwidth (:mod:`metrics.kad`, docs/metrics.md, 'KAD') is ``torch.median(torch.pdist(y))`` over
the generated embeddings: the lower middle of n(n-1)/2 float32 distances. kadtk's ``median_pairwise_distance``
materialises ``torch.pdist(y)``, about 5 GB for 50k clips (plus the sort inside ``torch.median``), and no library
offers an exact blockwise median of pairwise distances. So this module selects the k-th smallest of the n(n-1)/2
distances in blocks of ``block_size`` rows and returns the very float32 value ``torch.median(torch.pdist(y))``
returns, without ever holding all distances (method: :func:`_kth_pairwise_distance`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from metrics.blockwise import DEFAULT_BLOCK_SIZE, Appender, Workspace
from metrics.checks import EmbeddingError, as_embedding_tensor, check_finite

# Below this many pairs the bandwidth selection keeps every fast distance of the pass (16 bytes each, <= 64 MB)
# instead of first bracketing the median with a random sample. Module-level so that tests can force the sampled path.
_COLLECT_ALL_MAX_PAIRS = 1 << 22
_SAMPLE_PAIRS = 1 << 21  # pairs of the balanced sample that brackets the median before the full pass
_SAMPLE_SEED = 0
_SAMPLE_Z = 5.0  # half-width of the sampled bracket in standard errors of the sample quantile
# A sampled bracket holding more candidates than this (16 bytes each) is abandoned for the histogram search.
_MAX_CANDIDATES = 1 << 24
_PDIST_CHUNK_PAIRS = 16  # pairs re-measured per torch.pdist call during refinement


def median_pairwise_distance(embeddings: torch.Tensor | np.ndarray, block_size: int = DEFAULT_BLOCK_SIZE) -> torch.Tensor:
    """Median of all pairwise Euclidean distances between the rows of ``embeddings``, as kadtk computes it.

    Equal, bit for bit, to ``torch.median(torch.pdist(embeddings.float()))``: float32 distances (kadtk casts to
    float32 whatever the input), and the lower of the two middle values when the number of pairs is even.
    Up to ``block_size`` rows this is exactly that call; above, an exact blockwise selection whose memory does not
    grow with the number of pairs.

    Returns:
        0-dim float32 tensor on the device of ``embeddings``.
    """
    y = as_embedding_tensor(embeddings, "generated")
    if y.shape[0] < 2:
        raise EmbeddingError(f"the median pairwise distance needs at least 2 embeddings, got {y.shape[0]}")
    check_finite(y, "generated")
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    y = y.to(torch.float32).contiguous()
    n = y.shape[0]
    if n <= block_size:
        return torch.median(torch.pdist(y))
    num_pairs = n * (n - 1) // 2
    return _kth_pairwise_distance(y, (num_pairs - 1) // 2, block_size)


def _kth_pairwise_distance(y: torch.Tensor, k: int, block_size: int) -> torch.Tensor:
    """The k-th smallest (0-based) entry of ``torch.pdist(y)``, exactly, in O(block_size^2) working memory.

    Method (selection with a certified rounding bound):

    1. A fast pass computes every squared distance in float64 from one GEMM per block pair on mean-centred rows
       (``f^2 = |a|^2 + |b|^2 - 2 a.b``). It counts the distances below a bracket ``[lo, hi]`` and keeps only those
       inside it. The bracket comes from the quantiles of a seeded balanced sample of pairs (or is unbounded when all
       pairs fit in memory) and is verified after the pass; when the check fails, a deterministic histogram search
       narrows the bracket instead, so a bad sample costs time, never correctness.
    2. ``f`` differs from the float32 value ``e`` that ``torch.pdist`` returns by at most a rigorous rounding bound
       ``B(f)`` (float32 summation of D squares for ``e``, float64 GEMM cancellation for ``f``). The k-th smallest
       ``e`` therefore lies within ``B`` of the k-th smallest ``f``; candidates farther than that are certainly
       below or above it and are only counted.
    3. The remaining candidates are re-measured with ``torch.pdist`` itself (its value for a pair does not depend on
       the other rows of the call) and the selection finishes with ``torch.kthvalue`` on them.
    """
    n, dim = y.shape
    num_pairs = n * (n - 1) // 2
    starts = range(0, n, block_size)
    mean = sum(y[s : s + block_size].double().sum(dim=0) for s in starts) / n
    max_sqnorm = max(float((y[s : s + block_size].double() - mean).pow(2).sum(dim=1).max()) for s in starts)

    unit_e = torch.finfo(y.dtype).eps / 2  # unit roundoff of the exact (pdist) values
    unit_64 = torch.finfo(torch.float64).eps / 2
    # |f - d| <= sqrt(|f^2 - d^2|), and the GEMM form errs by at most (D + 4) u64 (|a| + |b|)^2 <= (D + 4) u64 4 M.
    abs_f = math.sqrt((dim + 4) * unit_64 * 4.0 * max_sqnorm) + 4 * unit_64 * math.sqrt(max_sqnorm)
    # pdist sums D non-negative float32 squares (each within 3u) in some order: relative error <= (D + 2) u (to first
    # order), halved by the sqrt, plus u for the sqrt itself; (D/2 + 4) u holds with room to spare.
    rel_e = (dim / 2 + 4) * unit_e + 8 * unit_64

    def bound(f):
        """Upper bound (with a factor-2 margin) on |pdist value - fast value| for a pair whose fast value is f."""
        return 2.0 * (rel_e * (f + abs_f) + abs_f)

    if num_pairs <= _COLLECT_ALL_MAX_PAIRS:
        result = _select(y, mean, k, -math.inf, math.inf, block_size, bound)
        assert result is not None  # an unbounded bracket always certifies
        return result
    lo, hi = _sample_bracket(y, mean, k, block_size, bound)
    result = _select(y, mean, k, lo, hi, block_size, bound, max_candidates=_MAX_CANDIDATES)
    if result is not None:
        return result
    lo, hi = _histogram_bracket(y, mean, k, 2.0 * math.sqrt(max_sqnorm) + abs_f + 1e-30, block_size)
    for widen in (3.0, 30.0, 300.0):
        result = _select(y, mean, k, lo - widen * bound(lo), hi + widen * bound(hi), block_size, bound)
        if result is not None:
            return result
    result = _select(y, mean, k, -math.inf, math.inf, block_size, bound)  # pragma: no cover - pathological input
    assert result is not None  # pragma: no cover
    return result  # pragma: no cover


def _centered_sq(z: torch.Tensor, center: torch.Tensor, start: int, block_size: int, workspace: Workspace,
                 name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``start:start+block_size`` of ``z`` minus ``center`` in float64 and their squared norms, in buffers."""
    rows = z[start : start + block_size]
    block = torch.sub(rows, center, out=workspace.get(name, tuple(rows.shape), torch.float64))
    squares = torch.mul(block, block, out=workspace.get("squares", tuple(rows.shape), torch.float64))
    return block, squares.sum(dim=1)


def _block_pairs(y: torch.Tensor, mean: torch.Tensor, block_size: int):
    """Yield ``(si, sj, f2, upper)`` for every block pair si <= sj: float64 squared fast distances of the block and,
    on diagonal blocks, the mask of the pairs i < j (None elsewhere). ``f2`` is a reused buffer: consume it before
    asking for the next block."""
    n = y.shape[0]
    workspace = Workspace(y.device)
    upper = torch.ones(block_size, block_size, dtype=torch.bool, device=y.device).triu_(1)
    for si in range(0, n, block_size):
        a, a_sq = _centered_sq(y, mean, si, block_size, workspace, "a")
        for sj in range(si, n, block_size):
            if sj == si:
                b, b_sq = a, a_sq
            else:
                b, b_sq = _centered_sq(y, mean, sj, block_size, workspace, "b")
            f2 = workspace.get("f2", (a.shape[0], b.shape[0]), torch.float64)
            torch.add(a_sq[:, None], b_sq[None, :], out=f2).addmm_(a, b.T, alpha=-2.0)
            yield si, sj, f2, (upper[: a.shape[0], : b.shape[0]] if sj == si else None)


def _squared_threshold(value: float) -> float:
    """Map a distance threshold to the squared scale, keeping 'nothing is below a negative distance'."""
    return value * value if value >= 0.0 else -math.inf


def _select(y, mean, k, lo, hi, block_size, bound, max_candidates: int | None = None) -> torch.Tensor | None:
    """Collect the pairs with fast distance in ``[lo, hi]`` in one pass and finish the exact selection.

    Returns None when the bracket does not provably contain the answer, or holds more than ``max_candidates``
    pairs (then the caller narrows differently).
    """
    n = y.shape[0]
    lo2, hi2 = _squared_threshold(lo), _squared_threshold(hi)
    keep_all = lo == -math.inf and hi == math.inf
    below = 0
    values = Appender(torch.float64, y.device)
    indices = Appender(torch.int64, y.device)
    workspace = Workspace(y.device)
    for si, sj, f2, upper in _block_pairs(y, mean, block_size):
        if keep_all:
            sel = upper if upper is not None else torch.ones_like(f2, dtype=torch.bool)
        else:
            low = torch.lt(f2, lo2, out=workspace.get("low", tuple(f2.shape), torch.bool))
            sel = torch.le(f2, hi2, out=workspace.get("sel", tuple(f2.shape), torch.bool))
            sel ^= low  # lo2 <= f2 <= hi2, since low implies f2 <= hi2
            if upper is not None:
                low &= upper
                sel &= upper
            below += int(torch.count_nonzero(low))
        values.extend(torch.masked_select(f2, sel))  # row-major, the order of the positions below
        position = torch.nonzero(sel.reshape(-1)).squeeze_(1)
        width = f2.shape[1]
        indices.extend((position // width + si) * n + (position % width + sj))
        if max_candidates is not None and values.size > max_candidates:
            return None
    cand_f = values.view().clamp_min_(0.0).sqrt_()
    cand_idx = indices.view()
    if not below <= k < below + cand_f.numel():
        return None
    kk = k - below
    v_f = float(torch.kthvalue(cand_f, kk + 1).values)
    b_v = bound(v_f)
    # Everything under lo must be certainly below the answer, everything over hi certainly above it.
    if lo > -math.inf and lo + bound(lo) > v_f - b_v:
        return None
    if hi < math.inf and hi - bound(hi) < v_f + b_v:
        return None
    cand_b = bound(cand_f)
    certainly_below = cand_f + cand_b < v_f - b_v
    refine = ~certainly_below & (cand_f - cand_b <= v_f + b_v)
    rank = kk - int(torch.count_nonzero(certainly_below))
    idx = cand_idx[refine]
    exact = _pdist_of_pairs(y, idx // n, idx % n)
    return torch.kthvalue(exact, rank + 1).values


def _sample_bracket(y, mean, k, block_size, bound) -> tuple[float, float]:
    """Distance range that holds the k-th distance with high probability, from a balanced sample of pairs.

    Design: a seeded random permutation cuts the rows into groups of r and the sample is every pair inside a group
    (one batched GEMM per slice of groups). Every row then appears in exactly r - 1 sampled pairs, as every row
    appears in n - 1 pairs of the population, so the row effect (rows far from the mean have larger distances to
    everything) cancels and the sample quantile's standard error is the pair term ``sqrt(q (1 - q) / m)``. All pairs
    of one random subset of rows would keep a row-effect term ``4 var(F_i) / r`` that, on real data, widens the
    bracket to a large fraction of all pairs; independent random pairs would cost D scattered reads per pair.
    An unlucky bracket only costs the fallback, never correctness.
    """
    n = y.shape[0]
    num_pairs = n * (n - 1) // 2
    group = max(2, min(block_size, n, -(-2 * _SAMPLE_PAIRS // n) + 1))
    groups_per_slice = max(1, block_size // group)
    generator = torch.Generator().manual_seed(_SAMPLE_SEED)
    permutation = torch.randperm(n, generator=generator)[: (n // group) * group].to(y.device)
    upper = torch.ones(group, group, dtype=torch.bool, device=y.device).triu_(1)
    parts = []
    for start in range(0, permutation.numel(), group * groups_per_slice):
        rows = y.index_select(0, permutation[start : start + group * groups_per_slice]).double() - mean
        rows = rows.reshape(-1, group, rows.shape[1])
        squared = rows.pow(2).sum(dim=2)
        d2 = torch.baddbmm(squared[:, :, None] + squared[:, None, :], rows, rows.transpose(1, 2), alpha=-2.0)
        parts.append(d2[:, upper].flatten().clamp_min_(0.0).sqrt_())
    sample = torch.sort(torch.cat(parts)).values
    m = sample.numel()
    q = (k + 0.5) / num_pairs
    half = _SAMPLE_Z * math.sqrt(q * (1.0 - q) / m) + 2.0 / m
    lo = -math.inf if q - half <= 0.0 else float(sample[int((q - half) * (m - 1))])
    hi = math.inf if q + half >= 1.0 else float(sample[min(m - 1, math.ceil((q + half) * (m - 1)))])
    # widen by the rounding bound so that the certification after the pass rarely fails
    if lo > -math.inf:
        lo -= 3.0 * bound(lo)
    if hi < math.inf:
        hi += 3.0 * bound(hi)
    return lo, hi


def _histogram_bracket(y, mean, k, max_distance: float, block_size: int, bins: int = 4096,
                       rounds: int = 4) -> tuple[float, float]:
    """Deterministic fallback: narrow ``[0, max_distance]`` to the histogram bin holding the k-th fast distance,
    one counting pass per round, until the bin holds few enough pairs to collect."""
    lo, hi = 0.0, max_distance
    for _ in range(rounds):
        edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64, device=y.device)
        edges2 = edges.pow(2)
        counts = torch.zeros(bins + 2, dtype=torch.int64, device=y.device)
        for _si, _sj, f2, upper in _block_pairs(y, mean, block_size):
            values = f2[upper] if upper is not None else f2.flatten()
            counts += torch.bincount(torch.bucketize(values, edges2, right=True), minlength=bins + 2)
        # bucket 0: below lo; bucket b (1..bins): [edges[b-1], edges[b]); bucket bins+1: at or above hi
        cumulative = torch.cumsum(counts, dim=0)
        bucket = int(torch.searchsorted(cumulative, torch.tensor(k, device=y.device), right=True))
        bucket = min(max(bucket, 1), bins)
        lo, hi = float(edges[bucket - 1]), float(edges[bucket])
        if int(counts[bucket]) <= _COLLECT_ALL_MAX_PAIRS // 4:
            break
    return lo, hi


def _pdist_of_pairs(y: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``torch.pdist`` values of the pairs (rows[q], cols[q]), computed by torch.pdist itself so they match it exactly.

    Pairs are stacked P at a time as [y_r0, y_c0, y_r1, y_c1, ...] (2P rows); the wanted entries of the condensed
    output are the pairs (2q, 2q + 1), at index 2P*2q - 2q(2q + 1)/2. Small calls keep the redundant pairs cheap.
    """
    count = rows.numel()
    if count == 0:
        return torch.empty(0, dtype=y.dtype, device=y.device)
    p = _PDIST_CHUNK_PAIRS
    padded = -(-count // p) * p
    if padded != count:  # repeat the last pair so that every call has exactly P pairs
        rows = torch.cat([rows, rows[-1:].expand(padded - count)])
        cols = torch.cat([cols, cols[-1:].expand(padded - count)])
    a = torch.arange(0, 2 * p, 2, device=y.device)
    positions = 2 * p * a - a * (a + 1) // 2
    out = []
    gather = 8192  # pairs gathered at once (2 x 8192 rows)
    # Thousands of tiny pdist calls: on CPU, one thread each. With two, every call pays an OpenMP team start-up,
    # which on a loaded machine costs milliseconds (measured: 6.8 ms per call with 2 threads, 0.11 ms with 1).
    threads = torch.get_num_threads()
    if y.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        for s in range(0, padded, gather):
            stacked = torch.stack([y[rows[s : s + gather]], y[cols[s : s + gather]]], dim=1)
            stacked = stacked.reshape(-1, 2 * p, y.shape[1])
            out.append(torch.stack([torch.pdist(chunk) for chunk in stacked])[:, positions].flatten())
    finally:
        torch.set_num_threads(threads)
    return torch.cat(out)[:count]
