"""The energy-increase counts that the book prints as checked outputs are machine-independent.

Chapter 4 section 4.2 (the three-layer HAM: Euler, RK4 and descent never raise the energy) and
chapter 7 section 7.3 (the large Mixer ODE: the tied energy never rises; the broken
pseudo-energy rises in k of 10 trajectories at X % of the steps) count steps with
:func:`hopfield_lab.ham.count_increases`. Each computation is run here with one and with two
torch threads and must give exactly the same counts, and every energy step must lie far (in
ulps of the trace's max|E|) from the counter's threshold, so that no summation order (thread
count, SIMD width, BLAS kernel) can move a step across it. Measured summation-order noise of these
energies is below 10 ulps (up to ~200 ulps for the 2-neuron system of section 7.2 near its ridge).
"""
import pytest
import torch

from hopfield_lab import lagrangians as lg
from hopfield_lab.demos import ham as demo_ham
from hopfield_lab.demos import symmetry_breaking as sb
from hopfield_lab.ham import HAM, INCREASE_ULPS, Dense, Layer, count_increases

#: a step must be at least this many ulps of max|E| away from the threshold
MARGIN_ULPS = 1024


@pytest.fixture(autouse=True)
def _float64_and_threads():
    old_dtype, old_threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old_dtype)
    torch.set_num_threads(old_threads)


def _with_threads(n, fn):
    torch.set_num_threads(n)
    return fn()


def _distance_to_threshold(E: torch.Tensor) -> float:
    """Smallest |E[k+1] - E[k] - threshold| over all steps and trajectories, in ulps of max|E|."""
    ulp = torch.finfo(E.dtype).eps * E.abs().amax(dim=0)
    return float(((E.diff(dim=0) / ulp) - INCREASE_ULPS).abs().min())


def _chapter4_runs():
    """Section 4.2's network, initial states and three runs (quick-mode batch of 64)."""
    gen = torch.Generator().manual_seed(0)
    net = HAM(
        layers={"v": Layer(12, lg.Tanh(), tau=1.0), "h1": Layer(10, lg.Softmax(beta=2.0), tau=0.5),
                "h2": Layer(6, lg.ReLU(), tau=0.3)},
        synapses={"W1": Dense("v", "h1", std=1.0, generator=gen), "W2": Dense("h1", "h2", std=1.0, generator=gen)},
    ).double()
    x0 = net.init_states(batch=64, kind="randn", std=1.5, generator=gen)
    runs = {
        "euler": net.run(x0, steps=400, dt=0.02, method="euler", record_energy=True).energy,
        "rk4": net.run(x0, steps=160, dt=0.05, method="rk4", record_energy=True).energy,
        "descent": net.run(x0, steps=400, dt=0.1, method="descent", record_energy=True).energy,
    }
    return runs


def _chapter7_large_runs():
    """Section 7.3 in quick mode: RK4, dt = 0.01, t = 10, tied and broken weights."""
    r_sym = sb.run(0.0, "large", seed=0, dt=1e-2, method="rk4")
    r_asym = sb.run(1.0, "large", seed=0, dt=1e-2, method="rk4")
    return r_sym["energy"], r_asym["pseudo"]


def test_chapter4_counts_are_zero_on_one_and_two_threads():
    one, two = (_with_threads(n, _chapter4_runs) for n in (1, 2))
    for method in one:
        for E in (one[method], two[method]):
            assert demo_ham.energy_increases(E) == 0
            assert _distance_to_threshold(E) > MARGIN_ULPS, method


def test_chapter7_counts_are_the_same_on_one_and_two_threads():
    (E1, P1), (E2, P2) = (_with_threads(n, _chapter7_large_runs) for n in (1, 2))
    for E, P in ((E1, P1), (E2, P2)):
        assert int(count_increases(E).sum()) == 0                    # "tied weights: E increases at 0 steps"
        inc = count_increases(P)
        assert int((inc > 0).sum()) == 10                            # "in 10 of 10 trajectories"
        assert f"{100 * float(inc.sum()) / P[1:].numel():.0f}" == "51"  # "at 51 % of the steps"
        assert _distance_to_threshold(E) > MARGIN_ULPS and _distance_to_threshold(P) > MARGIN_ULPS
    assert torch.equal(count_increases(P1), count_increases(P2))
