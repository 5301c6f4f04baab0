"""Demos of chapter 6 (from the three-layer Hopfield network to the parallelized MLP-Mixer).

* :func:`symmixer_block` -- a SymMixer block (tied weights, Lagrangian LayerNorm) with weights on
  spheres of given radii, the set-up of the paper's demos.
* :func:`adiabatic_comparison` -- the full three-layer HAM with fast hidden layers (time constant
  ``tau``) against the SymMixer flow: trajectories, deviation, energies.
* :func:`adiabatic_cost` -- how long the comparison over several ``tau`` takes here (an estimate).
* :func:`mixer_as_euler` -- the residual block ``X <- X + M(N(X))`` against the leaky Euler
  iteration ``Y <- (1 - e_k) Y + e_k M(N(Y))`` with ``e_k = 1/(k+2)``.
* :func:`serial_parallel_gap` -- how far a serial (vanilla) block is from a parallel one as the
  mixing strength ``h`` shrinks, against its leading term ``h^2 DC[T]`` (and the commutator).
* :func:`norm_jacobian_asymmetry` -- is a norm the gradient of a Lagrangian? (Jacobian symmetry)
* :func:`make_widget` -- the chapter's ipywidgets demo: ``tau`` of the hidden layers, Euler step.
* :func:`tau_player` -- its static twin: a ``to_jshtml`` player over ``tau``.
* :func:`check_symmixer_flow` -- the auto-checked coding exercise (the SymMixer flow, eq. ch6-flow).

The models live in :mod:`hopfield_lab.mixer` and :mod:`hopfield_lab.ham`
(:meth:`~hopfield_lab.mixer.ParallelMixerBlock.to_ham`, :meth:`~hopfield_lab.ham.HAM.eliminate`);
this module only runs and draws them. Initial visible states ``(B, S, C)`` (batch, tokens,
channels) come from :func:`hopfield_lab.odes.initial_states`; trajectories are ``(R, B, S, C)`` for
``R`` recorded times.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ... import mixer as mx
from ... import odes
from ...ham import DivergenceError, steps_for
from .. import viz


def symmixer_block(S: int = 4, C: int = 8, Ns: int = 20, Nc: int = 160, radii: tuple[float, float] = (1.0, 2.5),
                   seed: int = 0, dtype: torch.dtype = torch.float64) -> mx.ParallelMixerBlock:
    """A SymMixer block ``(B, S, C) -> (B, S, C)``: :class:`~hopfield_lab.mixer.SymMlp` token and
    channel MLPs (``A: (Ns, S)``, ``B: (Nc, C)``) and the Lagrangian LayerNorm over tokens x
    channels. ``A`` and ``B`` are drawn from a Gaussian and scaled to Frobenius norms ``radii``
    (uniform on spheres, as in the paper's ODE demos)."""
    for name, n in (("S", S), ("C", C), ("Ns", Ns), ("Nc", Nc)):
        if n < 1:
            raise ValueError(f"{name}={n} must be >= 1.")
    blk = mx.ParallelMixerBlock(C, S, mlp_ratio=(Ns / C, Nc / C), mlp_layer=mx.SymMlp,
                                norm_layer=mx.NORMS["lagrangian"])
    if blk.mlp_tokens.fc2.weight.shape != (Ns, S) or blk.mlp_channels.fc2.weight.shape != (Nc, C):
        raise ValueError(f"could not build hidden sizes Ns={Ns}, Nc={Nc} for S={S}, C={C} from mlp ratios.")
    gen = torch.Generator().manual_seed(seed)
    blk = blk.to(dtype)
    with torch.no_grad():
        for lin, r in ((blk.mlp_tokens.fc2, radii[0]), (blk.mlp_channels.fc2, radii[1])):
            w = torch.randn(lin.weight.shape, generator=gen, dtype=dtype)
            lin.weight.copy_(r * w / w.norm())
    return blk.eval()


def _rel_dev(a: Tensor, b: Tensor) -> Tensor:
    """Largest (over the batch) relative distance ``|a - b| / |b|`` at each recorded time: ``(R,)``."""
    return ((a - b).flatten(2).norm(dim=-1) / b.flatten(2).norm(dim=-1).clamp_min(1e-12)).amax(dim=1)


@torch.no_grad()
def adiabatic_comparison(block: mx.ParallelMixerBlock, x0: Tensor, tau: float, T: float = 5.0,
                         dt: float | None = None, method: str = "rk4", n_records: int = 100) -> dict:
    """Integrate the full HAM (hidden time constants ``tau``, visible 1) and the SymMixer flow from
    the same visible state ``x0`` ``(B, S, C)``, the hidden layers starting at their fixed points.

    ``dt`` defaults to ``min(0.01, tau / 4)`` (explicit methods need ``dt`` well below ``tau``).
    Returns a dict: ``t`` ``(R,)``, ``x_full`` and ``x_flow`` ``(R, B, S, C)``, ``deviation``
    ``(R,)`` (largest relative distance over the batch), ``energy_full`` (the full HAM's energy)
    and ``energy_flow`` (the SymMixer energy of the flow) ``(R, B)``, ``diverged`` (True if the full
    network blew up, e.g. Euler with ``dt > 2 tau``; its entries are then NaN), ``tau``, ``dt``.
    """
    if tau <= 0 or T <= 0:
        raise ValueError(f"tau={tau} and T={T} must be positive.")
    dt = min(0.01, tau / 4) if dt is None else float(dt)
    steps = steps_for(T, dt, what="T")  # one line for dt=0, NaN or a tiny dt (step cap)
    every = max(1, steps // n_records)
    ham = block.to_ham(tau=1.0, tau_tokens=tau, tau_channels=tau)
    red = ham.eliminate("hs", "hc")
    flow = red.run({"x": x0}, steps, dt, method=method, record_energy=True, record_states=True, record_every=every)
    diverged = False
    try:
        full = ham.run(red.complete({"x": x0}), steps, dt, method=method, record_energy=True, record_states=True,
                       record_every=every, max_abs=1e6)
        x_full, e_full = full.states["x"], full.energy
    except DivergenceError:
        diverged = True
        x_full = torch.full_like(flow.states["x"], float("nan"))
        e_full = torch.full_like(flow.energy, float("nan"))
    return {
        "t": flow.t,
        "x_full": x_full,
        "x_flow": flow.states["x"],
        "deviation": _rel_dev(x_full, flow.states["x"]),
        "energy_full": e_full,
        "energy_flow": flow.energy,
        "diverged": diverged,
        "tau": float(tau),
        "dt": dt,
    }


@torch.no_grad()
def adiabatic_cost(block: mx.ParallelMixerBlock, x0: Tensor, taus, T: float = 5.0, probe: int = 20) -> dict:
    """What the comparison of :func:`adiabatic_comparison` over ``taus`` costs, measured here.

    Counts the RK4 steps (``round(T / min(0.01, tau / 4))`` per ``tau``, each taken by the full HAM
    and by the flow) and times ``probe`` steps of both networks from ``x0`` ``(B, S, C)`` after one
    untimed warm-up step (energies are recorded only now and then, so they are left out). Returns
    ``steps`` (total over ``taus``), ``seconds_per_step`` (measured, both networks) and
    ``estimate_s = steps * seconds_per_step``: an estimate for this machine, not a promise.
    """
    import time

    if probe < 1:
        raise ValueError(f"probe={probe} must be at least 1 step.")
    steps = sum(max(1, int(round(T / min(0.01, tau / 4)))) for tau in taus)
    ham = block.to_ham(tau=1.0, tau_tokens=min(taus), tau_channels=min(taus))
    red = ham.eliminate("hs", "hc")
    dt = min(0.01, min(taus) / 4)
    start_full = red.complete({"x": x0})
    red.run({"x": x0}, 1, dt, method="rk4")                     # warm-up, not timed
    ham.run(start_full, 1, dt, method="rk4")
    start = time.perf_counter()
    red.run({"x": x0}, probe, dt, method="rk4")
    ham.run(start_full, probe, dt, method="rk4")
    per_step = (time.perf_counter() - start) / probe
    return {"steps": steps, "seconds_per_step": per_step, "estimate_s": steps * per_step}


@torch.no_grad()
def mixer_as_euler(block: mx.ParallelMixerBlock, x0: Tensor, n_iter: int = 20) -> dict:
    """Iterate the residual block ``X_{k+1} = X_k + M(N(X_k))`` and the leaky Euler step
    ``Y_{k+1} = (1 - e_k) Y_k + e_k M(N(Y_k))`` with ``e_k = 1/(k+2)``, both from ``x0``.

    For a scale-invariant norm (``eps -> 0``; a shift ``delta`` is added after normalising, so it
    does not matter) ``X_k = (k+1) Y_k`` exactly: the residual block is the leaky Euler scheme with
    shrinking steps, and ``Y_k`` is the running mean of ``x0`` and the first ``k`` mixing outputs.
    Returns ``X``, ``Y`` ``(n_iter + 1, B, S, C)``,
    ``rel_err`` ``(n_iter + 1,)`` (largest ``|X_k/(k+1) - Y_k| / |Y_k|``), ``energy_X``,
    ``energy_Y`` ``(n_iter + 1, B)`` (the block's energy, for a SymMixer block) and ``norm_X``
    ``(n_iter + 1,)`` (mean Frobenius norm of ``X_k``).
    """
    X, Y = [x0], [x0]
    for k in range(n_iter):
        X.append(X[-1] + block.update(X[-1]))
        e = 1.0 / (k + 2)
        Y.append((1 - e) * Y[-1] + e * block.update(Y[-1]))
    X, Y = torch.stack(X), torch.stack(Y)
    scale = torch.arange(1, n_iter + 2, dtype=X.dtype).view(-1, 1, 1, 1)
    out = {"X": X, "Y": Y, "rel_err": _rel_dev(X / scale, Y), "norm_X": X.flatten(2).norm(dim=-1).mean(1)}
    try:
        out["energy_X"] = torch.stack([block.energy(x) for x in X])
        out["energy_Y"] = torch.stack([block.energy(y) for y in Y])
    except TypeError:  # not a SymMixer block: no energy
        out["energy_X"] = out["energy_Y"] = None
    return out


def serial_parallel_gap(S: int = 4, C: int = 8, Ns: int = 20, Nc: int = 32, hs=(1.0, 0.3, 0.1, 0.03, 0.01),
                        batch: int = 10, seed: int = 0) -> dict:
    r"""Distance between the updates of a serial (vanilla) and a parallel block with the *same*
    weights, when the output weights of both MLPs are scaled by ``h``, and its leading term.

    Write ``T(X) = token-MLP(N(X))`` and ``C(X) = channel-MLP(N(X))`` for the two branches at
    ``h = 1`` (states ``(B, S, C)``). The parallel block adds ``h T(X) + h C(X)``; the serial block
    adds ``h T(X)`` and then ``h C(X + h T(X))``. Taylor-expanding the second branch,

    .. math::  \mathrm{serial} - \mathrm{parallel} = h^2\, DC(X)[T(X)] + O(h^3),

    the channel branch's derivative along the token branch's update (not the commutator
    ``DC[T] - DT[C]``, which is the h² difference between the two *serial orders*).

    Returns float64 tensors over ``hs``: ``h``; ``gap``, the batch mean of
    ``|update_serial - update_parallel|`` (shrinks like ``h^2``); ``rel_gap`` (gap over the
    parallel update's norm, like ``h``); ``leading``, the batch mean of ``h^2 |DC(X)[T(X)]|``;
    ``leading_err``, the batch mean of ``|gap vector - h^2 DC(X)[T(X)]| / |gap vector|`` (shrinks
    like ``h``: the leading term is right); ``commutator``, the batch mean of
    ``h^2 |DC(X)[T(X)] - DT(X)[C(X)]|``; ``commutator_err``, the batch mean of
    ``|gap vector - h^2 (DC[T] - DT[C])| / |gap vector|`` (does *not* shrink: the commutator is not
    the leading term); and ``order_gap``, the batch mean of
    ``|serial(tokens first) - serial(channels first)|`` (its leading term is the commutator).
    """
    torch.manual_seed(seed)
    ratios = (Ns / C, Nc / C)
    ser = mx.SerialMixerBlock(C, S, mlp_ratio=ratios).double().eval()
    par = mx.ParallelMixerBlock(C, S, mlp_ratio=ratios).double().eval()
    par.mlp_tokens.load_state_dict(ser.mlp_tokens.state_dict())
    par.mlp_channels.load_state_dict(ser.mlp_channels.state_dict())
    w_t, w_c = ser.mlp_tokens.fc2.weight.detach().clone(), ser.mlp_channels.fc2.weight.detach().clone()
    x = torch.randn(batch, S, C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def tokens(y):                                   # T(X) = token-MLP(N(X)), (B, S, C)
        return ser.mlp_tokens.mix_tokens(ser.norm1(y))

    def channels(y):                                 # C(X) = channel-MLP(N(X)), (B, S, C)
        return ser.mlp_channels(ser.norm2(y))

    with torch.no_grad():
        t_x, c_x = tokens(x), channels(x)            # the branches at h = 1
    _, dc_t = torch.func.jvp(channels, (x,), (t_x,))  # DC(X)[T(X)], (B, S, C)
    _, dt_c = torch.func.jvp(tokens, (x,), (c_x,))    # DT(X)[C(X)]
    dc_t, dt_c = dc_t.detach(), dt_c.detach()

    def norm(t):                                     # per-sample Frobenius norm, (B,)
        return t.flatten(1).norm(dim=-1)

    rows = {k: [] for k in ("gap", "rel_gap", "leading", "leading_err", "commutator", "commutator_err", "order_gap")}
    with torch.no_grad():
        for h in hs:
            for b in (ser, par):
                b.mlp_tokens.fc2.weight.copy_(h * w_t)
                b.mlp_channels.fc2.weight.copy_(h * w_c)
            us, up = ser.update(x), par.update(x)
            channels_first = channels(x)
            channels_first = channels_first + tokens(x + channels_first)   # C, then T of the new state
            d = us - up
            rows["gap"].append(norm(d).mean())
            rows["rel_gap"].append((norm(d) / norm(up)).mean())
            rows["leading"].append(norm(h * h * dc_t).mean())
            rows["leading_err"].append((norm(d - h * h * dc_t) / norm(d)).mean())
            rows["commutator"].append(norm(h * h * (dc_t - dt_c)).mean())
            rows["commutator_err"].append((norm(d - h * h * (dc_t - dt_c)) / norm(d)).mean())
            rows["order_gap"].append(norm(us - channels_first).mean())
        for b in (ser, par):
            b.mlp_tokens.fc2.weight.copy_(w_t)
            b.mlp_channels.fc2.weight.copy_(w_c)
    out = {k: torch.stack(v) for k, v in rows.items()}
    out["h"] = torch.tensor(hs, dtype=torch.float64)
    return out


def norm_jacobian_asymmetry(S: int = 4, C: int = 8, seed: int = 0) -> dict:
    """``max |J - J^T|`` of the Jacobian ``(S*C, S*C)`` of three norms at a random ``(S, C)`` state:

    ``"lagrangian (tokens x channels)"`` (scalar gain over the whole matrix), ``"per token (channels)"``
    (a scalar-gain LayerNorm over each token's channels) and ``"nn.LayerNorm (element-wise gain)"``
    (tokens x channels with a random element-wise gain, as after training). Zero (to rounding)
    means the norm is the gradient of a scalar Lagrangian.
    """
    from ...lagrangians import LayerNorm

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(S, C, generator=gen, dtype=torch.float64)
    ln = torch.nn.LayerNorm((S, C), eps=1e-6).double()
    with torch.no_grad():
        ln.weight.copy_(1 + 0.3 * torch.randn(S, C, generator=gen, dtype=torch.float64))
    norms = {
        "lagrangian (tokens x channels)": LayerNorm(eps=1e-6, dim=(-2, -1)).double().activation,
        "per token (channels)": LayerNorm(eps=1e-6, dim=-1).double().activation,
        "nn.LayerNorm (element-wise gain)": ln,
    }
    out = {}
    for name, f in norms.items():
        J = torch.autograd.functional.jacobian(f, x).reshape(S * C, S * C)
        out[name] = float((J - J.T).abs().max())
    return out


# ------------------------------------------------------------------------------------------ drawing
def _draw(axes, res, n_lines=4, title_extra=""):
    t = res["t"].numpy()
    ax0, ax1, ax2 = axes
    for a in axes:
        a.clear()
    for i in range(n_lines):
        s, c = divmod(i, res["x_flow"].shape[-1])
        col = f"C{i}"
        ax0.plot(t, res["x_flow"][:, 0, s, c].numpy(), "--", color=col, lw=1.5)
        ax0.plot(t, res["x_full"][:, 0, s, c].numpy(), "-", color=col, lw=1, alpha=0.8)
    ax0.plot([], [], "k-", label="three-layer HAM")
    ax0.plot([], [], "k--", label="SymMixer flow")
    ax0.legend(fontsize=8)
    ax0.set_xlabel(r"time t (units of $\tau_v$)")
    ax0.set_ylabel("visible state X[s, c]")
    ax0.set_title("trajectories of 4 visible neurons", fontsize=10)
    if res["diverged"]:
        ax1.text(0.5, 0.5, f"three-layer HAM diverged:\nEuler needs dt < 2τ\n(dt = {res['dt']:g}, τ = {res['tau']:g})",
                 ha="center", va="center", transform=ax1.transAxes, color="C3")
    else:
        ax1.semilogy(t[1:], res["deviation"].numpy()[1:].clip(1e-16), color="C3")
    ax1.set_xlabel(r"time t (units of $\tau_v$)")
    ax1.set_ylabel("max relative deviation\n"
                   r"$|X_\mathrm{HAM} - X_\mathrm{flow}| \,/\, |X_\mathrm{flow}|$")
    ax1.set_title("HAM vs SymMixer flow", fontsize=10)
    ax2.plot(t, res["energy_flow"].mean(1).numpy(), "--", color="k", label="SymMixer energy (flow)")
    if not res["diverged"]:
        ax2.plot(t, res["energy_full"].mean(1).numpy(), "-", color="C0", label="HAM energy")
    ax2.set_xlabel(r"time t (units of $\tau_v$)")
    ax2.set_ylabel("energy E, batch mean\n(dimensionless)")
    ax2.set_title("energies", fontsize=10)
    ax2.legend(fontsize=8)
    fig = ax0.figure
    fig.suptitle(f"Fast hidden layers, $\\tau_s = \\tau_c$ = {res['tau']:g}, step dt = {res['dt']:g}{title_extra}",
                 fontsize=10)


def make_widget(block: mx.ParallelMixerBlock | None = None, x0: Tensor | None = None, T: float = 5.0):
    """The chapter's interactive demo: the hidden layers' time constant ``tau`` and the Euler step ``dt``.

    Both the three-layer HAM and the SymMixer flow are integrated with explicit Euler steps of size
    ``dt`` up to time ``T``. Returns an ``ipywidgets.VBox`` with attributes ``controls`` (the
    sliders), ``update()`` (the callback) and ``last`` (the :func:`adiabatic_comparison` dict of
    the latest drawing).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    block = block if block is not None else symmixer_block()
    x0 = x0 if x0 is not None else odes.initial_states(block, batch=4)
    controls = {
        "tau": w.FloatLogSlider(value=0.1, base=10, min=-2.5, max=0, step=0.1, description="τ hidden"),
        "dt": w.FloatLogSlider(value=0.01, base=10, min=-3, max=-0.3, step=0.1, description="Euler dt"),
    }
    out = w.Output()
    box = w.VBox([w.HBox(list(controls.values())), out])
    box.controls = controls
    box.last = None

    def update(*_):
        tau, dt = controls["tau"].value, controls["dt"].value
        res = adiabatic_comparison(block, x0, tau, T=T, dt=dt, method="euler")
        with out:
            out.clear_output(wait=True)
            fig, axes = viz.panels(3, row_height=2.8)
            _draw(axes, res)
            plt.show()
            plt.close(fig)
        box.last = res

    from ..viz import connect

    return connect(box, controls, update)


def tau_player(block: mx.ParallelMixerBlock, x0: Tensor, taus=(1.0, 0.3, 0.1, 0.03, 0.01), T: float = 5.0,
               interval: int = 700, dpi: int = 100, results: list | None = None):
    """Static twin of :func:`make_widget`: one frame per ``tau`` (RK4, ``dt = min(0.01, tau/4)``).

    ``results``: :func:`adiabatic_comparison` dicts computed already (then ``block``, ``x0``,
    ``taus`` and ``T`` are not used). Returns ``(IPython.display.HTML player, the dicts)``."""
    if results is None:
        results = [adiabatic_comparison(block, x0, tau, T=T) for tau in taus]
    if not results:
        raise ValueError("tau_player needs at least one tau (or one precomputed result).")
    fig, axes = viz.panels(3, row_height=2.8)
    lo = min(float(r["deviation"][1:].min()) for r in results)
    hi = max(float(r["deviation"].max()) for r in results)

    def frame(i):
        _draw(axes, results[i], title_extra=f"  (frame {i + 1}/{len(results)}, RK4)")
        axes[1].set_ylim(max(lo, 1e-6) / 2, hi * 2)

    frame(0)
    taus_shown = ", ".join(f"{r['tau']:g}" for r in results)
    alt = (f"Player over the hidden layers' time constant τ = {taus_shown}. Top left: trajectories of four "
           "visible neurons, solid for the three-layer HAM and dashed for the SymMixer flow; top right: "
           "their largest relative deviation against time on a log scale; bottom: the energies of both "
           "against time, for one τ per frame.")
    return viz.animate(frame, len(results), fig, alt=alt, interval=interval, dpi=dpi), results


# ------------------------------------------------------------------------------ coding exercise
def _ln(X: Tensor, eps: float = 1e-6, dim=(-2, -1), unbiased: bool = False) -> Tensor:
    """LayerNorm of ``X`` over ``dim`` (default: each (S, C) matrix of (..., S, C)), no gain or shift."""
    Xc = X - X.mean(dim=dim, keepdim=True)
    n = math.prod(X.shape[d] for d in ((dim,) if isinstance(dim, int) else dim))
    var = Xc.pow(2).sum(dim=dim, keepdim=True) / (n - 1 if unbiased else n)
    return Xc / torch.sqrt(var + eps)


def _mixing(G: Tensor, A: Tensor, B: Tensor, tokens: bool = True, channels: bool = True) -> Tensor:
    """``A^T GELU(A G) + GELU(G B^T) B`` for G (..., S, C), A (Ns, S), B (Nc, C) (either part may be left out)."""
    gelu = torch.nn.functional.gelu
    out = torch.zeros_like(G)
    if tokens:
        out = out + A.T @ gelu(A @ G)
    if channels:
        out = out + gelu(G @ B.T) @ B
    return out


def check_symmixer_flow(fn) -> None:
    """Check a reader's ``fn(X, A, B)``: the SymMixer flow of eq. (ch6-flow) with tau_v = 1.

    ``X`` has shape (batch, S, C) (tokens x channels), ``A`` (Ns, S) the token weights, ``B``
    (Nc, C) the channel weights; ``fn`` must return ``dX/dt = A^T GELU(A G) + GELU(G B^T) B - X``
    of shape (batch, S, C), with ``G`` the LayerNorm of each state over its whole S x C matrix
    (population variance, eps = 1e-6, no gain or shift). Compared with a SymMixer block's
    :meth:`~hopfield_lab.mixer.ParallelMixerBlock.flow`. Prints one line (right, or what is wrong).
    """
    from ..exercises import assert_close, check, name_mistake

    def test(f):
        S, C, Ns, Nc = 3, 5, 7, 11                     # all different: a swapped axis cannot pass
        block = symmixer_block(S=S, C=C, Ns=Ns, Nc=Nc, radii=(1.5, 2.5), seed=3)
        X = odes.initial_states(block, batch=4, seed=4)                     # (4, 3, 5)
        A = block.mlp_tokens.fc2.weight.detach().clone()                    # (7, 3)
        B = block.mlp_channels.fc2.weight.detach().clone()                  # (11, 5)
        with torch.no_grad():
            want = block.flow(X)                                            # (4, 3, 5)
        got = f(X.clone(), A.clone(), B.clone())
        what = f"dX/dt for 4 states of S = {S} tokens x C = {C} channels (Ns = {Ns}, Nc = {Nc})"
        G = _ln(X)
        name_mistake(got, want, [
            (want + X, "that is the mixing term M(G) alone: the flow also has the leak, − X."),
            (-want, "the sign is flipped: the flow is M(G) − X (the input minus the state)."),
            (_mixing(X, A, B) - X, "the MLPs must read G = LN(X), not the raw state X."),
            (_mixing(_ln(X, dim=-1), A, B) - X,
             "you normalised each token over its channels; the LayerNorm of eq. (ch6-ln) runs over "
             "the whole S × C matrix of each state (mean and variance over both axes)."),
            (_mixing(_ln(X, unbiased=True), A, B) - X,
             "you used the unbiased variance (divides by SC − 1); LayerNorm uses the mean of the "
             "squared deviations (unbiased=False)."),
            (_mixing(G, A, B, channels=False) - X, "the channel MLP GELU(G Bᵀ) B is missing."),
            (_mixing(G, A, B, tokens=False) - X, "the token MLP Aᵀ GELU(A G) is missing."),
        ], what, atol=1e-9, rtol=1e-7)
        assert_close(got, want, what, atol=1e-9, rtol=1e-7)

    return check("SymMixer flow", test, fn)
