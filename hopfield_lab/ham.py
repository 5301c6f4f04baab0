r"""Hierarchical associative memory (HAM): layers, synapses, energy, closed-form gradients, dynamics.

Krotov's HAM (Krotov 2021, :cite:`krotov2021hierarchical`; book chapter 4): layers ``A`` with
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
  (``H^c = G B^T``, ``B: (Nc, C)``) (Karakida, Ota, Taki 2024, Secs. 5-6; book chapter 6).
  Weights are created from the layer shapes when not given (normal, std ``1/sqrt(fan_in)``).
  ``breaking=V`` unties a synapse's feedback (``W^T + V`` instead of ``W^T``: symmetry
  breaking, book chapter 7); weights with leading dims make an ensemble of networks.
* :class:`HAM` ``(layers, synapses)`` -- the network: :meth:`HAM.energy`,
  :meth:`HAM.energy_terms`, :meth:`HAM.dEdg`, :meth:`HAM.flow`, :meth:`HAM.step`,
  :meth:`HAM.run` (Euler / RK4 in continuous time, or discrete descent
  ``x <- x - alpha dE/dg``; some layers may be clamped) and :meth:`HAM.eliminate` (adiabatic
  elimination of fast hidden layers, giving a :class:`ReducedHAM` with the same interface).
  :meth:`HAM.untie` / :meth:`HAM.tied` add / remove breaking parts; an untied network has no
  energy (:class:`NoEnergyError`) but :meth:`HAM.tied_energy` and :meth:`HAM.pseudo_energy`.
* :func:`integrate` -- the one fixed-step integrator (Euler, RK4) of the library, for any flow
  on dict states; :meth:`HAM.run`, :func:`hopfield_lab.odes.integrate` and the demos use it.
* :func:`count_increases` -- the one counter of energy increases, with a tolerance that does not
  depend on the float summation order.

States are dicts ``{layer name: tensor of shape (*batch, *layer.shape)}``; the batch shape may
be empty (one sample) and must be the same for all layers. Energies have the batch shape.

Example: the three-layer HAM behind the SymMixer (paper Secs. 5-6, book chapter 6)::

    import torch
    from hopfield_lab.ham import HAM, Layer, TokenMixing, ChannelMixing, count_increases
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

    V_s = 0.5 * torch.randn(S, Ns)                 # untie the token feedback: A^T + V_s
    broken = ham.untie({"A": V_s}).eliminate("hs", "hc")
    broken.flow(X)["x"]                        # (A^T + V_s) GELU(A G) + GELU(G B^T) B - X
    tr = broken.run(X, steps=1000, dt=0.01, record_energy=broken.pseudo_energy)
    count_increases(tr.energy)                 # (10,): steps at which the pseudo-energy rose

:meth:`HAM.run` runs under ``torch.no_grad()`` unless ``grad=True`` (e.g. to train through a
few descent steps, as the Energy MetaFormer does); :meth:`HAM.step`, :meth:`HAM.dEdg` and
:meth:`HAM.energy` follow the caller's grad mode.

Errors: mismatched shapes name the synapse, the layer and the expected shape; non-positive
``tau`` or step sizes raise ``ValueError``; NaN, inf or exploding states during :meth:`HAM.run`
raise :class:`DivergenceError` naming the layer and the step and suggesting a smaller step.
Closed-form gradients only: autograd of the energy is used in the tests, never here.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

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
    "NoEnergyError",
    "METHODS",
    "INTEGRATORS",
    "integrate",
    "count_increases",
    "INCREASE_ULPS",
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


MAX_STEPS = 1_000_000
"""The most fixed steps :func:`steps_for` allows (a run of ``t_end / dt`` steps above it is refused)."""


def steps_for(t_end, dt, *, max_steps: int = MAX_STEPS, what: str = "t_end") -> int:
    """The number of fixed steps ``round(t_end / dt)`` (at least 1) of a run of duration ``t_end``.

    Raises a one-line ValueError that says what to do when ``dt`` or ``t_end`` is not a positive,
    finite number (``dt=0`` and ``dt=nan`` included), or when the run would take more than
    ``max_steps`` steps (a tiny ``dt``: minutes or hours of work for a demo).
    """
    dt = _positive(dt, "the step dt", " Use a small positive step, e.g. dt=0.01.")
    t_end = _positive(t_end, f"the duration {what}")
    n = t_end / dt
    if n > max_steps:
        raise ValueError(f"{what}={t_end:g} with dt={dt:g} needs {n:.3g} steps, more than the cap of {max_steps:,}: "
                         f"use dt >= {t_end / max_steps:.3g} (or a shorter {what}).")
    return max(1, int(round(n)))


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


def _lead(t: torch.Tensor, core: int) -> Tuple[int, ...]:
    """The leading (ensemble) dims of a weight whose last ``core`` dims are the synapse's own."""
    return tuple(t.shape[: t.dim() - core])


class Synapse(nn.Module):
    r"""A dense synapse from layer ``pre`` to layer ``post``, written as an einsum.

    ``spec = "<w>,<p>-><q>"`` (letters only, no batch dims): the synapse sends
    ``I_post = einsum("<w>,...<p>->...<q>", W, g_pre)`` to ``post`` and, through the same
    (transposed) weights, ``I_pre = einsum("<w>,...<q>->...<p>", W, g_post)`` back to ``pre``.
    Its energy is ``-<g_post, I_post>`` (per sample). With ``pre == post`` (a recurrent synapse
    inside a layer) the energy is ``-1/2 <g, W g>`` and the input ``1/2 (W + W^T) g``.

    Examples: ``"ij,j->i"`` (vector to vector, ``W: (N_post, N_pre)``), ``"ns,sc->nc"`` (token
    mixing), ``"nc,sc->sn"`` (channel mixing).

    **Untied feedback (symmetry breaking).** With ``breaking=V`` the feedback weight is no longer
    the transpose of the feedforward one: ``pre`` receives ``(W^T + V) g_post`` instead of
    ``W^T g_post``. ``V`` is laid out like the feedback weight ``W^T``: the weight's ``pre``
    indices first, then the others, each group in the order of the spec (for a matrix ``W`` of
    shape ``(N_post, N_pre)``: ``V`` of shape ``(N_pre, N_post)``). This is the layout of
    :attr:`hopfield_lab.mixer.AsymMlp.breaking` (second layer ``A^T + V``): a token-mixing
    ``V^s`` is ``(S, Ns)``, a channel-mixing ``V^c`` is ``(C, Nc)``. A network with an untied
    synapse has no energy (Karakida, Ota, Taki 2024, Sec. 6.2; book chapter 7): see
    :meth:`HAM.pseudo_energy`.

    **Ensembles.** A weight (and ``V``) may carry leading dims ``(*E, *shape)``: an ensemble of
    networks with the same architecture. ``E`` broadcasts against the states' batch dims like
    ``torch.matmul`` (e.g. weights ``(n, 1, Ns, S)`` with states ``(n, batch, S, C)``).

    Args:
        spec: the einsum string.
        pre, post: layer names.
        weight: a tensor of the expected shape, or None to draw ``N(0, std^2)`` when the network
            is built (shape inferred from the layers).
        std: the init std; default ``1/sqrt(fan_in)`` (fan_in: product of the summed dims).
        learnable: register the weight (and ``V``) as ``nn.Parameter`` s (default) or buffers.
        generator: optional ``torch.Generator`` for the init.
        breaking: the symmetry-breaking part ``V`` of the feedback weight, or None (tied).
    """

    def __init__(self, spec: Optional[str], pre: str, post: str, weight: Optional[torch.Tensor] = None,
                 std: Optional[float] = None, learnable: bool = True,
                 generator: Optional[torch.Generator] = None, breaking: Optional[torch.Tensor] = None):
        super().__init__()
        self.pre, self.post = str(pre), str(post)
        self.spec = spec
        if spec is not None:
            self._parse(spec)
        self._init_weight = weight
        self._init_breaking = breaking
        self._std = std
        self._learnable = learnable
        self._generator = generator
        for attr in ("weight", "breaking"):
            if learnable:
                self.register_parameter(attr, None)
            else:
                self.register_buffer(attr, None)
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
        # the feedback weight W^T (and V): the weight's pre indices first, then the others
        fb = "".join(ch for ch in w if ch in p) + "".join(ch for ch in w if ch not in p)
        self.fb_idx = fb
        self._fb_perm = tuple(w.index(ch) for ch in fb)
        self._eq = {  # (kind, has ensemble dims) -> einsum equation
            ("post", False): f"{w},...{p}->...{q}", ("post", True): f"...{w},...{p}->...{q}",
            ("pre", False): f"{w},...{q}->...{p}", ("pre", True): f"...{w},...{q}->...{p}",
            ("fb", False): f"{fb},...{q}->...{p}", ("fb", True): f"...{fb},...{q}->...{p}",
        }

    def _register(self, attr: str, t: torch.Tensor) -> None:
        if self._learnable:
            # a Parameter passed in is kept as is (so weights can be tied between synapses)
            setattr(self, attr, t if isinstance(t, nn.Parameter) else nn.Parameter(t.detach().clone()))
        else:
            setattr(self, attr, t.detach().clone())

    def build(self, name: str, pre_layer: Layer, post_layer: Layer) -> None:
        """Check the spec against the layers' shapes and create/check the weight and ``V``
        (called by HAM). A synapse that is built already keeps its weight objects."""
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
        if w is None and self.weight is None:
            fan_in = math.prod(sizes[ch] for ch in self.w_idx if ch in self.pre_idx and ch not in self.post_idx)
            std = (1.0 / math.sqrt(max(fan_in, 1))) if self._std is None else float(self._std)
            w = torch.randn(expected, generator=self._generator) * std
        if w is not None and not isinstance(w, torch.Tensor):
            w = torch.as_tensor(w, dtype=torch.get_default_dtype())
        self._check_shape(self.weight if w is None else w, expected, "weight", where,
                          f"indices {self.w_idx!r} with sizes from layers {self.pre!r} {pre_layer.shape} "
                          f"and {self.post!r} {post_layer.shape}")
        if w is not None:
            self._register("weight", w)
        self._init_weight = None
        V = self._init_breaking
        if V is not None and not isinstance(V, torch.Tensor):
            V = torch.as_tensor(V, dtype=torch.get_default_dtype())
        if V is not None or self.breaking is not None:
            fb_shape = tuple(sizes[ch] for ch in self.fb_idx)
            self._check_shape(self.breaking if V is None else V, fb_shape, "breaking part V", where,
                              f"the feedback weight's layout {self.fb_idx!r}: the weight's pre indices "
                              "first, e.g. W.T for a matrix W")
        if V is not None:
            self._register("breaking", V)
        self._init_breaking = None

    @staticmethod
    def _check_shape(t: torch.Tensor, expected, what: str, where: str, why: str) -> None:
        k = len(expected)
        if t.dim() < k or tuple(t.shape[t.dim() - k:]) != expected:
            raise ValueError(
                f"{where}: {what} has shape {tuple(t.shape)}, expected {expected} ({why}); "
                "optional leading dims make an ensemble of networks."
            )

    def with_breaking(self, breaking: Optional[torch.Tensor]) -> "Synapse":
        """A copy of this synapse that shares its weight and has the breaking part ``breaking``
        (None: tied). Put it in a :class:`HAM` to build it (see :meth:`HAM.untie`)."""
        new = copy.copy(self)
        new._parameters = self._parameters.copy()
        new._buffers = self._buffers.copy()
        new._modules = self._modules.copy()
        new._init_breaking = breaking
        if "breaking" in new._parameters:
            new._parameters["breaking"] = None
        else:
            new._buffers["breaking"] = None
        return new

    # -- maths ----------------------------------------------------------------------------
    @property
    def is_tied(self) -> bool:
        """True when the feedback weight is the transpose of the feedforward one (no ``V``)."""
        return self.breaking is None and self._init_breaking is None

    def _w(self, g: torch.Tensor, attr: str = "weight") -> torch.Tensor:
        w = (self._parameters if self._learnable else self._buffers).get(attr)  # hot path: no __getattr__
        if w is None:
            raise RuntimeError(f"Synapse {self.spec!r} has no {attr} yet: put it in a HAM (which builds it).")
        return w if w.dtype == g.dtype else w.to(g.dtype)

    def _ens(self, w: torch.Tensor) -> bool:
        return w.dim() > len(self.w_idx)

    def feedback_weight(self) -> torch.Tensor:
        """The feedback weight ``W^T + V`` (``W^T`` when tied) in the layout :attr:`fb_idx`."""
        W = self.weight
        lead = tuple(range(W.dim() - len(self.w_idx)))
        Wt = W.permute(*lead, *(len(lead) + i for i in self._fb_perm))
        return Wt if self.breaking is None else Wt + self.breaking.to(W.dtype)

    def to_post(self, g_pre: torch.Tensor) -> torch.Tensor:
        """Input to ``post`` from ``g_pre``: ``(*B, *pre.shape) -> (*B, *post.shape)``."""
        W = self._w(g_pre)
        return torch.einsum(self._eq["post", self._ens(W)], W, g_pre)

    def to_pre(self, g_post: torch.Tensor, tied: bool = False) -> torch.Tensor:
        """Feedback input to ``pre`` from ``g_post``: ``(W^T + V) g_post``, or the transposed
        weights alone when the synapse is tied or ``tied=True`` (the tied part of the network).
        Shapes ``(*B, *post.shape) -> (*B, *pre.shape)``."""
        if tied or self.breaking is None:
            return self._feedback_tied(g_post)
        return self._feedback_untied(g_post)

    def breaking_input(self, g_post: torch.Tensor) -> torch.Tensor:
        """The breaking part of the feedback, ``V g_post`` (zeros when tied), shape ``(*B, *pre.shape)``."""
        if self.breaking is None:
            return torch.zeros_like(self._feedback_tied(g_post))
        V = self._w(g_post, "breaking")
        return torch.einsum(self._eq["fb", self._ens(V)], V, g_post)

    def _feedback_tied(self, g_post):
        W = self._w(g_post)
        return torch.einsum(self._eq["pre", self._ens(W)], W, g_post)

    def _feedback_untied(self, g_post):
        F = self.feedback_weight().to(g_post.dtype)
        return torch.einsum(self._eq["fb", self._ens(F)], F, g_post)

    def energy(self, g_pre: torch.Tensor, g_post: torch.Tensor) -> torch.Tensor:
        """``-<g_post, W g_pre>`` per sample (halved for a recurrent synapse), shape ``B``.

        The coupling energy of the tied part: ``V`` never enters it."""
        p = g_post * self.to_post(g_pre)
        e = -p.flatten(start_dim=p.dim() - len(self.post_idx)).sum(-1)
        return 0.5 * e if self.self_loop else e

    def extra_repr(self) -> str:
        shape = None if self.weight is None else tuple(self.weight.shape)
        out = f"{self.spec!r}, {self.pre!r} -> {self.post!r}, weight={shape}"
        if self.breaking is not None:
            out += f", breaking={tuple(self.breaking.shape)} (untied feedback)"
        return out


class Dense(Synapse):
    """Every neuron of ``pre`` to every neuron of ``post``: ``W`` of shape ``post.shape + pre.shape``.

    For vector layers ``I_post = W g_pre`` with ``W: (N_post, N_pre)``; for matrix layers the
    spec is built from the layers' ranks (e.g. ``"ijpq,pq->ij"``). An untied ``V`` has shape
    ``pre.shape + post.shape``.
    """

    def __init__(self, pre: str, post: str, weight: Optional[torch.Tensor] = None, std: Optional[float] = None,
                 learnable: bool = True, generator: Optional[torch.Generator] = None,
                 breaking: Optional[torch.Tensor] = None):
        super().__init__(None, pre, post, weight, std, learnable, generator, breaking)

    def build(self, name, pre_layer, post_layer):
        if pre_layer.ndim > 6 or post_layer.ndim > 6:
            raise ValueError(f"Dense synapse {name!r}: layers of more than 6 dims are not supported.")
        q = "ijklmn"[: post_layer.ndim]
        p = "pqrstu"[: pre_layer.ndim]
        self._parse(f"{q}{p},{p}->{q}")
        super().build(name, pre_layer, post_layer)
        self._post_shape, self._pre_shape = post_layer.shape, pre_layer.shape

    # the same maths as the einsum, as one matmul on flattened layers (faster on CPU)
    def _matrix(self, w: torch.Tensor, rows, cols) -> torch.Tensor:
        k = len(rows) + len(cols)
        return w.reshape(*w.shape[: w.dim() - k], math.prod(rows), math.prod(cols))

    def _matvec(self, flat_in: torch.Tensor, M: torch.Tensor, in_shape, out_shape) -> torch.Tensor:
        """``flat_in (*B, n_in) @ M (*E, n_in, n_out)``, reshaped to ``(*B, *out_shape)``."""
        k = len(in_shape)
        flat = flat_in.reshape(*flat_in.shape[: flat_in.dim() - k], -1) if k > 1 else flat_in
        if M.dim() == 2:
            out = flat @ M
        else:  # an ensemble of weights: one matrix per leading index
            out = (flat.unsqueeze(-2) @ M).squeeze(-2)
        return out.reshape(*out.shape[:-1], *out_shape) if len(out_shape) > 1 else out

    def to_post(self, g_pre):
        W = self._matrix(self._w(g_pre), self._post_shape, self._pre_shape)
        return self._matvec(g_pre, W.mT, self._pre_shape, self._post_shape)

    def _feedback_tied(self, g_post):
        W = self._matrix(self._w(g_post), self._post_shape, self._pre_shape)
        return self._matvec(g_post, W, self._post_shape, self._pre_shape)

    def _feedback_untied(self, g_post):
        W = self._matrix(self._w(g_post), self._post_shape, self._pre_shape)
        V = self._matrix(self._w(g_post, "breaking"), self._pre_shape, self._post_shape)
        return self._matvec(g_post, W + V.mT, self._post_shape, self._pre_shape)

    def breaking_input(self, g_post):
        if self.breaking is None:
            return super().breaking_input(g_post)
        V = self._matrix(self._w(g_post, "breaking"), self._pre_shape, self._post_shape)
        return self._matvec(g_post, V.mT, self._post_shape, self._pre_shape)


class TokenMixing(Synapse):
    """Token-mixing synapse of an ``(S, C)`` layer: ``H^s = A G`` with ``A: (Ns, S)``.

    ``pre`` has shape ``(S, C)``, ``post`` ``(Ns, C)``; the weights are shared by all channels.
    The feedback to ``pre`` is ``A^T g(H^s)``, or ``(A^T + V) g(H^s)`` with an untied ``V: (S, Ns)``.
    """

    def __init__(self, pre: str, post: str, weight: Optional[torch.Tensor] = None, std: Optional[float] = None,
                 learnable: bool = True, generator: Optional[torch.Generator] = None,
                 breaking: Optional[torch.Tensor] = None):
        super().__init__("ns,sc->nc", pre, post, weight, std, learnable, generator, breaking)

    def to_post(self, g_pre):  # A @ G, same as the einsum
        return torch.matmul(self._w(g_pre), g_pre)

    def _feedback_tied(self, g_post):  # A^T @ g(H^s)
        return torch.matmul(self._w(g_post).mT, g_post)

    def _feedback_untied(self, g_post):  # (A^T + V) @ g(H^s)
        return torch.matmul(self._w(g_post).mT + self._w(g_post, "breaking"), g_post)

    def breaking_input(self, g_post):  # V @ g(H^s)
        if self.breaking is None:
            return super().breaking_input(g_post)
        return torch.matmul(self._w(g_post, "breaking"), g_post)


class ChannelMixing(Synapse):
    """Channel-mixing synapse of an ``(S, C)`` layer: ``H^c = G B^T`` with ``B: (Nc, C)``.

    ``pre`` has shape ``(S, C)``, ``post`` ``(S, Nc)``; the weights are shared by all tokens.
    The feedback to ``pre`` is ``g(H^c) B``, or ``g(H^c) (B + V^T)`` with an untied ``V: (C, Nc)``.
    """

    def __init__(self, pre: str, post: str, weight: Optional[torch.Tensor] = None, std: Optional[float] = None,
                 learnable: bool = True, generator: Optional[torch.Generator] = None,
                 breaking: Optional[torch.Tensor] = None):
        super().__init__("nc,sc->sn", pre, post, weight, std, learnable, generator, breaking)

    def to_post(self, g_pre):  # G @ B^T, same as the einsum
        return torch.matmul(g_pre, self._w(g_pre).mT)

    def _feedback_tied(self, g_post):  # g(H^c) @ B
        return torch.matmul(g_post, self._w(g_post))

    def _feedback_untied(self, g_post):  # g(H^c) @ (B + V^T)
        return torch.matmul(g_post, self._w(g_post) + self._w(g_post, "breaking").mT)

    def breaking_input(self, g_post):  # g(H^c) @ V^T
        if self.breaking is None:
            return super().breaking_input(g_post)
        return torch.matmul(g_post, self._w(g_post, "breaking").mT)


# ----------------------------------------------------------------------------------------------
# the one integrator and the one energy-increase counter of the library
# ----------------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """Result of :func:`integrate` and :meth:`HAM.run`.

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


#: the fixed-step schemes of :func:`integrate` (:meth:`HAM.run` adds ``"descent"``)
INTEGRATORS = ("euler", "rk4")


def _diverged(xs: States, limit: Optional[float]):
    names = list(xs)
    peaks = torch.stack([xs[n].detach().abs().amax().to(torch.float64) for n in names]).tolist()
    for n, p in zip(names, peaks):
        if not math.isfinite(p) or (limit is not None and p > limit):
            kind = "NaN" if math.isnan(p) else ("inf" if math.isinf(p) else f"|x| = {p:.3g} > {limit:g}")
            return n, kind
    return None


def _scheme_step(velocity: Callable[[States], States], xs: States, dt: float, method: str) -> States:
    if method == "euler":
        f = velocity(xs)
        return {n: x + dt * f[n] for n, x in xs.items()}
    k1 = velocity(xs)
    k2 = velocity({n: x + 0.5 * dt * k1[n] for n, x in xs.items()})
    k3 = velocity({n: x + 0.5 * dt * k2[n] for n, x in xs.items()})
    k4 = velocity({n: x + dt * k3[n] for n, x in xs.items()})
    return {n: x + (dt / 6.0) * (k1[n] + 2.0 * k2[n] + 2.0 * k3[n] + k4[n]) for n, x in xs.items()}


def integrate(velocity: Callable[[States], States], xs: States, steps: int, dt: float, method: str = "rk4", *,
              energy: Optional[Callable[[States], torch.Tensor]] = None, record_states: bool = False,
              record_every: int = 1, check_every: int = 10, max_abs: Optional[float] = 1e8,
              progress: bool = False, time_step: Optional[float] = None, label: Optional[str] = None,
              hint: str = " (keep dt well below the smallest tau)") -> Trajectory:
    r"""Integrate ``dx/dt = velocity(x)`` with a fixed step: the library's one integrator.

    :meth:`HAM.run` (and so :meth:`ReducedHAM.run`), :func:`hopfield_lab.odes.integrate` and the
    chapter demos all step through this function. It follows the caller's grad mode.

    Args:
        velocity: ``{name: (*B, *shape)} -> {name: (*B, *shape)}``, the same keys as ``xs``.
        xs: initial states (not modified).
        steps: number of steps (>= 0).
        dt: the step (> 0).
        method: ``"euler"`` (``x <- x + dt v(x)``) or ``"rk4"`` (classical fourth order).
        energy: a function ``xs -> (*B,)`` recorded every ``record_every`` steps and at the end
            (e.g. :meth:`HAM.energy` or :meth:`HAM.pseudo_energy`); None records none.
        record_states: record all states likewise.
        record_every: recording interval in steps (the first and the last state are always kept).
        check_every: look for NaN/inf/exploding states every this many steps (and at the end);
            1 names the exact step, larger values sync less often (GPU).
        max_abs: a state with ``|x| > max_abs`` counts as diverged (None: only NaN/inf).
        progress: show a tqdm progress bar.
        time_step: the time per step in :attr:`Trajectory.t` (default ``dt``).
        label: names the dynamics in messages (default ``method``).
        hint: advice appended to the divergence message's suggestion of a smaller step.

    Returns:
        a :class:`Trajectory`. Raises :class:`DivergenceError` on NaN/inf/exploding states.
    """
    if method not in INTEGRATORS:
        raise ValueError(f"Unknown integration method {method!r}; choose one of {INTEGRATORS}.")
    dt = _positive(dt, f"step size dt (method {method!r})",
                   " Use a small positive step, e.g. dt=0.01 (RK4/Euler: below the smallest tau).")
    if isinstance(steps, bool) or not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
    record_every, check_every = int(record_every), int(check_every)
    if record_every < 1 or check_every < 1:
        raise ValueError("record_every and check_every must be >= 1.")
    label = method if label is None else label
    xs = dict(xs)
    bad = _diverged(xs, max_abs)
    if bad is not None:
        raise DivergenceError(f"initial state of layer {bad[0]!r} is not usable ({bad[1]}).")

    unit = dt if time_step is None else float(time_step)
    times, energies = [], []
    history = {n: [] for n in xs} if record_states else None
    recording = energy is not None or record_states

    def record(k):
        times.append(k * unit)
        if energy is not None:
            energies.append(energy(xs))
        if record_states:
            for n, v in xs.items():
                history[n].append(v)

    if recording:
        record(0)
    it = range(1, steps + 1)
    if progress:
        from .runtime import progress_bar
        it = progress_bar(it, desc=f"{label} dt={dt:g}")
    last_ok = 0
    for k in it:
        xs = _scheme_step(velocity, xs, dt, method)
        if k % check_every == 0 or k == steps:
            bad = _diverged(xs, max_abs)
            if bad is not None:
                when = f"at step {k}" if k - last_ok <= 1 else f"between steps {last_ok + 1} and {k}"
                raise DivergenceError(
                    f"{label} dynamics diverged: layer {bad[0]!r} reached {bad[1]} {when} "
                    f"(dt={dt:g}). Try a smaller step, e.g. dt={dt / 4:g}{hint}"
                    ", or smaller weights; check_every=1 pinpoints the step."
                )
            last_ok = k
        if recording and (k % record_every == 0 or k == steps):
            record(k)
    if not recording:
        times = [0.0, steps * unit]
    return Trajectory(
        x=xs,
        t=torch.tensor(times, dtype=torch.float64),
        energy=torch.stack(energies) if energy is not None else None,
        states={n: torch.stack(v) for n, v in history.items()} if record_states else None,
        steps=steps,
    )


#: default ``rtol`` of :func:`count_increases`, in units of the energy dtype's machine epsilon
INCREASE_ULPS = 4096


def count_increases(energy: torch.Tensor, rtol: Optional[float] = None) -> torch.Tensor:
    r"""How many steps of an energy trace went up, per trajectory: the library's one counter.

    ``energy`` has shape ``(T, *B)`` (time first, e.g. :attr:`Trajectory.energy`); returns int64
    counts of shape ``B``. Step ``k`` counts when

    .. math::  E_{k+1} - E_k > \mathrm{rtol}\cdot \max_t |E_t| ,

    the maximum running over the whole trace of that trajectory. ``rtol`` defaults to
    ``INCREASE_ULPS * eps`` of the dtype: 4096 ulps, ``9.1e-13`` in float64 (``4.9e-4`` in float32).

    Why this rule: the energies here are sums of up to a few thousand terms of size at most a
    few ``max|E|``. Summing them in another order (another thread count, SIMD width or BLAS
    kernel) moves the result by at most about ``n eps sum|terms|`` and in practice by
    ``~sqrt(n) eps max|E|``. Measured by evaluating the same states of the book's trajectories
    with two different kernels: under 5 ulps of ``max|E|`` for the chapter 4 network and the large
    Mixer ODE of chapter 7, up to about 200 ulps for its 2-neuron system near the ridge
    ``x1 = x2``, where LayerNorm of two nearly equal numbers amplifies rounding. A threshold of
    4096 ulps is far above that noise, so a step that is not itself close to the threshold is
    counted the same way on every machine and thread count; and ``1e-12`` of the energy scale is
    far below any increase worth reporting. The maximum is exact in floating point (no
    summation), and the rule is scale-covariant: rescaling ``E`` rescales the threshold.

    No threshold helps with increases that are themselves within noise of it: a trajectory whose
    increases shrink continuously through the threshold (a broken flow settling at a fixed point)
    can count one step more on one machine than on another. The determinism tests check that the
    counts the book prints as checked outputs are at least 1024 ulps away from that case.
    """
    if not isinstance(energy, torch.Tensor) or energy.dim() < 1:
        raise ValueError("count_increases needs an energy tensor of shape (T, *batch), time first.")
    if not energy.is_floating_point():
        raise TypeError(f"count_increases needs a floating-point energy, got dtype {energy.dtype}.")
    if rtol is None:
        rtol = INCREASE_ULPS * torch.finfo(energy.dtype).eps
    elif not (float(rtol) >= 0 and math.isfinite(float(rtol))):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}.")
    scale = energy.abs().amax(dim=0)
    return (energy.diff(dim=0) > rtol * scale).sum(dim=0)


# ----------------------------------------------------------------------------------------------
# dynamics shared by the full and the reduced network
# ----------------------------------------------------------------------------------------------
class NoEnergyError(TypeError):
    """The network has untied feedback, so its dynamics are not a gradient flow: no energy."""


def _total(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    terms = list(terms)
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


class _Dynamics(nn.Module):
    """Euler / RK4 / descent on top of ``dEdg`` (``tau dx/dt = I - x``), through :func:`integrate`."""

    # subclasses provide: dynamic_layers (name -> Layer), _dEdg(xs), energy(xs), _check_states(xs),
    # untied_synapses
    def _check_clamped(self, clamped) -> Tuple[str, ...]:
        clamped = (clamped,) if isinstance(clamped, str) else tuple(clamped or ())
        for c in clamped:
            if c not in self.dynamic_layers:
                raise KeyError(f"clamped layer {c!r} is not a layer here; layers: {list(self.dynamic_layers)}.")
        return clamped

    @property
    def is_tied(self) -> bool:
        """True when every feedback weight is the transpose of its feedforward weight."""
        return not self.untied_synapses

    def _require_tied(self, what: str = "energy") -> None:
        untied = self.untied_synapses
        if untied:
            raise NoEnergyError(
                f"this network has no {what}: synapse(s) {list(untied)} have untied feedback (a breaking "
                "part V, feedback W^T + V), so the dynamics are not a gradient flow of any energy. Use "
                "tied_energy(xs) for the energy of the tied part (feedback W^T), pseudo_energy(xs) for "
                "the pseudo-energy (tied energy + 1/2 <g_pre, V g_post>), or tied() for the tied network."
            )

    def forward(self, xs: States) -> torch.Tensor:
        """Calling the network returns its energy (shape ``B``)."""
        return self.energy(xs)

    def dEdg(self, xs: States) -> States:
        r"""Closed-form ``dE/dg^A = x^A - I^A`` for every layer (``= -tau_A dx^A/dt``).

        With untied feedback there is no ``E``: this is then just ``x^A - I^A = -tau_A dx^A/dt``."""
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

    def _descent_direction(self, xs, clamped):
        d = self._dEdg(xs)
        return {n: (torch.zeros_like(v) if n in clamped else -v) for n, v in d.items()}

    def _velocity(self, method: str, clamped) -> Callable[[States], States]:
        if method == "descent":
            return lambda xs: self._descent_direction(xs, clamped)
        return lambda xs: self._flow(xs, clamped)

    def step(self, xs: States, dt: float, method: str = "euler", clamped: Iterable[str] = ()) -> States:
        """One step of ``method``: ``"euler"``, ``"rk4"`` (time step ``dt``) or ``"descent"``
        (``x <- x - dt * dE/dg``, ``dt`` being the step size alpha, no tau). Returns new states."""
        method = self._check_method(method)
        dt = _positive(dt, f"step size dt (method {method!r})")
        clamped = self._check_clamped(clamped)
        self._check_states(xs)
        return _scheme_step(self._velocity(method, clamped), xs, dt, "euler" if method == "descent" else method)

    @staticmethod
    def _check_method(method: str) -> str:
        m = str(method).lower()
        if m not in METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")
        return m

    def run(self, xs: States, steps: int, dt: float, method: str = "euler", clamped: Iterable[str] = (),
            record_energy: Union[bool, Callable[[States], torch.Tensor]] = False, record_states: bool = False,
            record_every: int = 1, check_every: int = 10, max_abs: Optional[float] = 1e8, progress: bool = False,
            grad: bool = False) -> Trajectory:
        r"""Integrate the dynamics for ``steps`` steps (with :func:`integrate`).

        Args:
            xs: initial states ``{name: (*B, *shape)}`` (not modified).
            steps: number of steps (>= 0).
            dt: time step (``"euler"``, ``"rk4"``: ``tau_A dx^A/dt = I^A - x^A``) or step size
                alpha (``"descent"``: ``x <- x - alpha dE/dg``); > 0.
            method: ``"euler"``, ``"rk4"`` or ``"descent"``.
            clamped: names of layers held fixed.
            record_energy: record the energy (per sample) every ``record_every`` steps and at the
                end: True for :meth:`energy` (an untied network has none and raises
                :class:`NoEnergyError`), or a function ``xs -> (*B,)`` such as
                :meth:`tied_energy` or :meth:`pseudo_energy`.
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
        method = self._check_method(method)
        dt = _positive(dt, f"step size dt (method {method!r})",
                       " Use a small positive step, e.g. dt=0.01 (RK4/Euler: below the smallest tau).")
        if isinstance(steps, bool) or not (isinstance(steps, int) and steps >= 0):
            raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
        clamped = self._check_clamped(clamped)
        self._check_states(xs)
        if callable(record_energy):
            energy = record_energy
        elif record_energy:
            self._require_tied()
            energy = self.energy
        else:
            energy = None
        descent = method == "descent"
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return integrate(self._velocity(method, clamped), xs, steps, dt, "euler" if descent else method,
                             energy=energy, record_states=record_states, record_every=record_every,
                             check_every=check_every, max_abs=max_abs, progress=progress,
                             time_step=1.0 if descent else None, label=method,
                             hint="" if descent else " (keep dt well below the smallest tau)")

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

    Shapes: states ``{name: (*B, *layer.shape)}``; energies ``B``. Synapse weights with leading
    ensemble dims ``E`` need states whose batch shape ``B`` ends in dims that ``E`` broadcasts to.
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

    @property
    def untied_synapses(self) -> Tuple[str, ...]:
        """Names of the synapses with untied feedback (a breaking part ``V``)."""
        return tuple(n for n, s in self.synapses.items() if not s.is_tied)

    # -- untied feedback ------------------------------------------------------------------
    def untie(self, breaking: Mapping[str, torch.Tensor]) -> "HAM":
        """The same network with untied feedback: synapse ``name`` feeds ``(W^T + V)`` back to its
        ``pre`` layer, ``V = breaking[name]`` in the feedback layout (see :class:`Synapse`; for a
        matrix weight ``(N_post, N_pre)``: ``(N_pre, N_post)``). Shares the layers and the weights
        (``V`` is copied). The result has no :meth:`energy`; see :meth:`pseudo_energy`."""
        unknown = [n for n in breaking if n not in self.synapses]
        if unknown:
            raise ValueError(f"untie: breaking names synapse(s) {unknown}, which are not in the network; "
                             f"its synapses: {list(self.synapses)}.")
        return HAM(dict(self.layers), {n: s.with_breaking(breaking[n]) if n in breaking else s
                                       for n, s in self.synapses.items()})

    def tied(self) -> "HAM":
        """The same network with every breaking part removed (feedback ``W^T``); shares layers and weights."""
        return HAM(dict(self.layers), {n: s if s.is_tied else s.with_breaking(None)
                                       for n, s in self.synapses.items()})

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

    def _weight_batch(self) -> Tuple[int, ...]:
        """The broadcast of the synapses' leading (ensemble) weight dims; () for one network."""
        shapes = [_lead(t, len(s.w_idx)) for s in self.synapses.values()
                  for t in (s.weight, s.breaking) if t is not None]
        return tuple(torch.broadcast_shapes(*shapes)) if shapes else ()

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
        wb = self._weight_batch()
        if wb:
            try:
                ok = tuple(torch.broadcast_shapes(batch, wb)) == batch
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"the synapse weights carry ensemble dims {wb} (one network per index), which do not "
                    f"broadcast to the states' batch shape {batch}: give states of shape "
                    f"(*batch, *layer shape) whose batch ends in dims compatible with {wb}, e.g. {wb[:-1] + (5,)}."
                )
        return batch

    # -- maths ----------------------------------------------------------------------------
    def activations(self, xs: States) -> States:
        """``{name: g = dL/dx}``."""
        return {n: self.layers[n].activation(x) for n, x in xs.items()}

    def inputs(self, gs: States, targets: Optional[Iterable[str]] = None, tied: bool = False) -> States:
        """Total synaptic input ``I^A`` to each layer (or to ``targets``) from activations ``gs``.

        Untied synapses feed back ``(W^T + V) g``; ``tied=True`` gives the inputs of the tied
        part (feedback ``W^T`` everywhere). Layers without synapses get zeros."""
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
                v = s.to_pre(gs[s.post], tied=tied)
                add(s.pre, half * v if s.self_loop else v)
        for n in targets:
            if n not in out:
                out[n] = torch.zeros_like(gs[n])
        return out

    def _energy_terms(self, xs: States, gs: Optional[States]) -> Dict[str, torch.Tensor]:
        gs = self.activations(xs) if gs is None else gs
        terms = {n: self.layers[n].legendre(x) for n, x in xs.items()}
        for n, s in self.synapses.items():
            terms[n] = s.energy(gs[s.pre], gs[s.post])
        return terms

    def energy_terms(self, xs: States, gs: Optional[States] = None) -> Dict[str, torch.Tensor]:
        """Per-component energies (shape ``B`` each): ``{layer name: <x,g> - L(x)}`` and
        ``{synapse name: -<g_post, W g_pre>}``; their sum is :meth:`energy`. Raises
        :class:`NoEnergyError` for a network with untied feedback."""
        self._require_tied()
        self._check_states(xs)
        return self._energy_terms(xs, gs)

    def energy(self, xs: States, gs: Optional[States] = None) -> torch.Tensor:
        """Total energy ``E``, one value per sample (shape ``B``). Raises :class:`NoEnergyError`
        for a network with untied feedback (use :meth:`tied_energy` or :meth:`pseudo_energy`)."""
        return _total(self.energy_terms(xs, gs).values())

    def tied_energy(self, xs: States, gs: Optional[States] = None) -> torch.Tensor:
        """The energy of the tied part (every feedback ``W^T``, ``V`` ignored), shape ``B``; equals
        :meth:`energy` for a tied network."""
        self._check_states(xs)
        return _total(self._energy_terms(xs, gs).values())

    def _pseudo_terms(self, gs: States) -> list:
        # 1/2 <g_pre, b> with b = the breaking part of the input pre receives (V g_post; halved
        # for a recurrent synapse, whose input is half its to_pre)
        out = []
        for n in self.untied_synapses:
            s = self.synapses[n]
            b = s.breaking_input(gs[s.post])
            p = gs[s.pre] * (0.5 * b if s.self_loop else b)
            out.append(0.5 * p.flatten(start_dim=p.dim() - len(s.pre_idx)).sum(-1))
        return out

    def pseudo_energy(self, xs: States, gs: Optional[States] = None) -> torch.Tensor:
        r"""The pseudo-energy of a network with untied feedback, shape ``B``:

        .. math:: \tilde E = E_\text{tied} + \tfrac12 \sum_{\text{untied } (W, V)} \langle g^\text{pre}, V g^\text{post}\rangle ,

        the tied part's energy plus half the interaction energy of the breaking parts (for the
        continuous Mixer this is the pseudo-energy of Karakida, Ota, Taki 2024, Sec. 6.2; book
        chapter 7). Equals :meth:`energy` for a tied network. Not a Lyapunov function: it may rise.
        """
        self._check_states(xs)
        gs = self.activations(xs) if gs is None else gs
        E = _total(self._energy_terms(xs, gs).values())
        extra = self._pseudo_terms(gs)
        return E + _total(extra) if extra else E

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
    ``<X,G> - L(X) - sum Phi(A G) - sum Phi(G B^T)`` (Karakida, Ota, Taki 2024, Secs. 5-6; book
    chapter 6). ``E_red`` needs only the kept layers' Lagrangians to be convex (GELU hidden layers
    are fine). With untied feedback the flow is that of the untied network (for the Mixer,
    ``(A^T + V^s) GELU(A G) + GELU(G B^T)(B + V^{cT}) - X``, book chapter 7) and only
    :meth:`tied_energy` and :meth:`pseudo_energy` exist.

    Same interface as :class:`HAM` over the kept layers: ``energy``, ``energy_terms``
    (hidden layers' terms are ``-L_h(I^h)``), ``tied_energy``, ``pseudo_energy``, ``dEdg``,
    ``flow``, ``step``, ``run``; plus :meth:`inputs`, :meth:`hidden_states` and :meth:`complete`.
    Shares the weights of the full network.
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
        self._kept_layers = {n: ham.layers[n] for n in self.kept}  # plain dicts: hot-path lookups
        self._hidden_layers = {h: ham.layers[h] for h in hidden}

    @property
    def dynamic_layers(self) -> Mapping[str, Layer]:
        return self._kept_layers

    @property
    def layer_names(self) -> Tuple[str, ...]:
        return self.kept

    @property
    def untied_synapses(self) -> Tuple[str, ...]:
        return self.ham.untied_synapses

    def tied(self) -> "ReducedHAM":
        """The tied network's reduction (every breaking part removed); shares the weights."""
        return ReducedHAM(self.ham.tied(), self.hidden)

    def init_states(self, *args, **kw) -> States:
        """As :meth:`HAM.init_states`, for the kept layers only."""
        kw.setdefault("layers", self.kept)
        return self.ham.init_states(*args, **kw)

    def _check_states(self, xs, names=None):
        return self.ham._check_states(xs, self.kept if names is None else names)

    def _hidden(self, gs: States, tied: bool = False) -> Tuple[States, States]:
        xh = self.ham.inputs(gs, targets=self.hidden, tied=tied)
        return xh, {h: self._hidden_layers[h].activation(v) for h, v in xh.items()}

    def inputs(self, gs: States, tied: bool = False) -> States:
        """Total input ``I^A`` to each kept layer from the kept activations ``gs``, the hidden
        layers at their fixed points (``tied=True``: of the tied part). For the Mixer this is the
        mixing term ``M(G)``."""
        _, gh = self._hidden(gs, tied)
        return self.ham.inputs({**gs, **gh}, targets=self.kept, tied=tied)

    def hidden_states(self, xs: States, gs: Optional[States] = None) -> States:
        """The eliminated layers' fixed points ``{h: x^h = I^h}`` (shape ``(*B, *h.shape)``)."""
        self._check_states(xs)
        gs = self.ham.activations(xs) if gs is None else gs
        return self.ham.inputs(gs, targets=self.hidden)

    def complete(self, xs: States) -> States:
        """The full network's states: ``xs`` plus the hidden layers at their fixed points."""
        return {**xs, **self.hidden_states(xs)}

    def _energy_terms(self, xs: States, gs: States) -> Dict[str, torch.Tensor]:
        xh = self.ham.inputs(gs, targets=self.hidden, tied=True)
        terms = {n: self.ham.layers[n].legendre(x) for n, x in xs.items()}
        for n, s in self.ham.synapses.items():
            if s.pre not in self.hidden and s.post not in self.hidden:
                terms[n] = s.energy(gs[s.pre], gs[s.post])
        for h, v in xh.items():
            terms[h] = -self.ham.layers[h].lagrangian_value(v)
        return terms

    def energy_terms(self, xs: States) -> Dict[str, torch.Tensor]:
        """Kept layers' Legendre terms, synapses among kept layers, and ``{h: -L_h(I^h)}``."""
        self._require_tied()
        self._check_states(xs)
        return self._energy_terms(xs, self.ham.activations(xs))

    def energy(self, xs: States) -> torch.Tensor:
        """Reduced energy ``E_red`` (shape ``B``); equals the full energy at :meth:`complete`.
        Raises :class:`NoEnergyError` with untied feedback."""
        return _total(self.energy_terms(xs).values())

    def tied_energy(self, xs: States) -> torch.Tensor:
        """The reduced energy of the tied part (``V`` ignored, also in the hidden fixed points), shape ``B``."""
        self._check_states(xs)
        return _total(self._energy_terms(xs, self.ham.activations(xs)).values())

    def pseudo_energy(self, xs: States) -> torch.Tensor:
        r""":meth:`tied_energy` plus ``1/2 <g_pre, V g_post>`` for every untied synapse, the hidden
        activations at their fixed points (see :meth:`HAM.pseudo_energy`), shape ``B``.

        For the continuous Mixer: ``E + 1/2 <G, V^s GELU(A G)> + 1/2 <G, GELU(G B^T) V^{cT}>``."""
        self._check_states(xs)
        for n in self.untied_synapses:
            s = self.ham.synapses[n]
            if s.pre in self.hidden:
                raise NoEnergyError(
                    f"no pseudo-energy: the eliminated layer {s.pre!r} receives the untied feedback of "
                    f"synapse {n!r}, so its fixed point differs between the tied part and the network. "
                    "Eliminate only layers that are the post of untied synapses."
                )
        gs = self.ham.activations(xs)
        E = _total(self._energy_terms(xs, gs).values())
        if self.is_tied:
            return E
        _, gh = self._hidden(gs)
        return E + _total(self.ham._pseudo_terms({**gs, **gh}))

    def _dEdg(self, xs: States) -> States:
        # dE_red/dg^A = x^A - I^A with the hidden layers at their fixed points
        I = self.inputs(self.ham.activations(xs))
        return {n: x - I[n] for n, x in xs.items()}
