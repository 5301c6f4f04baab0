"""Checked outputs must not depend on the machine: the same numbers for every thread count, BLAS
kernel and summation order.

±1 dynamics decide ``sign(h)`` where ``h`` can be exactly 0 (a tie). If ``h`` is a float sum of
non-integers (e.g. Hebbian weights k/N), rounding in an order-dependent way decides the side of
the tie. The library computes such fields from integers, exactly; these tests change the
summation order on purpose (relabelling neurons or patterns, other thread counts) and demand
bit-equal results.
"""
import math

import pytest
import torch

from hopfield_lab.classical import (DenseAssociativeMemory, HopfieldNetwork, capacity_curve,
                                    hebbian_couplings, random_patterns)


@pytest.fixture
def threads():
    """Run a function under a given torch thread count, restoring the original afterwards."""
    before = torch.get_num_threads()

    def run(n, fn, *args, **kw):
        torch.set_num_threads(n)
        try:
            return fn(*args, **kw)
        finally:
            torch.set_num_threads(before)

    return run


def _pats(p, n, seed, dtype=torch.float32):
    return random_patterns(p, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_hebbian_fields_are_exact_and_have_true_ties():
    pats = _pats(20, 200, 0)                                  # even P: zero fields occur
    net = HopfieldNetwork(pats)
    s = _pats(64, 200, 1)
    exact = s.to(torch.int64) @ hebbian_couplings(pats).to(torch.int64)   # integer arithmetic
    assert torch.equal(net.field(s), (exact.double() / 200).float())
    assert int((exact == 0).sum()) > 0, "the test needs ties to be meaningful"
    assert torch.equal(net.field(s) == 0, exact == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hopfield_step_invariant_under_neuron_relabelling(dtype):
    """Relabelling the neurons reorders every sum in W s; the dynamics must not notice."""
    pats, s = _pats(40, 200, 2, dtype), _pats(128, 200, 3, dtype)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(4))
    a = HopfieldNetwork(pats).step_sync(s)
    b = HopfieldNetwork(pats[:, perm]).step_sync(s[:, perm])
    assert torch.equal(a[:, perm], b)
    ea = HopfieldNetwork(pats).energy(s)
    eb = HopfieldNetwork(pats[:, perm]).energy(s[:, perm])
    assert torch.equal(ea, eb)


@pytest.mark.parametrize("F,n", [("poly", 3), ("repu", 4), ("exp", 1)])
def test_dense_memory_invariant_under_pattern_order(F, n):
    """Reordering the stored patterns reorders the sum over μ in rule (4); ties must stay ties."""
    pats = _pats(500, 60, 5)
    pats[1] = -pats[0]          # a pattern and its reverse: exact ties in the exponential drive
    s = torch.cat([_pats(40, 60, 6), pats[:8]])
    order = torch.randperm(500, generator=torch.Generator().manual_seed(7))
    a = DenseAssociativeMemory(pats, F=F, n=n).step_sync(s)
    b = DenseAssociativeMemory(pats[order], F=F, n=n).step_sync(s)
    assert torch.equal(a, b)
    if F != "exp":
        assert torch.equal(DenseAssociativeMemory(pats, F=F, n=n).energy(s),
                           DenseAssociativeMemory(pats[order], F=F, n=n).energy(s))


def test_dense_drive_is_exact_where_float32_is_not():
    """Σ_μ [(ξ^μ·s + 1)⁵ − (ξ^μ·s − 1)⁵] over 500 patterns: terms beyond float32's exact range."""
    pats = _pats(500, 60, 8)
    dam = DenseAssociativeMemory(pats, F="poly", n=5)
    s = _pats(16, 60, 9)
    m = (s.to(torch.int64) @ pats.T.to(torch.int64))          # (B, P) exact overlaps
    xi = pats.T.to(torch.int64)[None]                         # (1, N, P)
    rest = m[:, None, :] - xi * s.to(torch.int64)[:, :, None]
    terms = (rest + xi) ** 5 - (rest - xi) ** 5               # (B, N, P), integers
    assert int(terms.abs().sum(-1).max()) > 2**24             # a float32 sum would round
    exact = terms.sum(-1)
    expected = torch.where(exact > 0, 1.0, torch.where(exact < 0, -1.0, s))
    assert torch.equal(dam.step_sync(s), expected)


def _capacity(model, F):
    r = capacity_curve(200, [10, 20, 28, 40], trials=2, seed=0, model=model, F=F, n=3,
                       max_sweeps=10 if model == "hopfield" else 3)
    return torch.stack([r.overlap, r.overlap_std, r.perfect, r.bit_error])


@pytest.mark.parametrize("model,F", [("hopfield", "poly"), ("dense", "poly"), ("dense", "exp")])
def test_capacity_curve_same_for_one_and_two_threads(threads, model, F):
    assert torch.equal(threads(1, _capacity, model, F), threads(2, _capacity, model, F))


def test_capacity_statistics_are_exact_rationals():
    r = capacity_curve(100, [6, 12], trials=3, seed=1)
    for k, (m, p) in enumerate(zip(r.overlap.tolist(), r.perfect.tolist())):
        cues = 3 * int(r.n_patterns[k])
        assert abs(m * cues * 100 - round(m * cues * 100)) < 1e-9   # a multiple of 1/(cues·N)
        assert abs(p * cues - round(p * cues)) < 1e-9
    assert r.overlap.dtype == torch.float64


def test_async_recall_same_for_one_and_two_threads(threads):
    def recall():
        g = torch.Generator().manual_seed(0)
        pats = random_patterns(5, 400, generator=g)
        return HopfieldNetwork(pats).recall(random_patterns(100, 400, generator=g), generator=g)

    assert torch.equal(threads(1, recall), threads(2, recall))


def test_couplings_dtype_is_exact_for_the_sizes_it_sees():
    from hopfield_lab.classical import _exact_dtype

    assert _exact_dtype(100, 200, torch.float32) is torch.float32
    assert _exact_dtype(2**12, 2**12, torch.float32) is torch.float64       # N·P = 2^24
    assert _exact_dtype(20, 20, torch.bfloat16) is torch.float64            # 400 > 2^8
    assert _exact_dtype(10, 10, torch.int64) is torch.float64
    assert hebbian_couplings(_pats(3, 8, 0, torch.float64)).dtype is torch.float64
