"""Tests of hopfield_lab.demos.paramixer, the demos of chapter 6 (the parallelized Mixer).

They drive the widget's callback the way Jupyter does (by setting control values) and check
mathematical facts of what the callbacks computed, not just that they ran.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import odes  # noqa: E402
from hopfield_lab.demos import paramixer as dp  # noqa: E402


@pytest.fixture(scope="module")
def small_block():
    blk = dp.symmixer_block(S=3, C=4, Ns=6, Nc=12, radii=(1.0, 2.0), seed=1)
    return blk, odes.initial_states(blk, batch=3, seed=2)


def test_symmixer_block_radii_and_flow(small_block):
    blk, x0 = small_block
    assert blk.mlp_tokens.fc2.weight.shape == (6, 3) and blk.mlp_channels.fc2.weight.shape == (12, 4)
    assert abs(float(blk.mlp_tokens.fc2.weight.detach().norm()) - 1.0) < 1e-12
    assert abs(float(blk.mlp_channels.fc2.weight.detach().norm()) - 2.0) < 1e-12
    assert x0.shape == (3, 3, 4) and x0.dtype == torch.float64


def test_adiabatic_deviation_shrinks_with_tau(small_block):
    blk, x0 = small_block
    devs = [float(dp.adiabatic_comparison(blk, x0, tau, T=2.0)["deviation"].max()) for tau in (0.2, 0.05, 0.0125)]
    assert devs[0] > devs[1] > devs[2]
    assert devs[2] < 0.05
    # first order in tau: quartering tau divides the deviation by roughly 4 (at least 2, at most 6)
    assert 2 < devs[0] / devs[1] < 6 and 2 < devs[1] / devs[2] < 6
    res = dp.adiabatic_comparison(blk, x0, 0.05, T=2.0)
    assert res["x_full"].shape == res["x_flow"].shape == (len(res["t"]), 3, 3, 4)
    # the SymMixer energy never increases along its flow
    assert (res["energy_flow"].diff(dim=0) <= 1e-12).all()


def test_mixer_block_is_leaky_euler_with_steps_one_over_k_plus_two(small_block):
    blk, x0 = small_block
    m = dp.mixer_as_euler(blk, x0, n_iter=12)
    assert m["X"].shape == (13, 3, 3, 4)
    assert float(m["rel_err"].max()) < 1e-4  # exact up to the norm's eps = 1e-6
    assert m["norm_X"][-1] > 3 * m["norm_X"][0]  # the residual stream grows, the Euler state does not


def test_serial_parallel_gap_is_second_order():
    g = dp.serial_parallel_gap(hs=(0.1, 0.01))
    ratio = float(g["gap"][0] / g["gap"][1])
    assert 50 < ratio < 200  # ~ (0.1 / 0.01)^2 = 100


def test_norm_jacobian_asymmetry():
    a = dp.norm_jacobian_asymmetry(S=3, C=4)
    assert a["lagrangian (tokens x channels)"] < 1e-12
    assert a["per token (channels)"] < 1e-12
    assert a["nn.LayerNorm (element-wise gain)"] > 1e-3


def test_paramixer_widget_callback(small_block):
    blk, x0 = small_block
    box = dp.make_widget(blk, x0, T=1.0)
    assert not box.last["diverged"]
    box.controls["tau"].value = 0.01
    box.controls["dt"].value = 0.05  # Euler with dt > 2 tau: the fast layers blow up
    assert box.last["diverged"] and box.last["tau"] == 0.01
    box.controls["dt"].value = 0.001
    last = box.last
    assert not last["diverged"] and abs(last["dt"] - 0.001) < 1e-12
    assert float(last["deviation"].max()) < 0.05


def test_tau_player(small_block):
    blk, x0 = small_block
    html, res = dp.tau_player(blk, x0, taus=(0.3, 0.03), T=1.0)
    assert "<script" in html.data and len(res) == 2
    assert float(res[1]["deviation"].max()) < float(res[0]["deviation"].max())


def test_serial_parallel_gap_leading_term_is_dc_along_t_not_the_commutator():
    g = dp.serial_parallel_gap(hs=(0.1, 0.01, 0.001))
    err, comm = g["leading_err"], g["commutator_err"]
    # h^2 DC(X)[T(X)] predicts the measured gap with an error that shrinks like h ...
    assert float(err[-1]) < 2e-3 and 5 < float(err[0] / err[1]) < 20 and 5 < float(err[1] / err[2]) < 20
    assert torch.allclose(g["leading"], g["gap"], rtol=0.02)
    # ... while the commutator is not the leading term (misses by about the gap itself) ...
    assert (comm > 0.5).all()
    # ... it is the leading difference between the two serial orders
    assert torch.allclose(g["order_gap"][1:], g["commutator"][1:], rtol=0.02)


# --- the auto-checked coding exercise: the SymMixer flow -------------------------------------------

from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402

F = torch.nn.functional


def _flow(X, A, B, G):
    return A.T @ F.gelu(A @ G) + F.gelu(G @ B.T) @ B - X


def flow_reference(X, A, B):
    Xc = X - X.mean(dim=(-2, -1), keepdim=True)
    return _flow(X, A, B, Xc / torch.sqrt(Xc.pow(2).mean(dim=(-2, -1), keepdim=True) + 1e-6))


def flow_with_layer_norm(X, A, B):          # F.layer_norm over the last two axes is the same thing
    return _flow(X, A, B, F.layer_norm(X, X.shape[-2:], eps=1e-6))


def flow_per_token(X, A, B):                # normalises each token over its channels
    return _flow(X, A, B, F.layer_norm(X, X.shape[-1:], eps=1e-6))


def flow_no_leak(X, A, B):
    return flow_reference(X, A, B) + X


def flow_wrong_sign(X, A, B):
    return -flow_reference(X, A, B)


def flow_unbiased(X, A, B):
    Xc = X - X.mean(dim=(-2, -1), keepdim=True)
    return _flow(X, A, B, Xc / torch.sqrt(Xc.flatten(1).var(dim=1)[:, None, None] + 1e-6))


def flow_no_norm(X, A, B):
    return _flow(X, A, B, X)


def flow_transposed(X, A, B):               # A G read as (Ns, S) @ (S, C) but with A^T: a shape error
    return A @ F.gelu(A.T @ X)


def flow_stub(X, A, B):
    raise NotImplementedError


@pytest.mark.parametrize("fn", [flow_reference, flow_with_layer_norm])
def test_symmixer_flow_check_accepts_right_answers(verdict, fn):
    assert verdict(dp.check_symmixer_flow, fn) == f"{CORRECT} SymMixer flow: correct."


@pytest.mark.parametrize("fn, says", [
    (flow_per_token, "over the whole S × C matrix"),
    (flow_no_leak, "the leak, − X"),
    (flow_wrong_sign, "the sign is flipped"),
    (flow_unbiased, "unbiased variance"),
    (flow_no_norm, "G = LN(X), not the raw state"),
    (flow_transposed, "your function raised RuntimeError"),
    (flow_stub, "not implemented yet"),
])
def test_symmixer_flow_check_rejects_typical_mistakes(verdict, fn, says):
    out = verdict(dp.check_symmixer_flow, fn)
    assert out.startswith(f"{WRONG} SymMixer flow:"), out
    assert says in out, out


def test_adiabatic_cost_counts_the_steps_of_adiabatic_comparison(small_block):
    blk, x0 = small_block
    taus = (0.3, 0.02, 0.008)
    cost = dp.adiabatic_cost(blk, x0, taus, T=2.0, probe=2)
    # the same step rule as adiabatic_comparison: dt = min(0.01, tau / 4)
    assert cost["steps"] == sum(len(dp.adiabatic_comparison(blk, x0, t, T=2.0, n_records=10**9)["t"]) - 1
                                for t in taus) == 200 + 400 + 1000
    assert cost["seconds_per_step"] > 0 and cost["estimate_s"] == cost["steps"] * cost["seconds_per_step"]
    with pytest.raises(ValueError, match="probe=0"):
        dp.adiabatic_cost(blk, x0, taus, probe=0)


def test_adiabatic_comparison_caps_the_steps_of_a_tiny_tau(small_block):
    blk, x0 = small_block
    with pytest.raises(ValueError, match=r"T=2 with dt=2.5e-07 needs 8e\+06 steps, more than the cap"):
        dp.adiabatic_comparison(blk, x0, 1e-6, T=2.0)
    with pytest.raises(ValueError, match="the step dt must be a positive, finite number, got 0"):
        dp.adiabatic_comparison(blk, x0, 0.05, T=2.0, dt=0)
