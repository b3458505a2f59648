"""KAD against an independent float64 implementation of the kadtk 1.1.0 formulas, and its exact blockwise median."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_helpers import reference_kad, reference_median_distance

import metrics.median_distance as median_module
from metrics import EmbeddingError, kernel_audio_distance, median_pairwise_distance


def _sets(seed: int, m: int = 60, n: int = 45, dim: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(m, dim, generator=generator)
    y = 1.3 * torch.randn(n, dim, generator=generator) + 0.4
    return x, y


@pytest.mark.parametrize("n", [8, 9, 6, 50])  # 28 and 36 pairs (even), 15 and 1225 pairs (odd)
def test_median_is_the_lower_middle_pairwise_distance(n: int) -> None:
    y = torch.randn(n, 5, generator=torch.Generator().manual_seed(n)) * 2.0 + 3.0
    got = median_pairwise_distance(y)
    assert got.dtype == torch.float32 and got.dim() == 0
    assert torch.equal(got, torch.median(torch.pdist(y)))
    assert float(got) == pytest.approx(reference_median_distance(y.numpy()), rel=1e-6)
    pairs = np.sort(torch.pdist(y.double()).numpy())
    if pairs.size % 2 == 0:  # lower middle value, not the average of the two
        assert float(got) == pytest.approx(pairs[pairs.size // 2 - 1], rel=1e-6)
        assert float(got) < (pairs[pairs.size // 2 - 1] + pairs[pairs.size // 2]) / 2


@pytest.mark.parametrize(("n", "dim", "block_size"), [(50, 8, 7), (51, 8, 7), (300, 64, 64), (400, 512, 128)])
def test_blockwise_median_equals_torch_median_of_pdist_exactly(n: int, dim: int, block_size: int) -> None:
    y = torch.randn(n, dim, generator=torch.Generator().manual_seed(dim)) * 3.0 + 5.0
    assert torch.equal(median_pairwise_distance(y, block_size=block_size), torch.median(torch.pdist(y)))


def test_blockwise_median_with_ties_and_duplicate_rows() -> None:
    y = torch.randint(0, 3, (200, 4), generator=torch.Generator().manual_seed(0)).float()
    assert torch.equal(median_pairwise_distance(y, block_size=32), torch.median(torch.pdist(y)))


def test_sampled_bracket_path_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(median_module, "_COLLECT_ALL_MAX_PAIRS", 1000)  # force the sampled bracket on small inputs
    monkeypatch.setattr(median_module, "_SAMPLE_PAIRS", 3000)
    for n in (400, 701):
        y = torch.randn(n, 32, generator=torch.Generator().manual_seed(n))
        assert torch.equal(median_pairwise_distance(y, block_size=128), torch.median(torch.pdist(y)))


def test_too_many_candidates_fall_back_to_the_histogram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(median_module, "_COLLECT_ALL_MAX_PAIRS", 1000)
    monkeypatch.setattr(median_module, "_MAX_CANDIDATES", 10)  # the sampled bracket is abandoned mid-pass
    y = torch.randn(300, 8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(median_pairwise_distance(y, block_size=64), torch.median(torch.pdist(y)))


def test_histogram_fallback_is_exact_when_the_sample_misleads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(median_module, "_COLLECT_ALL_MAX_PAIRS", 1000)
    monkeypatch.setattr(median_module, "_sample_bracket", lambda *args, **kwargs: (0.0, 1e-3))  # a wrong bracket
    y = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(median_pairwise_distance(y, block_size=100), torch.median(torch.pdist(y)))


def test_kad_matches_the_float64_reference() -> None:
    x, y = _sets(0)
    expected = reference_kad(x.numpy(), y.numpy())
    got = kernel_audio_distance(x, y)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(expected, rel=1e-4)
    # float64 kernels: only the bandwidth stays float32 (kadtk takes the median of a float32 pdist)
    assert float(kernel_audio_distance(x, y, dtype=torch.float64)) == pytest.approx(expected, rel=1e-6)
    s = reference_median_distance(y.numpy())
    exact = kernel_audio_distance(x, y, bandwidth=s, dtype=torch.float64)
    assert float(exact) == pytest.approx(reference_kad(x.numpy(), y.numpy(), bandwidth=s), rel=1e-10)


def test_blockwise_kad_equals_single_block() -> None:
    x, y = _sets(1, m=70, n=53)
    whole = float(kernel_audio_distance(x, y, block_size=4096))
    for block_size in (7, 16):
        assert float(kernel_audio_distance(x, y, block_size=block_size)) == pytest.approx(whole, rel=1e-5)
        exact = kernel_audio_distance(x, y, bandwidth=2.5, block_size=block_size, dtype=torch.float64)
        assert float(exact) == pytest.approx(reference_kad(x.numpy(), y.numpy(), bandwidth=2.5), rel=1e-10)


def test_fixed_bandwidth() -> None:
    x, y = _sets(2)
    for bandwidth in (0.5, 4.0, 30.0):
        got = float(kernel_audio_distance(x, y, bandwidth=bandwidth, block_size=16))
        assert got == pytest.approx(reference_kad(x.numpy(), y.numpy(), bandwidth=bandwidth), rel=1e-4)
    assert float(kernel_audio_distance(x, y, bandwidth=4.0)) != pytest.approx(float(kernel_audio_distance(x, y)))


def test_kad_is_unbiased_so_it_can_be_negative() -> None:
    generator = torch.Generator().manual_seed(3)
    values = []
    for _ in range(6):
        x, y = torch.randn(20, 4, generator=generator), torch.randn(20, 4, generator=generator)
        s = reference_median_distance(y.numpy())
        got = float(kernel_audio_distance(x, y, bandwidth=s, dtype=torch.float64))
        assert got == pytest.approx(reference_kad(x.numpy(), y.numpy(), bandwidth=s), rel=1e-10, abs=1e-13)
        values.append(got)
    assert min(values) < 0.0 < max(values)


def test_kad_grows_with_the_shift_and_is_zero_mean_for_identical_sets() -> None:
    x, _ = _sets(4)
    shifts = [float(kernel_audio_distance(x, x + shift)) for shift in (0.0, 0.3, 1.0)]
    assert shifts[0] < shifts[1] < shifts[2]
    # identical sets: within-set means equal the cross mean apart from the excluded diagonal
    m = x.shape[0]
    assert shifts[0] == pytest.approx(reference_kad(x.numpy(), x.numpy()), rel=1e-4)
    assert shifts[0] < 0.0 and abs(shifts[0]) < 100.0 * 2.0 / m


def test_numpy_inputs_are_accepted() -> None:
    x, y = _sets(5)
    assert float(kernel_audio_distance(x.numpy(), y.numpy())) == pytest.approx(float(kernel_audio_distance(x, y)))


def test_fewer_than_two_embeddings_names_the_set() -> None:
    x, y = _sets(6)
    with pytest.raises(EmbeddingError, match=r"at least 2 generated embeddings, got 1"):
        kernel_audio_distance(x, y[:1])
    with pytest.raises(EmbeddingError, match=r"at least 2 reference embeddings, got 1"):
        kernel_audio_distance(x[:1], y)
    with pytest.raises(EmbeddingError, match=r"at least 2 embeddings, got 1"):
        median_pairwise_distance(y[:1])


def test_mismatched_dimensions_name_both_sets() -> None:
    x, y = _sets(7)
    with pytest.raises(EmbeddingError, match=r"reference embeddings have dimension 24 but generated .* dimension 10"):
        kernel_audio_distance(x, y[:, :10])


def test_non_finite_embeddings_say_which_set_and_how_many_rows() -> None:
    x, y = _sets(8)
    y[[3, 9], 0] = float("nan")
    y[11, 2] = float("inf")
    with pytest.raises(EmbeddingError, match=r"generated embeddings contain NaN or inf in 3 of 45 rows \(rows \[3, 9, 11\]"):
        kernel_audio_distance(x, y)
    x[0, 0] = float("nan")
    with pytest.raises(EmbeddingError, match=r"reference embeddings contain NaN or inf in 1 of 60 rows"):
        kernel_audio_distance(x, y)


def test_bad_shapes_and_arguments() -> None:
    x, y = _sets(9)
    with pytest.raises(EmbeddingError, match=r"2-D \[N, D\]"):
        kernel_audio_distance(x[0], y)
    with pytest.raises(ValueError, match="bandwidth"):
        kernel_audio_distance(x, y, bandwidth=float("nan"))
    with pytest.raises(ValueError, match="block_size"):
        kernel_audio_distance(x, y, block_size=1)
