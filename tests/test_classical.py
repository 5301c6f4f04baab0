"""Tests of hopfield_lab.classical: mathematical facts about the three classical memories."""
import math

import pytest
import torch

from hopfield_lab.classical import (
    DenseAssociativeMemory,
    HopfieldNetwork,
    ModernHopfieldNetwork,
    attention,
    attention_equivalence,
    capacity_curve,
    corrupt,
    hebbian_weights,
    overlap,
    random_patterns,
    separation,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ binary Hopfield network
def test_hebbian_weights_match_sum_of_outer_products():
    pats = random_patterns(7, 30, generator=gen(1), dtype=torch.float64)
    w = hebbian_weights(pats)
    ref = sum(torch.outer(p, p) for p in pats) / 30
    ref.fill_diagonal_(0)
    torch.testing.assert_close(w, ref)
    assert torch.equal(w, w.T)


def test_recall_below_capacity():
    """N = 200, P = 0.05 N: every pattern is a fixed point and 15 %-corrupted cues come back exactly."""
    g = gen(0)
    pats = random_patterns(10, 200, generator=g)
    net = HopfieldNetwork(pats)
    assert bool(net.is_fixed_point(pats).all())
    cues = corrupt(pats, 0.15, generator=g)
    assert float(overlap(cues, pats).mean()) == pytest.approx(0.7)
    res = net.run(cues, generator=g)
    assert res.converged
    assert torch.equal(res.state, pats)
    assert torch.equal(net.recall(cues, mode="sync"), pats)


def test_capacity_degrades_near_0_14_N():
    """Stability of stored patterns: near-perfect at 0.05 N, markedly worse at 0.20 N than at 0.10 N."""
    res = capacity_curve(200, [10, 20, 40], trials=3, seed=0)
    m = res.overlap
    torch.testing.assert_close(res.load, torch.tensor([0.05, 0.10, 0.20], dtype=torch.float64))
    assert m[0] > 0.99 and m[1] > 0.95
    assert m[2] < m[1] - 0.1, m
    assert res.perfect[2] < 0.5 * res.perfect[1]
    torch.testing.assert_close(res.bit_error, (1 - m) / 2)


def test_capacity_trial_overlap_is_the_per_network_mean():
    """trial_overlap holds one mean per independent network; their mean is the curve's overlap,
    and each equals the overlap of a network run on its own with the same patterns."""
    res = capacity_curve(100, [10, 20], trials=4, seed=2)
    assert res.trial_overlap.shape == (2, 4) and res.trial_overlap.dtype == torch.float64
    torch.testing.assert_close(res.trial_overlap.mean(1), res.overlap, rtol=0, atol=1e-12)
    assert float(res.trial_overlap.max()) <= 1.0
    # every value is an integer sum of overlaps divided once: a multiple of 1/(K·N)
    k = res.n_patterns.double()[:, None]
    scaled = res.trial_overlap * k * 100
    assert torch.equal(scaled, scaled.round())
    # a single network: its mean is the curve's overlap
    one = capacity_curve(100, [20], trials=1, seed=2)
    assert one.trial_overlap.shape == (1, 1) and float(one.trial_overlap[0, 0]) == float(one.overlap[0])


def test_sync_matches_field_sign_and_can_oscillate():
    # two mutually inhibiting neurons: synchronous updates flip both forever, async settles
    net = HopfieldNetwork(weights=torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
    s = torch.tensor([[1.0, 1.0]])
    assert torch.equal(net.step_sync(s), -s)
    assert torch.equal(net.step_sync(net.step_sync(s)), s)
    sync = net.run(s, mode="sync", max_sweeps=10)
    assert not sync.converged
    asyn = net.run(s, mode="async", generator=gen(0))
    assert asyn.converged and float(asyn.state.prod()) == -1.0


@pytest.mark.parametrize("stacked", [False, True])
def test_async_updates_never_increase_energy(stacked):
    g = gen(3)
    n = 60
    if stacked:  # a stack of 3 networks, 8 states each
        pats = random_patterns(3 * 9, n, generator=g).reshape(3, 9, n)
        net = HopfieldNetwork(pats)
        s = random_patterns(3 * 8, n, generator=g).reshape(3, 8, n)
    else:  # random symmetric weights (not Hebbian): a spin glass with many minima
        a = torch.randn(n, n, generator=g, dtype=torch.float64)
        w = (a + a.T) / 2
        w.fill_diagonal_(0)
        net = HopfieldNetwork(weights=w)
        s = random_patterns(16, n, generator=g, dtype=torch.float64)
    res = net.run(s, record_every=1, generator=g)
    assert res.converged
    de = res.energy.diff(dim=0)
    assert float(de.max()) <= 1e-9
    assert float(de.min()) < 0  # it did move
    # the recorded energies are those of the recorded states
    torch.testing.assert_close(res.energy[-1], net.energy(res.state))
    assert bool(net.is_fixed_point(res.state).all())


def test_energy_change_of_one_flip():
    """ΔE = −Δs_i h_i for a single flip (zero diagonal)."""
    g = gen(4)
    pats = random_patterns(5, 40, generator=g, dtype=torch.float64)
    net = HopfieldNetwork(pats)
    s = random_patterns(1, 40, generator=g, dtype=torch.float64)
    h = net.field(s)
    s2 = s.clone()
    s2[0, 7] *= -1
    torch.testing.assert_close(net.energy(s2) - net.energy(s), -(s2 - s)[:, 7] * h[:, 7])


def test_spurious_states_reversed_and_mixture():
    g = gen(5)
    pats = random_patterns(3, 500, generator=g)
    net = HopfieldNetwork(pats)
    assert bool(net.is_fixed_point(-pats).all())  # reversed patterns
    torch.testing.assert_close(net.energy(-pats), net.energy(pats))
    mix = torch.sign(pats.sum(0, keepdim=True))  # odd mixture of 3
    out = net.recall(mix, generator=g)
    assert float(overlap(out, mix)) > 0.95
    m = out @ pats.T / 500
    assert bool((m - 0.5).abs().max() < 0.1)  # overlap ≈ 1/2 with each of the three


# ------------------------------------------------------------------ dense associative memory
def test_dense_n2_is_the_hebbian_network():
    g = gen(6)
    pats = random_patterns(8, 50, generator=g, dtype=torch.float64)
    s = random_patterns(10, 50, generator=g, dtype=torch.float64)
    dam, hop = DenseAssociativeMemory(pats, F="poly", n=2), HopfieldNetwork(pats)
    # Σ_μ (ξ·s)² = N sᵀWs + P N  ⇒  E_dam = 2N E_hop − P N
    torch.testing.assert_close(dam.energy(s), 2 * 50 * hop.energy(s) - 8 * 50)
    torch.testing.assert_close(dam.step_sync(s), hop.step_sync(s))


def test_dense_n3_stores_more_than_N_patterns():
    """N = 100, P = 2N: F = x³ recalls 10 %-corrupted cues; the Hebbian network does not."""
    dense = capacity_curve(100, [200], model="dense", n=3, trials=1, flip_fraction=0.1, cues_per_trial=40, seed=1)
    hebb = capacity_curve(100, [200], model="hopfield", trials=1, flip_fraction=0.1, cues_per_trial=40, seed=1)
    assert float(dense.overlap[0]) > 0.99
    assert float(hebb.overlap[0]) < 0.6


@pytest.mark.parametrize("F,n", [("poly", 3), ("repu", 4), ("exp", 1)])
def test_dense_async_energy_monotone(F, n):
    g = gen(7)
    pats = random_patterns(30, 40, generator=g, dtype=torch.float64)
    dam = DenseAssociativeMemory(pats, F=F, n=n)
    s = random_patterns(12, 40, generator=g, dtype=torch.float64)
    res = dam.run(s, record_every=1, generator=g)
    assert res.converged
    assert float(res.energy.diff(dim=0).max()) <= 1e-9 * float(res.energy.abs().max())
    # the fixed points are stable under the synchronous rule too
    assert torch.equal(dam.step_sync(res.state), res.state)


def test_dense_exp_no_overflow_and_huge_capacity():
    g = gen(8)
    pats = random_patterns(2000, 1000, generator=g)  # e^(1000) overflows any float: compared in log space
    dam = DenseAssociativeMemory(pats, F="exp")
    cues = corrupt(pats[:5], 0.3, generator=g)
    out = dam.recall(cues, mode="sync", max_sweeps=3)
    assert torch.equal(out, pats[:5])


# ------------------------------------------------------------------ modern Hopfield network
def test_modern_one_step_retrieval_of_separated_patterns():
    g = gen(9)
    x = torch.randn(20, 64, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True) * 8  # ‖x‖ = 8: separation ≈ 64 − O(8·8·√(2 log P / 64))
    assert float(separation(x).min()) > 20
    net = ModernHopfieldNetwork(x, beta=1.0)
    query = x + 0.3 * torch.randn(20, 64, generator=g, dtype=torch.float64)
    out = net.update(query)
    assert float((out - x).abs().max()) < 1e-3
    p = net.weights(query)
    torch.testing.assert_close(ModernHopfieldNetwork.effective_patterns(p), torch.ones(20, dtype=torch.float64), atol=1e-3, rtol=0)


def test_modern_energy_descends_and_beta_limits():
    g = gen(10)
    x = torch.randn(12, 16, generator=g, dtype=torch.float64)
    xi = torch.randn(5, 16, generator=g, dtype=torch.float64)
    for beta in (0.05, 0.5, 5.0):
        net = ModernHopfieldNetwork(x, beta=beta)
        _, traj = net.retrieve(xi, steps=8, return_trajectory=True)
        e = net.energy(traj)
        assert float(e.min()) >= -1e-9  # E ≥ 0
        assert float(e.diff(dim=0).max()) <= 1e-9  # CCCP: never increases
    # β → 0: every query goes to the average of all patterns (global fixed point)
    tiny = ModernHopfieldNetwork(x, beta=1e-6).update(xi)
    torch.testing.assert_close(tiny, x.mean(0).expand_as(tiny), atol=1e-4, rtol=0)
    # β → ∞: the update returns the pattern with the largest dot product
    big = ModernHopfieldNetwork(x, beta=1e4).update(xi)
    torch.testing.assert_close(big, x[(xi @ x.T).argmax(-1)])


def test_attention_equivalence():
    g = gen(11)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        q = torch.randn(6, 8, generator=g).to(dtype)
        k = torch.randn(9, 8, generator=g).to(dtype)
        v = torch.randn(9, 5, generator=g).to(dtype)
        res = attention_equivalence(q, k, v, beta=0.7)
        assert float(res["max_abs_diff"]) < tol
        assert float((attention(q, k, v, 0.7) - res["attention"]).abs().max()) < tol
    # default β = 1/√d as in transformers
    ref = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None])[0]
    assert float((attention(q, k, v) - ref).abs().max()) < 1e-6


# ------------------------------------------------------------------ errors
def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"only \+1 and −1"):
        HopfieldNetwork(torch.tensor([[1.0, 0.0, -1.0]]))
    with pytest.raises(ValueError, match=r"only \+1 and −1"):
        DenseAssociativeMemory(torch.rand(3, 4))
    net = HopfieldNetwork(torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 5\)"):
        net.run(torch.ones(3, 4))
    with pytest.raises(ValueError, match="only"):
        net.run(torch.full((3, 5), 0.5))
    with pytest.raises(ValueError, match="symmetric"):
        HopfieldNetwork(weights=torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="mode"):
        net.run(torch.ones(1, 5), mode="parallel")
    with pytest.raises(ValueError, match="exactly one"):
        HopfieldNetwork()
    with pytest.raises(ValueError, match="F must be"):
        DenseAssociativeMemory(torch.ones(2, 3), F="cubic")
    with pytest.raises(ValueError, match="beta"):
        ModernHopfieldNetwork(torch.randn(3, 4), beta=0.0)
    with pytest.raises(ValueError, match=r"shape \(P, d\)"):
        ModernHopfieldNetwork(torch.randn(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        ModernHopfieldNetwork(torch.randn(3, 4)).update(torch.randn(2, 5))
    with pytest.raises(ValueError, match="equal shapes"):
        overlap(torch.ones(2, 4), torch.ones(3, 4))
    with pytest.raises(ValueError, match="flip_fraction"):
        corrupt(torch.ones(2, 4), 1.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu():
    pats = random_patterns(10, 100, generator=gen(12))
    cues = corrupt(pats, 0.1, generator=gen(13))
    cpu = HopfieldNetwork(pats).recall(cues, generator=gen(14))
    gpu = HopfieldNetwork(pats.cuda()).recall(cues.cuda(), generator=gen(14))
    assert torch.equal(cpu, gpu.cpu())
    x = torch.randn(5, 8)
    net_c, net_g = ModernHopfieldNetwork(x, 2.0), ModernHopfieldNetwork(x.cuda(), 2.0)
    torch.testing.assert_close(net_c.update(x), net_g.update(x.cuda()).cpu())


@pytest.mark.parametrize("model", ["hopfield", "dense"])
def test_recorded_frames_are_the_states_at_their_time(model):
    """Each recorded frame is the state after its number of single-neuron updates: consecutive
    frames differ in at most ``record_every`` neurons, and each recorded energy is its frame's
    (frames once aliased the end-of-sweep state, so a recall looked finished after 32 updates)."""
    g = gen(11)
    pats = random_patterns(4, 64, generator=g)
    net = HopfieldNetwork(pats) if model == "hopfield" else DenseAssociativeMemory(pats, F="poly", n=3)
    cue = corrupt(pats[:2], 0.4, generator=g)
    res = net.run(cue, record_every=8, generator=g)
    assert res.frames.shape[0] == len(res.updates) == res.energy.shape[0]
    changed = (res.frames.diff(dim=0) != 0).sum(-1)  # (T-1, B) neurons changed between frames
    assert int(changed.max()) <= 8 and int(changed.sum()) >= int((cue != res.state).sum())
    torch.testing.assert_close(res.energy, torch.stack([net.energy(f) for f in res.frames]))
