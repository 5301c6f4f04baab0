r"""Hierarchical associative memory (HAM): layers, synapses, energy, closed-form gradients, dynamics.

Krotov's HAM (Krotov 2021, :cite:`krotov2021hierarchical`; science.md §2): layers ``A`` with
states ``x^A``, convex Lagrangians ``L_A`` (:mod:`hopfield_lab.lagrangians`), activations
``g^A = dL_A/dx^A`` and time constants ``tau_A``, coupled by synapses whose feedback weights are
the transposes of their feedforward weights. The energy

.. math::
    E = \sum_A \bigl[\langle x^A, g^A\rangle - L_A(x^A)\bigr]
        - \sum_{\text{synapses } (W: A \to B)} \langle g^B, W g^A\rangle

has the closed-form gradient :math:`\partial E/\partial g^A = x^A - I^A` where :math:`I^A` is the
total synaptic input to layer ``A``, and the dynamics
:math:`\tau_A \dot x^A = I^A - x^A = -\partial E/\partial g^A` make it decrease:
:math:`\dot E = -\sum_A \tau_A \dot x^{A\top} \nabla^2 L_A \dot x^A \le 0`.

Building blocks (all ``torch.nn.Module`` s; move a network with ``ham.to(device, dtype)``):

* :class:`Layer` ``(shape, lagrangian, tau=1.0)`` -- a vector ``(N,)`` or matrix ``(S, C)``
  layer (shape without batch dims).
* :class:`Synapse` ``(spec, pre, post, weight=None)`` -- a dense einsum synapse: ``spec`` is
  ``"<weight>,<pre>-><post>"``, the input it sends to ``post`` is
  ``einsum(spec, W, g_pre)``; batch dims are added automatically. Ready-made ones:
  :class:`Dense` (every neuron to every neuron), :class:`TokenMixing` (``H^s = A G`` over the
  token axis of an ``(S, C)`` layer, ``A: (Ns, S)``) and :class:`ChannelMixing`
  (``H^c = G B^T``, ``B: (Nc, C)``) (science.md §4). Weights are created from the layer shapes
  when not given (normal, std ``1/sqrt(fan_in)``).
* :class:`HAM` ``(layers, synapses)`` -- the network: :meth:`HAM.energy`,
  :meth:`HAM.energy_terms`, :meth:`HAM.dEdg`, :meth:`HAM.flow`, :meth:`HAM.step`,
  :meth:`HAM.run` (Euler / RK4 in continuous time, or discrete descent
  ``x <- x - alpha dE/dg``; some layers may be clamped) and :meth:`HAM.eliminate` (adiabatic
  elimination of fast hidden layers, giving a :class:`ReducedHAM` with the same interface).

States are dicts ``{layer name: tensor of shape (*batch, *layer.shape)}``; the batch shape may
be empty (one sample) and must be the same for all layers. Energies have the batch shape.

Example: the three-layer HAM behind the SymMixer (science.md §4)::

    import torch
    from hopfield_lab.ham import HAM, Layer, TokenMixing, ChannelMixing
    from hopfield_lab.lagrangians import GELU, LayerNorm

    S, C, Ns, Nc = 4, 8, 20, 160
    ham = HAM(
        layers={
            "x": Layer((S, C), LayerNorm(dim=(-2, -1)), tau=1.0),   # visible, LN over the matrix
            "hs": Layer((Ns, C), GELU(), tau=0.01),                 # token hidden layer
            "hc": Layer((S, Nc), GELU(), tau=0.01),                 # channel hidden layer
        },
        synapses={
            "A": TokenMixing(pre="x", post="hs"),                   # input to hs: A @ G
            "B": ChannelMixing(pre="x", post="hc"),                 # input to hc: G @ B.T
        },
    )
    xs = ham.init_states(batch=10, kind="randn")                    # {"x": (10,4,8), ...}
    E = ham.energy(xs)                                              # (10,)
    parts = ham.energy_terms(xs)                                    # {"x":, "hs":, "hc":, "A":, "B":}
    grads = ham.dEdg(xs)                                            # {"x": x - I_x, ...}
    traj = ham.run(xs, steps=500, dt=2e-3, method="rk4", record_energy=True)
    traj.x, traj.energy.shape                                       # final states, (501, 10)

    mixer = ham.eliminate("hs", "hc")          # tau_s, tau_c -> 0: the SymMixer flow
    X = {"x": xs["x"]}
    mixer.energy(X)                            # <X,G> - L(X) - sum Phi(A G) - sum Phi(G B^T)
    mixer.flow(X)["x"]                         # A^T GELU(A G) + GELU(G B^T) B - X
    mixer.run(X, steps=1000, dt=0.01, record_energy=True).energy   # never increases

:meth:`HAM.run` runs under ``torch.no_grad()`` unless ``grad=True`` (e.g. to train through a
few descent steps, as the Energy MetaFormer does); :meth:`HAM.step`, :meth:`HAM.dEdg` and
:meth:`HAM.energy` follow the caller's grad mode.

Errors: mismatched shapes name the synapse, the layer and the expected shape; non-positive
``tau`` or step sizes raise ``ValueError``; NaN, inf or exploding states during :meth:`HAM.run`
raise :class:`DivergenceError` naming the layer and the step and suggesting a smaller step.
Closed-form gradients only: autograd of the energy is used in the tests, never here.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .lagrangians import Lagrangian, get_lagrangian

__all__ = [
    "Layer",
    "Synapse",
    "Dense",
    "TokenMixing",
    "ChannelMixing",
    "HAM",
    "ReducedHAM",
    "Trajectory",
    "DivergenceError",
    "METHODS",
]

States = Dict[str, torch.Tensor]
METHODS = ("euler", "rk4", "descent")


class DivergenceError(RuntimeError):
    """The dynamics produced NaN/inf or exploding states. The message names the layer and step."""


def _positive(value, what: str, hint: str = "") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a positive number, got {value!r}.") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{what} must be a positive, finite number, got {value!r}.{hint}")
    return v


# ----------------------------------------------------------------------------------------------
# layers
# ----------------------------------------------------------------------------------------------
class Layer(nn.Module):
    r"""A layer of neurons: a shape (without batch dims), a Lagrangian and a time constant.

    Args:
        shape: the neurons' shape, e.g. ``(784,)`` or ``(S, C)`` (an int means ``(n,)``).
        lagrangian: a :class:`~hopfield_lab.lagrangians.Lagrangian` or its name
            (see :func:`~hopfield_lab.lagrangians.get_lagrangian`). Its neuron dims must lie
            inside the layer; layer dims it does not act over are summed (independent copies,
            e.g. ``LayerNorm(dim=-1)`` on an ``(S, C)`` layer normalises every token).
        tau: time constant, > 0 (small tau = fast layer).

    Per-sample quantities for ``x`` of shape ``(*B, *shape)``: :meth:`activation` (same shape),
    :meth:`lagrangian` and :meth:`legendre` (shape ``B``).
    """

    def __init__(self, shape: Union[int, Sequence[int]], lagrangian: Union[str, Lagrangian] = "identity",
                 tau: float = 1.0):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(shape) == 0 or not all(isinstance(n, int) and n > 0 for n in shape):
            raise ValueError(f"Layer shape must be a non-empty tuple of positive ints, got {shape!r}.")
        self.shape: Tuple[int, ...] = shape
        self.lagrangian = get_lagrangian(lagrangian)
        if self.lagrangian.ndim > len(shape):
            raise ValueError(
                f"{type(self.lagrangian).__name__}(dim={self.lagrangian.dim}) acts over "
                f"{self.lagrangian.ndim} trailing dims, but the layer has shape {shape} "
                f"({len(shape)} dims)."
            )
        self.tau = _positive(tau, "Layer tau (time constant)")
        self._extra = len(shape) - len(self.lagrangian.dim)  # layer dims left after L

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def _per_sample(self, t: torch.Tensor) -> torch.Tensor:
        return t.sum(dim=tuple(range(-self._extra, 0))) if self._extra else t

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """g = dL/dx, shape ``(*B, *shape)``."""
        return self.lagrangian.activation(x)

    def lagrangian_value(self, x: torch.Tensor) -> torch.Tensor:
        """L(x) summed over the layer, shape ``B``."""
        return self._per_sample(self.lagrangian(x))

    def legendre(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's energy ``<x, g> - L(x)``, shape ``B``."""
        return self._per_sample(self.lagrangian.legendre(x))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, tau={self.tau:g}"


# ----------------------------------------------------------------------------------------------
# synapses
# ----------------------------------------------------------------------------------------------
_SPEC = re.compile(r"^\s*([a-zA-Z]+)\s*,\s*([a-zA-Z]+)\s*->\s*([a-zA-Z]+)\s*$")


class Synapse(nn.Module):
    r"""A dense synapse from layer ``pre`` to layer ``post``, written as an einsum.

    ``spec = "<w>,<p>-><q>"`` (letters only, no batch dims): the synapse sends
    ``I_post = einsum("<w>,...<p>->...<q>", W, g_pre)`` to ``post`` and, through the same
    (transposed) weights, ``I_pre = einsum("<w>,...<q>->...<p>", W, g_post)`` back to ``pre``.
    Its energy is ``-<g_post, I_post>`` (per sample). With ``pre == post`` (a recurrent synapse
    inside a layer) the energy is ``-1/2 <g, W g>`` and the input ``1/2 (W + W^T) g``.

    Examples: ``"ij,j->i"`` (vector to vector, ``W: (N_post, N_pre)``), ``"ns,sc->nc"`` (token
    mixing), ``"nc,sc->sn"`` (channel mixing).

    Args:
        spec: the einsum string.
        pre, post: layer names.
        weight: a tensor of the expected shape, or None to draw ``N(0, std^2)`` when the network
            is built (shape inferred from the layers).
        std: the init std; default ``1/sqrt(fan_in)`` (fan_in: product of the summed dims).
        learnable: register the weight as an ``nn.Parameter`` (default) or a buffer.
        generator: optional ``torch.Generator`` for the init.
    """

    def __init__(self, spec: Optional[str], pre: str, post: str, weight: Optional[torch.Tensor] = None,
                 std: Optional[float] = None, learnable: bool = True,
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        self.pre, self.post = str(pre), str(post)
        self.spec = spec
        if spec is not None:
            self._parse(spec)
        self._init_weight = weight
        self._std = std
        self._learnable = learnable
        self._generator = generator
        if learnable:
            self.register_parameter("weight", None)
        else:
            self.register_buffer("weight", None)
        self.name = "?"
        self.self_loop = self.pre == self.post

    # -- construction ---------------------------------------------------------------------
    def _parse(self, spec: str) -> None:
        m = _SPEC.match(spec)
        if not m:
            raise ValueError(
                f"Synapse spec {spec!r} is not of the form '<weight>,<pre>-><post>' with letters only, "
                "e.g. 'ij,j->i' or 'ns,sc->nc' (batch dims are added automatically)."
            )
        w, p, q = m.groups()
        for part, label in ((w, "weight"), (p, "pre"), (q, "post")):
            if len(set(part)) != len(part):
                raise ValueError(f"Synapse spec {spec!r}: an index repeats inside the {label} part {part!r}.")
        for ch in w:
            if ch not in p and ch not in q:
                raise ValueError(f"Synapse spec {spec!r}: weight index {ch!r} appears in neither pre nor post.")
        for ch in q:
            if ch not in w and ch not in p:
                raise ValueError(f"Synapse spec {spec!r}: post index {ch!r} appears in neither weight nor pre.")
        for ch in p:
            if ch not in w and ch not in q:
                raise ValueError(f"Synapse spec {spec!r}: pre index {ch!r} appears in neither weight nor post.")
        self.w_idx, self.pre_idx, self.post_idx = w, p, q
        self.spec = f"{w},{p}->{q}"
        self._eq_post = f"{w},...{p}->...{q}"
        self._eq_pre = f"{w},...{q}->...{p}"

    def build(self, name: str, pre_layer: Layer, post_layer: Layer) -> None:
        """Check the spec against the layers' shapes and create/check the weight (called by HAM)."""
        self.name = name
        where = f"synapse {name!r} ({self.spec}, {self.pre!r} -> {self.post!r})"
        for layer, idx, role, lname in ((pre_layer, self.pre_idx, "pre", self.pre),
                                        (post_layer, self.post_idx, "post", self.post)):
            if len(idx) != layer.ndim:
                raise ValueError(
                    f"{where}: the {role} part {idx!r} has {len(idx)} dims but layer {lname!r} has shape "
                    f"{layer.shape} ({layer.ndim} dims)."
                )
        sizes: Dict[str, int] = {}
        for layer, idx, lname in ((pre_layer, self.pre_idx, self.pre), (post_layer, self.post_idx, self.post)):
            for ch, n in zip(idx, layer.shape):
                if ch in sizes and sizes[ch] != n:
                    raise ValueError(
                        f"{where}: index {ch!r} has size {sizes[ch]} in layer {self.pre!r} "
                        f"(shape {pre_layer.shape}) but {n} in layer {lname!r} (shape {layer.shape})."
                    )
                sizes[ch] = n
        expected = tuple(sizes[ch] for ch in self.w_idx)
        w = self._init_weight
        if w is None:
            w = self.weight.detach() if isinstance(self.weight, torch.Tensor) else None
        if w is None:
            fan_in = math.prod(sizes[ch] for ch in self.w_idx if ch in self.pre_idx and ch not in self.post_idx)
            std = (1.0 / math.sqrt(max(fan_in, 1))) if self._std is None else float(self._std)
            w = torch.randn(expected, generator=self._generator) * std
        else:
            if not isinstance(w, torch.Tensor):
                w = torch.as_tensor(w, dtype=torch.get_default_dtype())
            if tuple(w.shape) != expected:
                raise ValueError(
                    f"{where}: weight has shape {tuple(w.shape)}, expected {expected} "
                    f"(indices {self.w_idx!r} with sizes from layers {self.pre!r} {pre_layer.shape} "
                    f"and {self.post!r} {post_layer.shape})."
                )
        self._init_weight = None
        if self._learnable:
            # a Parameter passed in is kept as is (so weights can be tied between synapses)
            self.weight = w if isinstance(w, nn.Parameter) else nn.Parameter(w.detach().clone())
        else:
            self.weight = w.detach().clone()

    # -- maths ----------------------------------------------------------------------------
    def _w(self, g: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError(f"Synapse {self.spec!r} has no weight yet: put it in a HAM (which builds it).")
        return self.weight if self.weight.dtype == g.dtype else self.weight.to(g.dtype)

    def to_post(self, g_pre: torch.Tensor) -> torch.Tensor:
        """Input to ``post`` from ``g_pre``: ``(*B, *pre.shape) -> (*B, *post.shape)``."""
        return torch.einsum(self._eq_post, self._w(g_pre), g_pre)

    def to_pre(self, g_post: torch.Tensor) -> torch.Tensor:
        """Feedback input to ``pre`` from ``g_post`` (transposed weights)."""
        return torch.einsum(self._eq_pre, self._w(g_post), g_post)

    def energy(self, g_pre: torch.Tensor, g_post: torch.Tensor) -> torch.Tensor:
        """``-<g_post, W g_pre>`` per sample (halved for a recurrent synapse), shape ``B``."""
        I = self.to_post(g_pre)
        e = -(g_post * I).flatten(start_dim=g_post.dim() - len(self.post_idx)).sum(-1)
        return 0.5 * e if self.self_loop else e

    def extra_repr(self) -> str:
        shape = None if self.weight is None else tuple(self.weight.shape)
        return f"{self.spec!r}, {self.pre!r} -> {self.post!r}, weight={shape}"


class Dense(Synapse):
    """Every neuron of ``pre`` to every neuron of ``post``: ``W`` of shape ``post.shape + pre.shape``.

    For vector layers ``I_post = W g_pre`` with ``W: (N_post, N_pre)``; for matrix layers the
    spec is built from the layers' ranks (e.g. ``"ijpq,pq->ij"``).
    """

    def __init__(self, pre: str, post: str, weight: Optional[torch.Tensor] = None, std: Optional[float] = None,
                 learnable: bool = True, generator: Optional[torch.Generator] = None):
        super().__init__(None, pre, post, weight, std, learnable, generator)

    def build(self, name, pre_layer, post_layer):
        if pre_layer.ndim > 6 or post_layer.ndim > 6:
            raise ValueError(f"Dense synapse {name!r}: layers of more than 6 dims are not supported.")
        q = "ijklmn"[: post_layer.ndim]
        p = "pqrstu"[: pre_layer.ndim]
        self._parse(f"{q}{p},{p}->{q}")
        super().build(name, pre_layer, post_layer)
        self._post_shape, self._pre_shape = post_layer.shape, pre_layer.shape

    # the same maths as the einsum, as one matmul on flattened layers (faster on CPU)
    def to_post(self, g_pre):
        W = self._w(g_pre).reshape(math.prod(self._post_shape), math.prod(self._pre_shape))
        k = len(self._pre_shape)
        flat = g_pre.reshape(*g_pre.shape[: g_pre.dim() - k], -1) if k > 1 else g_pre
        out = flat @ W.T
        return out.reshape(*out.shape[:-1], *self._post_shape) if len(self._post_shape) > 1 else out

    def to_pre(self, g_post):
        W = self._w(g_post).reshape(math.prod(self._post_shape), math.prod(self._pre_shape))
        k = len(self._post_shape)
        flat = g_post.reshape(*g_post.shape[: g_post.dim() - k], -1) if k > 1 else g_post
        out = flat @ W
        return out.reshape(*out.shape[:-1], *self._pre_shape) if len(self._pre_shape) > 1 else out


class TokenMixing(Synapse):
    """Token-mixing synapse of an ``(S, C)`` layer: ``H^s = A G`` with ``A: (Ns, S)``.

    ``pre`` has shape ``(S, C)``, ``post`` ``(Ns, C)``; the weights are shared by all channels.
    The feedback to ``pre`` is ``A^T g(H^s)``.
    """

    def __init__(self, pre: str, post: str, weight: Optional[torch.Tensor] = None, std: Optional[float] = None,
                 learnable: bool = True, generator: Optional[torch.Generator] = None):
        super().__init__("ns,sc->nc", pre, post, weight, std, learnable, generator)

    def to_post(self, g_pre):  # A @ G, same as the einsum
        return torch.matmul(self._w(g_pre), g_pre)

    def to_pre(self, g_post):  # A^T @ g(H^s)
        return torch.matmul(self._w(g_post).T, g_post)


class ChannelMixing(Synapse):
    """Channel-mixing synapse of an ``(S, C)`` layer: ``H^c = G B^T`` with ``B: (Nc, C)``.

    ``pre`` has shape ``(S, C)``, ``post`` ``(S, Nc)``; the weights are shared by all tokens.
    The feedback to ``pre`` is ``g(H^c) B``.
    """

    def __init__(self, pre: str, post: str, weight: Optional[torch.Tensor] = None, std: Optional[float] = None,
                 learnable: bool = True, generator: Optional[torch.Generator] = None):
        super().__init__("nc,sc->sn", pre, post, weight, std, learnable, generator)

    def to_post(self, g_pre):  # G @ B^T, same as the einsum
        return torch.matmul(g_pre, self._w(g_pre).T)

    def to_pre(self, g_post):  # g(H^c) @ B
        return torch.matmul(g_post, self._w(g_post))


# ----------------------------------------------------------------------------------------------
# dynamics shared by the full and the reduced network
# ----------------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """Result of :meth:`HAM.run`.

    Attributes:
        x: the final states ``{name: (*B, *shape)}``.
        t: times of the recorded points (``step * dt``; for descent the step index), ``(n_rec,)``.
        energy: ``(n_rec, *B)`` energies at those points, or None if not recorded.
        states: ``{name: (n_rec, *B, *shape)}`` if ``record_states`` else None.
        steps: number of steps taken.
    """

    x: States
    t: torch.Tensor
    energy: Optional[torch.Tensor]
    states: Optional[States]
    steps: int


class _Dynamics(nn.Module):
    """Euler / RK4 / descent on top of ``dEdg`` (``tau dx/dt = -dE/dg``)."""

    # subclasses provide: dynamic_layers (name -> Layer), _dEdg(xs), energy(xs), _check_states(xs)
    def _taus(self):
        return {n: l.tau for n, l in self.dynamic_layers.items()}

    def _check_clamped(self, clamped) -> Tuple[str, ...]:
        clamped = (clamped,) if isinstance(clamped, str) else tuple(clamped or ())
        for c in clamped:
            if c not in self.dynamic_layers:
                raise KeyError(f"clamped layer {c!r} is not a layer here; layers: {list(self.dynamic_layers)}.")
        return clamped

    def forward(self, xs: States) -> torch.Tensor:
        """Calling the network returns its energy (shape ``B``)."""
        return self.energy(xs)

    def dEdg(self, xs: States) -> States:
        r"""Closed-form ``dE/dg^A = x^A - I^A`` for every layer (``= -tau_A dx^A/dt``)."""
        self._check_states(xs)
        return self._dEdg(xs)

    def flow(self, xs: States, clamped: Iterable[str] = ()) -> States:
        r"""``dx/dt = (I - x) / tau = -(dE/dg) / tau`` for every layer (zero for clamped ones)."""
        clamped = self._check_clamped(clamped)
        self._check_states(xs)
        return self._flow(xs, clamped)

    def _flow(self, xs, clamped):
        d = self._dEdg(xs)
        layers = self.dynamic_layers
        return {n: (torch.zeros_like(v) if n in clamped else v * (-1.0 / layers[n].tau)) for n, v in d.items()}

    def step(self, xs: States, dt: float, method: str = "euler", clamped: Iterable[str] = ()) -> States:
        """One step of ``method``: ``"euler"``, ``"rk4"`` (time step ``dt``) or ``"descent"``
        (``x <- x - dt * dE/dg``, ``dt`` being the step size alpha, no tau). Returns new states."""
        method = self._check_method(method)
        dt = _positive(dt, f"step size dt (method {method!r})")
        clamped = self._check_clamped(clamped)
        self._check_states(xs)
        return self._step(xs, dt, method, clamped)

    @staticmethod
    def _check_method(method: str) -> str:
        m = str(method).lower()
        if m not in METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")
        return m

    def _step(self, xs, dt, method, clamped):
        if method == "euler":
            f = self._flow(xs, clamped)
            return {n: x + dt * f[n] for n, x in xs.items()}
        if method == "descent":
            d = self._dEdg(xs)
            return {n: (x if n in clamped else x - dt * d[n]) for n, x in xs.items()}
        k1 = self._flow(xs, clamped)
        k2 = self._flow({n: x + 0.5 * dt * k1[n] for n, x in xs.items()}, clamped)
        k3 = self._flow({n: x + 0.5 * dt * k2[n] for n, x in xs.items()}, clamped)
        k4 = self._flow({n: x + dt * k3[n] for n, x in xs.items()}, clamped)
        return {n: x + (dt / 6.0) * (k1[n] + 2.0 * k2[n] + 2.0 * k3[n] + k4[n]) for n, x in xs.items()}

    def _diverged(self, xs: States, limit: Optional[float]):
        names = list(xs)
        peaks = torch.stack([xs[n].detach().abs().amax().to(torch.float64) for n in names]).tolist()
        for n, p in zip(names, peaks):
            if not math.isfinite(p) or (limit is not None and p > limit):
                kind = "NaN" if math.isnan(p) else ("inf" if math.isinf(p) else f"|x| = {p:.3g} > {limit:g}")
                return n, kind
        return None

    def run(self, xs: States, steps: int, dt: float, method: str = "euler", clamped: Iterable[str] = (),
            record_energy: bool = False, record_states: bool = False, record_every: int = 1,
            check_every: int = 10, max_abs: Optional[float] = 1e8, progress: bool = False,
            grad: bool = False) -> Trajectory:
        r"""Integrate the dynamics for ``steps`` steps.

        Args:
            xs: initial states ``{name: (*B, *shape)}`` (not modified).
            steps: number of steps (>= 0).
            dt: time step (``"euler"``, ``"rk4"``: ``tau_A dx^A/dt = I^A - x^A``) or step size
                alpha (``"descent"``: ``x <- x - alpha dE/dg``); > 0.
            method: ``"euler"``, ``"rk4"`` or ``"descent"``.
            clamped: names of layers held fixed.
            record_energy: record the energy (per sample) every ``record_every`` steps and at the end.
            record_states: record all states likewise.
            check_every: look for NaN/inf/exploding states every this many steps (and at the end);
                1 names the exact step, larger values sync less often (GPU).
            max_abs: a state with ``|x| > max_abs`` counts as diverged (None: only NaN/inf).
            progress: show a tqdm progress bar.
            grad: keep the autograd graph through the steps (e.g. to train through a few descent
                steps). Default False: runs under ``torch.no_grad()`` (long runs would otherwise
                keep every step's graph alive). :meth:`step`, :meth:`dEdg` and :meth:`energy`
                always follow the caller's grad mode.

        Returns:
            a :class:`Trajectory`. Raises :class:`DivergenceError` on NaN/inf/exploding states.
        """
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return self._run(xs, steps, dt, method, clamped, record_energy, record_states, record_every,
                             check_every, max_abs, progress)

    def _run(self, xs, steps, dt, method, clamped, record_energy, record_states, record_every,
             check_every, max_abs, progress):
        method = self._check_method(method)
        dt = _positive(dt, f"step size dt (method {method!r})",
                       " Use a small positive step, e.g. dt=0.01 (RK4/Euler: below the smallest tau).")
        if not (isinstance(steps, int) and steps >= 0):
            raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
        record_every = int(record_every)
        check_every = int(check_every)
        if record_every < 1 or check_every < 1:
            raise ValueError("record_every and check_every must be >= 1.")
        clamped = self._check_clamped(clamped)
        self._check_states(xs)
        xs = dict(xs)
        bad = self._diverged(xs, max_abs)
        if bad is not None:
            raise DivergenceError(f"initial state of layer {bad[0]!r} is not usable ({bad[1]}).")

        times, energies, history = [], [], {n: [] for n in xs} if record_states else None
        recording = record_energy or record_states
        unit = 1.0 if method == "descent" else dt

        def record(k):
            times.append(k * unit)
            if record_energy:
                energies.append(self.energy(xs))
            if record_states:
                for n, v in xs.items():
                    history[n].append(v)

        if recording:
            record(0)
        it = range(1, steps + 1)
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(it, desc=f"{method} dt={dt:g}")
        last_ok = 0
        for k in it:
            xs = self._step(xs, dt, method, clamped)
            if k % check_every == 0 or k == steps:
                bad = self._diverged(xs, max_abs)
                if bad is not None:
                    when = f"at step {k}" if k - last_ok <= 1 else f"between steps {last_ok + 1} and {k}"
                    raise DivergenceError(
                        f"{method} dynamics diverged: layer {bad[0]!r} reached {bad[1]} {when} "
                        f"(dt={dt:g}). Try a smaller step, e.g. dt={dt / 4:g}"
                        + (" (keep dt well below the smallest tau)" if method != "descent" else "")
                        + ", or smaller weights; check_every=1 pinpoints the step."
                    )
                last_ok = k
            if recording and (k % record_every == 0 or k == steps):
                record(k)
        if not recording:
            times = [0.0, steps * unit]
        return Trajectory(
            x=xs,
            t=torch.tensor(times, dtype=torch.float64),
            energy=torch.stack(energies) if record_energy else None,
            states={n: torch.stack(v) for n, v in history.items()} if record_states else None,
            steps=steps,
        )

    def descend(self, xs: States, steps: int, alpha: float, **kw) -> Trajectory:
        """Discrete descent ``x <- x - alpha dE/dg`` (:meth:`run` with ``method="descent"``)."""
        return self.run(xs, steps, alpha, method="descent", **kw)


# ----------------------------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------------------------
class HAM(_Dynamics):
    r"""A hierarchical associative memory: named layers and the synapses between them.

    Args:
        layers: ``{name: Layer}``.
        synapses: ``{name: Synapse}``; every synapse names its ``pre`` and ``post`` layers.
            Layer and synapse names must differ (they share the keys of :meth:`energy_terms`).

    Shapes: states ``{name: (*B, *layer.shape)}``; energies ``B``.
    """

    def __init__(self, layers: Mapping[str, Layer], synapses: Mapping[str, Synapse] = None):
        super().__init__()
        synapses = dict(synapses or {})
        if not layers:
            raise ValueError("A HAM needs at least one layer.")
        for n, l in layers.items():
            if not isinstance(l, Layer):
                raise TypeError(f"layer {n!r} must be a hopfield_lab.ham.Layer, got {type(l).__name__}.")
        clash = set(layers) & set(synapses)
        if clash:
            raise ValueError(f"names used for both a layer and a synapse: {sorted(clash)}; rename one.")
        self.layers = nn.ModuleDict(layers)
        for n, s in synapses.items():
            if not isinstance(s, Synapse):
                raise TypeError(f"synapse {n!r} must be a hopfield_lab.ham.Synapse, got {type(s).__name__}.")
            for role, lname in (("pre", s.pre), ("post", s.post)):
                if lname not in self.layers:
                    raise KeyError(
                        f"synapse {n!r} has {role}={lname!r}, which is not a layer; layers: {list(self.layers)}."
                    )
            s.build(n, self.layers[s.pre], self.layers[s.post])
        self.synapses = nn.ModuleDict(synapses)

    @property
    def dynamic_layers(self) -> Mapping[str, Layer]:
        return self.layers

    @property
    def layer_names(self) -> Tuple[str, ...]:
        return tuple(self.layers)

    # -- states ---------------------------------------------------------------------------
    def _ref(self):
        for t in list(self.parameters()) + list(self.buffers()):
            if t.is_floating_point():
                return t
        return None

    def init_states(self, batch: Union[int, Sequence[int]] = (), kind: str = "zeros", std: float = 1.0,
                    generator: Optional[torch.Generator] = None, device=None, dtype=None,
                    layers: Optional[Iterable[str]] = None) -> States:
        """States ``{name: (*batch, *shape)}``: ``kind="zeros"`` or ``"randn"`` (times ``std``).

        Device and dtype default to those of the network's weights."""
        batch = (batch,) if isinstance(batch, int) else tuple(batch)
        ref = self._ref()
        device = device if device is not None else (ref.device if ref is not None else None)
        dtype = dtype if dtype is not None else (ref.dtype if ref is not None else torch.get_default_dtype())
        out = {}
        for n in (self.dynamic_layers if layers is None else layers):
            shape = batch + self.layers[n].shape
            if kind == "zeros":
                out[n] = torch.zeros(shape, device=device, dtype=dtype)
            elif kind == "randn":
                out[n] = std * torch.randn(shape, generator=generator, dtype=dtype).to(device)
            else:
                raise ValueError(f"init_states kind must be 'zeros' or 'randn', got {kind!r}.")
        return out

    def _check_states(self, xs: Mapping[str, torch.Tensor], names: Optional[Iterable[str]] = None) -> Tuple[int, ...]:
        names = tuple(self.dynamic_layers) if names is None else tuple(names)
        if not isinstance(xs, Mapping):
            raise TypeError(f"states must be a dict {{layer name: tensor}}, got {type(xs).__name__}.")
        missing = [n for n in names if n not in xs]
        extra = [n for n in xs if n not in names]
        if missing or extra:
            raise KeyError(f"states must have exactly the layers {list(names)}; missing {missing}, unexpected {extra}.")
        batch = None
        for n in names:
            x, shape = xs[n], self.layers[n].shape
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"state of layer {n!r} must be a tensor, got {type(x).__name__}.")
            if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
                raise ValueError(
                    f"state of layer {n!r} has shape {tuple(x.shape)}; expected (*batch, {', '.join(map(str, shape))})."
                )
            b = tuple(x.shape[: x.dim() - len(shape)])
            if batch is None:
                batch = b
            elif b != batch:
                raise ValueError(
                    f"batch shapes differ between layers: {names[0]!r} has {batch}, {n!r} has {b}."
                )
        return batch

    # -- maths ----------------------------------------------------------------------------
    def activations(self, xs: States) -> States:
        """``{name: g = dL/dx}``."""
        return {n: self.layers[n].activation(x) for n, x in xs.items()}

    def inputs(self, gs: States, targets: Optional[Iterable[str]] = None) -> States:
        """Total synaptic input ``I^A`` to each layer (or to ``targets``) from activations ``gs``.

        Layers without synapses get zeros."""
        targets = tuple(self.layers) if targets is None else tuple(targets)
        out: Dict[str, torch.Tensor] = {}

        def add(name, v):
            out[name] = v if name not in out else out[name] + v

        for s in self.synapses.values():
            half = 0.5 if s.self_loop else 1.0
            if s.post in targets:
                v = s.to_post(gs[s.pre])
                add(s.post, half * v if s.self_loop else v)
            if s.pre in targets:
                v = s.to_pre(gs[s.post])
                add(s.pre, half * v if s.self_loop else v)
        for n in targets:
            if n not in out:
                out[n] = torch.zeros_like(gs[n])
        return out

    def energy_terms(self, xs: States, gs: Optional[States] = None) -> Dict[str, torch.Tensor]:
        """Per-component energies (shape ``B`` each): ``{layer name: <x,g> - L(x)}`` and
        ``{synapse name: -<g_post, W g_pre>}``; their sum is :meth:`energy`."""
        self._check_states(xs)
        gs = self.activations(xs) if gs is None else gs
        terms = {n: self.layers[n].legendre(x) for n, x in xs.items()}
        for n, s in self.synapses.items():
            terms[n] = s.energy(gs[s.pre], gs[s.post])
        return terms

    def energy(self, xs: States, gs: Optional[States] = None) -> torch.Tensor:
        """Total energy ``E``, one value per sample (shape ``B``)."""
        terms = list(self.energy_terms(xs, gs).values())
        out = terms[0]
        for t in terms[1:]:
            out = out + t
        return out

    def _dEdg(self, xs: States) -> States:
        I = self.inputs(self.activations(xs))
        return {n: x - I[n] for n, x in xs.items()}

    # -- adiabatic elimination ------------------------------------------------------------
    def eliminate(self, *hidden: str) -> "ReducedHAM":
        """Adiabatic elimination of fast hidden layers (``tau -> 0``): see :class:`ReducedHAM`."""
        return ReducedHAM(self, hidden)


class ReducedHAM(_Dynamics):
    r"""A HAM with fast hidden layers eliminated adiabatically (``tau_h -> 0``).

    Each eliminated layer ``h`` sits at its fixed point ``x^h = I^h`` (its synaptic input from
    the kept layers), so ``E`` becomes a function of the kept layers only:

    .. math::
        E_{\text{red}} = \sum_{A\ \text{kept}} [\langle x^A,g^A\rangle - L_A]
            - \sum_{\text{synapses among kept}} \langle g^B, W g^A\rangle
            - \sum_h L_h(I^h),

    and the kept layers follow ``tau_A dx^A/dt = I^A - x^A`` with ``g^h = g_h(I^h)``, which is
    ``-dE_red/dg^A``. E.g. eliminating the two GELU layers of the Mixer HAM gives the SymMixer
    flow ``A^T GELU(A G) + GELU(G B^T) B - X`` and energy
    ``<X,G> - L(X) - sum Phi(A G) - sum Phi(G B^T)`` (science.md §4). ``E_red`` needs only the
    kept layers' Lagrangians to be convex (GELU hidden layers are fine).

    Same interface as :class:`HAM` over the kept layers: ``energy``, ``energy_terms``
    (hidden layers' terms are ``-L_h(I^h)``), ``dEdg``, ``flow``, ``step``, ``run``;
    plus :meth:`hidden_states` and :meth:`complete`. Shares the weights of the full network.
    """

    def __init__(self, ham: HAM, hidden: Sequence[str]):
        super().__init__()
        hidden = tuple(hidden)
        if not hidden:
            raise ValueError("eliminate() needs the names of the hidden layers to eliminate.")
        for h in hidden:
            if h not in ham.layers:
                raise KeyError(f"cannot eliminate {h!r}: not a layer; layers: {list(ham.layers)}.")
        for n, s in ham.synapses.items():
            if s.self_loop and s.pre in hidden:
                raise ValueError(
                    f"cannot eliminate {s.pre!r}: it has a recurrent synapse {n!r}, so its fixed point is "
                    "implicit. Eliminate layers without recurrent synapses only."
                )
            if s.pre in hidden and s.post in hidden:
                raise ValueError(
                    f"cannot eliminate {s.pre!r} and {s.post!r} together: synapse {n!r} connects them, so "
                    "their fixed point is implicit. Eliminate non-adjacent layers only."
                )
        kept = [n for n in ham.layers if n not in hidden]
        if not kept:
            raise ValueError("cannot eliminate every layer: keep at least one.")
        self.ham = ham
        self.hidden = hidden
        self.kept = tuple(kept)

    @property
    def dynamic_layers(self) -> Mapping[str, Layer]:
        return {n: self.ham.layers[n] for n in self.kept}

    @property
    def layer_names(self) -> Tuple[str, ...]:
        return self.kept

    def init_states(self, *args, **kw) -> States:
        """As :meth:`HAM.init_states`, for the kept layers only."""
        kw.setdefault("layers", self.kept)
        return self.ham.init_states(*args, **kw)

    def _check_states(self, xs, names=None):
        return self.ham._check_states(xs, self.kept if names is None else names)

    def hidden_states(self, xs: States, gs: Optional[States] = None) -> States:
        """The eliminated layers' fixed points ``{h: x^h = I^h}`` (shape ``(*B, *h.shape)``)."""
        self._check_states(xs)
        gs = self.ham.activations(xs) if gs is None else gs
        return self.ham.inputs(gs, targets=self.hidden)

    def complete(self, xs: States) -> States:
        """The full network's states: ``xs`` plus the hidden layers at their fixed points."""
        return {**xs, **self.hidden_states(xs)}

    def _all_activations(self, xs):
        gs = self.ham.activations(xs)
        xh = self.ham.inputs(gs, targets=self.hidden)
        gh = {h: self.ham.layers[h].activation(v) for h, v in xh.items()}
        return gs, xh, gh

    def energy_terms(self, xs: States) -> Dict[str, torch.Tensor]:
        """Kept layers' Legendre terms, synapses among kept layers, and ``{h: -L_h(I^h)}``."""
        self._check_states(xs)
        gs = self.ham.activations(xs)
        xh = self.ham.inputs(gs, targets=self.hidden)
        terms = {n: self.ham.layers[n].legendre(x) for n, x in xs.items()}
        for n, s in self.ham.synapses.items():
            if s.pre not in self.hidden and s.post not in self.hidden:
                terms[n] = s.energy(gs[s.pre], gs[s.post])
        for h, v in xh.items():
            terms[h] = -self.ham.layers[h].lagrangian_value(v)
        return terms

    def energy(self, xs: States) -> torch.Tensor:
        """Reduced energy ``E_red`` (shape ``B``); equals the full energy at :meth:`complete`."""
        terms = list(self.energy_terms(xs).values())
        out = terms[0]
        for t in terms[1:]:
            out = out + t
        return out

    def _dEdg(self, xs: States) -> States:
        # dE_red/dg^A = x^A - I^A with the hidden layers at their fixed points
        gs, _, gh = self._all_activations(xs)
        I = self.ham.inputs({**gs, **gh}, targets=self.kept)
        return {n: x - I[n] for n, x in xs.items()}
