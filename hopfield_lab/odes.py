"""The continuous parallelized Mixer as an ODE: the symmetry-breaking demos (paper Sec. 6.2, book chapter 7).

The visible layer is a matrix ``X`` of shape ``(S, C)`` (tokens x channels; a batch adds leading
axes, so states are ``(..., S, C)``). Its activation is LayerNorm over the *whole* matrix, without
affine parameters, ``G = LN(X)``: the gradient of the LayerNorm Lagrangian
``L_v(X) = D sqrt(Var(X) + eps)``, ``D = S*C`` (:class:`hopfield_lab.lagrangians.LayerNorm`,
book chapter 3). Two hidden layers with GELU Lagrangians (``Phi_GELU``, whose derivative is GELU)
are integrated out in the adiabatic limit, which leaves the flow (tau_v = 1)

    dX/dt = (A^T + V_s) GELU(A G) + GELU(G B^T) (B + V_c^T) - X                         (1)

with token weights ``A`` ``(Ns, S)``, channel weights ``B`` ``(Nc, C)`` and the symmetry-breaking
parts ``V_s`` ``(S, Ns)`` and ``V_c`` ``(C, Nc)``: the feedback weights are ``A^T + V_s`` and
``B^T + V_c``, the layout of :attr:`hopfield_lab.mixer.AsymMlp.breaking` (``V^s``, ``V^c`` of the
AsymMixer; an AsymMixer block ``X + M(LN X)`` is not a unit Euler step of (1), which would
be ``X <- M(G)``, but an Euler step of size ``1/(k+2)`` of (1) for the rescaled state
``X_k/(k+1)``: book chapter 6). With
``V_s = V_c = 0`` the feedback weights are the transposes of the feedforward ones and

    E(X) = [<X, G> - L_v(X)] - sum Phi_GELU(A G) - sum Phi_GELU(G B^T)                 (2)

is a Lyapunov function: dE/dX = -J(X) dX/dt with J the (symmetric, positive semi-definite)
Jacobian of LN, so dE/dt = -<dX/dt, J dX/dt> <= 0. With a breaking part, (2) evaluated on the
trajectory is only the energy of the tied part and may increase. :meth:`MixerODE.pseudo_energy`
adds the paper's interaction term 1/2 <G, V_s GELU(A G)> + 1/2 <G, GELU(G B^T) V_c^T>; both
coincide when the breaking part is zero.

Nothing here re-derives the network: a :class:`MixerODE` is a view of the HAM core. It builds
the three-layer :class:`hopfield_lab.ham.HAM` (LayerNorm visible layer, GELU hidden layers,
:class:`~hopfield_lab.ham.TokenMixing` and :class:`~hopfield_lab.ham.ChannelMixing` synapses with
the untied feedback ``V_s``, ``V_c``), eliminates the hidden layers
(:meth:`hopfield_lab.ham.HAM.eliminate`), and its flow, energies and integration
(:func:`hopfield_lab.ham.integrate`) are those of that network. :func:`count_increases` is
:func:`hopfield_lab.ham.count_increases`.

``pooled=True`` gives the variant of the official demo notebook (github.com/Toshihiro-Ota/paramixer),
in which every hidden token unit sees the channel-summed visible state (and every hidden channel
unit the token-summed one) and broadcasts its feedback; (1) and (2) hold with ``G`` replaced by
those sums. In the HAM the hidden layers are then vectors ``(Ns,)`` and ``(Nc,)`` joined to ``X``
by :class:`~hopfield_lab.ham.Dense` synapses whose weights repeat ``A`` over the channels and
``B`` over the tokens.

Everything is batched torch code; the defaults use float64 so that energy differences of
1e-10 between successive steps are still meaningful.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import torch

from .ham import INTEGRATORS, HAM, ChannelMixing, Dense, Layer, TokenMixing, count_increases, steps_for
from .ham import integrate as _integrate
from .lagrangians import GELU, LayerNorm
from .lagrangians import phi_gelu  # the GELU Lagrangian, Phi' = GELU (re-exported here)

__all__ = [
    "phi_gelu",
    "sample_sphere",
    "MixerODE",
    "small_system",
    "large_system",
    "SMALL",
    "LARGE",
    "initial_states",
    "integrate",
    "count_increases",
    "energy_landscape",
]

#: time constant of the hidden layers of :attr:`MixerODE.ham` (the ODE itself is their limit tau -> 0)
TAU_HIDDEN = 1e-2


def sample_sphere(shape: Sequence[int], radius: float, generator: Optional[torch.Generator] = None,
                  dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """A tensor of shape ``(*lead, m, n)`` whose every ``(m, n)`` matrix is drawn uniformly from the
    sphere of Frobenius radius ``radius``.

    (An isotropic Gaussian normalised to unit norm, times ``radius``; ``radius = 0`` gives zeros.)
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    w = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device)
    return w * (radius / torch.linalg.matrix_norm(w, keepdim=True))


def _breaking_or_none(V: torch.Tensor) -> Optional[torch.Tensor]:
    return V if bool(V.any()) else None


@dataclass(frozen=True, eq=False)
class MixerODE:
    """The continuous parallelized Mixer (1) with weights ``A, B`` and breaking parts ``V_s, V_c``.

    Shapes: ``A (*w, Ns, S)``, ``B (*w, Nc, C)``, ``V_s (*w, S, Ns)``, ``V_c (*w, C, Nc)``; states
    ``(..., S, C)``. Leading weight axes ``*w`` (an ensemble of systems, see ``n_systems`` in
    :meth:`random`) broadcast against the states' leading axes like ``torch.matmul``.

    Attributes (built from the fields): ``ham``, the three-layer :class:`~hopfield_lab.ham.HAM`
    (layers ``"x"``, ``"hs"``, ``"hc"`` with hidden time constants :data:`TAU_HIDDEN`; synapses
    ``"A"``, ``"B"``, untied where a breaking part is non-zero) and ``reduced``, its adiabatic
    limit ``ham.eliminate("hs", "hc")``, whose flow is (1).
    """

    A: torch.Tensor
    B: torch.Tensor
    V_s: torch.Tensor
    V_c: torch.Tensor
    eps: float = 1e-5
    pooled: bool = False

    def __post_init__(self):
        Ns, S = self.A.shape[-2:]
        Nc, C = self.B.shape[-2:]
        if tuple(self.V_s.shape[-2:]) != (S, Ns):
            raise ValueError(f"V_s must have shape (..., S, Ns) = (..., {S}, {Ns}) (the layout of A.T), "
                             f"got {tuple(self.V_s.shape)}")
        if tuple(self.V_c.shape[-2:]) != (C, Nc):
            raise ValueError(f"V_c must have shape (..., C, Nc) = (..., {C}, {Nc}) (the layout of B.T), "
                             f"got {tuple(self.V_c.shape)}")
        if self.eps <= 0:
            raise ValueError("eps must be > 0 (with eps = 0 LN is undefined at constant states)")
        ham = self._network(S, C, Ns, Nc)
        object.__setattr__(self, "ham", ham)
        object.__setattr__(self, "reduced", ham.eliminate("hs", "hc"))

    def _network(self, S: int, C: int, Ns: int, Nc: int) -> HAM:
        V_s, V_c = _breaking_or_none(self.V_s), _breaking_or_none(self.V_c)
        visible = Layer((S, C), LayerNorm(eps=self.eps, dim=(-2, -1)), tau=1.0)
        if not self.pooled:
            layers = {"x": visible, "hs": Layer((Ns, C), GELU(), tau=TAU_HIDDEN),
                      "hc": Layer((S, Nc), GELU(), tau=TAU_HIDDEN)}
            synapses = {"A": TokenMixing("x", "hs", weight=self.A, learnable=False, breaking=V_s),   # A G
                        "B": ChannelMixing("x", "hc", weight=self.B, learnable=False, breaking=V_c)}  # G B^T
        else:
            # hidden units see the pooled state: h_s = A (G 1_C), h_c = B (G^T 1_S), as Dense
            # synapses from (S, C) whose weights repeat A over the channels and B over the tokens
            A = self.A.unsqueeze(-1).expand(*self.A.shape, C)                        # (*w, Ns, S, C)
            B = self.B.unsqueeze(-2).expand(*self.B.shape[:-1], S, C)                # (*w, Nc, S, C)
            if V_s is not None:
                V_s = V_s.unsqueeze(-2).expand(*V_s.shape[:-1], C, Ns)               # (*w, S, C, Ns)
            if V_c is not None:
                V_c = V_c.unsqueeze(-3).expand(*V_c.shape[:-2], S, C, Nc)            # (*w, S, C, Nc)
            layers = {"x": visible, "hs": Layer(Ns, GELU(), tau=TAU_HIDDEN), "hc": Layer(Nc, GELU(), tau=TAU_HIDDEN)}
            synapses = {"A": Dense("x", "hs", weight=A, learnable=False, breaking=V_s),
                        "B": Dense("x", "hc", weight=B, learnable=False, breaking=V_c)}
        return HAM(layers, synapses).to(device=self.A.device, dtype=self.A.dtype)

    # ----------------------------------------------------------------- construction
    @classmethod
    def random(cls, S: int, C: int, Ns: int, Nc: int, radii: tuple[float, float] = (1.0, 2.5),
               breaking: tuple[float, float] = (0.0, 0.0), seed: int = 0, eps: float = 1e-5,
               pooled: bool = False, n_systems: Optional[int] = None, dtype: torch.dtype = torch.float64,
               device=None) -> "MixerODE":
        """Weights uniformly on spheres: ``|A| = radii[0]``, ``|B| = radii[1]``, ``|V_s| = breaking[0]``,
        ``|V_c| = breaking[1]`` (Frobenius norms), drawn from a generator seeded with ``seed``.

        The breaking parts are drawn from the same stream *after* ``A`` and ``B``, so the symmetric
        part does not change when only ``breaking`` changes. With ``n_systems = n`` the weights get
        leading axes ``(n, 1)`` (``n`` independent systems); states are then ``(n, batch, S, C)``.
        """
        g = torch.Generator().manual_seed(seed)
        lead = () if n_systems is None else (n_systems, 1)
        A = sample_sphere(lead + (Ns, S), radii[0], g, dtype)
        B = sample_sphere(lead + (Nc, C), radii[1], g, dtype)
        V_s = sample_sphere(lead + (S, Ns), 1.0, g, dtype) * breaking[0]
        # drawn as (Nc, C), like B, and stored transposed: the same draws as the tied B's layout
        V_c = (sample_sphere(lead + (Nc, C), 1.0, g, dtype) * breaking[1]).mT.contiguous()
        sys = cls(A, B, V_s, V_c, eps=eps, pooled=pooled)
        return sys.to(device) if device is not None else sys

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "MixerODE":
        """A copy with all weights moved to ``device`` / cast to ``dtype``."""
        f = lambda w: w.to(device=device, dtype=dtype or w.dtype)  # noqa: E731
        return replace(self, A=f(self.A), B=f(self.B), V_s=f(self.V_s), V_c=f(self.V_c))

    def symmetric_part(self) -> "MixerODE":
        """The same system with the breaking parts set to zero."""
        return replace(self, V_s=torch.zeros_like(self.V_s), V_c=torch.zeros_like(self.V_c))

    def with_breaking_scale(self, scale: float) -> "MixerODE":
        """The same system with both breaking parts multiplied by ``scale``."""
        return replace(self, V_s=self.V_s * scale, V_c=self.V_c * scale)

    @property
    def shape(self) -> tuple[int, int]:
        """``(S, C)``, the shape of one visible state."""
        return (int(self.A.shape[-1]), int(self.B.shape[-1]))

    @property
    def breaking_norms(self) -> tuple[float, float]:
        """Frobenius norms of ``V_s`` and ``V_c`` (the largest over an ensemble)."""
        return (float(torch.linalg.matrix_norm(self.V_s).max()), float(torch.linalg.matrix_norm(self.V_c).max()))

    @property
    def is_symmetric(self) -> bool:
        return not (bool(self.V_s.any()) or bool(self.V_c.any()))

    # ----------------------------------------------------------------- the flow
    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"states must have shape (..., S, C) = (..., {self.shape[0]}, {self.shape[1]}), "
                             f"got {tuple(x.shape)}")

    @property
    def _visible(self) -> LayerNorm:
        return self.ham.layers["x"].lagrangian

    def layer_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``G = LN(X)`` over the last two axes, no affine: ``(..., S, C) -> (..., S, C)``."""
        self._check(x)
        return self._visible.activation(x)

    def mixing(self, G: torch.Tensor, tied: bool = False) -> torch.Tensor:
        """The mixing term ``M(G) = (A^T + V_s) GELU(A G) + GELU(G B^T)(B + V_c^T)``, ``(..., S, C)``:
        the input of the visible layer with the hidden layers at their fixed points
        (``tied=True``: of the tied part, ``V_s = V_c = 0``)."""
        return self.reduced.inputs({"x": G}, tied=tied)["x"]

    def velocity(self, x: torch.Tensor) -> torch.Tensor:
        """``dX/dt`` of (1): ``(..., S, C) -> (..., S, C)``."""
        self._check(x)
        return self.reduced.flow({"x": x})["x"]

    __call__ = velocity

    # ----------------------------------------------------------------- energies
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy (2) of the *symmetric part* (``A``, ``B``): ``(..., S, C) -> (...)``.

        A Lyapunov function when ``V_s = V_c = 0``; the tied part's energy otherwise
        (:meth:`hopfield_lab.ham.ReducedHAM.tied_energy`). The Legendre term ``<X, G> - L_v(X)``
        equals ``-D eps / sqrt(Var + eps)`` exactly (computed that way to avoid cancellation).
        """
        self._check(x)
        return self.reduced.tied_energy({"x": x})

    def pseudo_energy(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's pseudo-energy: (2) plus ``1/2 <Gs, V_s GELU(h_s)> + 1/2 <Gc, GELU(h_c) V_c^T>``, ``(...)``
        (:meth:`hopfield_lab.ham.ReducedHAM.pseudo_energy`).

        Equals :meth:`energy` when the breaking parts vanish.
        """
        self._check(x)
        return self.reduced.pseudo_energy({"x": x})

    def ln_jvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``J(X) v`` with ``J = dLN/dX``, the (symmetric PSD) Hessian of ``L_v``; shapes ``(..., S, C)``
        (:meth:`hopfield_lab.lagrangians.LayerNorm.hvp`).

        ``J v = (v - mean v)/s - (X - m) <X - m, v> / (D s^3)`` with ``s = sqrt(Var + eps)``.
        """
        self._check(x)
        return self._visible.hvp(x, v)

    def energy_grad(self, x: torch.Tensor) -> torch.Tensor:
        """Closed-form ``dE/dX = J(X) (X - M_0(G))`` of the symmetric-part energy (2), ``(..., S, C)``,
        with ``M_0`` the tied mixing term.

        For the symmetric system this is ``-J(X) dX/dt``.
        """
        return self.ln_jvp(x, x - self.mixing(self.layer_norm(x), tied=True))

    def energy_rate(self, x: torch.Tensor) -> torch.Tensor:
        """``dE/dt = <dE/dX, dX/dt>`` along the flow (1), ``(...)``.

        For the symmetric system it equals ``-<dX/dt, J dX/dt> <= 0``.
        """
        return (self.energy_grad(x) * self.velocity(x)).sum(dim=(-2, -1))


def small_system(asymmetric: bool = False, seed: int = 0, **kw) -> MixerODE:
    """The paper's small demo: S=2, C=1, Ns=3, Nc=2.

    Symmetric: radii (0.2, 0.5), no breaking. Asymmetric: radii (1.0, 2.5) with breaking radii
    (1.5, 4.0). Extra keywords go to :meth:`MixerODE.random`.
    """
    if asymmetric:
        return MixerODE.random(2, 1, 3, 2, radii=(1.0, 2.5), breaking=(1.5, 4.0), seed=seed, **kw)
    return MixerODE.random(2, 1, 3, 2, radii=(0.2, 0.5), breaking=(0.0, 0.0), seed=seed, **kw)


def large_system(asymmetric: bool = False, seed: int = 0, **kw) -> MixerODE:
    """The paper's larger demo: S=4, C=8, Ns=20, Nc=160, radii (1.0, 2.5), breaking (1.5, 4.0) or 0."""
    breaking = (1.5, 4.0) if asymmetric else (0.0, 0.0)
    return MixerODE.random(4, 8, 20, 160, radii=(1.0, 2.5), breaking=breaking, seed=seed, **kw)


#: keyword sets of the two demo systems (sizes only), for readers who want to vary the radii
SMALL = dict(S=2, C=1, Ns=3, Nc=2)
LARGE = dict(S=4, C=8, Ns=20, Nc=160)


def initial_states(system, batch: int = 10, mean: float = 0.5, std: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``batch`` random visible states ``X0 ~ N(mean, std^2)`` of shape ``(batch, S, C)``, drawn from a
    generator seeded with ``seed``: the one home of the book's initial states.

    ``system`` is a :class:`MixerODE` (states ``(n, batch, S, C)`` for an ensemble of ``n`` systems)
    or a Mixer block with ``seq_len`` = S, ``dim`` = C and an ``mlp_tokens`` MLP, such as
    :class:`hopfield_lab.mixer.ParallelMixerBlock`; dtype and device are those of its weights.
    """
    if isinstance(system, MixerODE):
        (S, C), ref = system.shape, system.A
        lead = tuple(system.A.shape[:-2])[:1]  # an ensemble of n systems: (n, batch, S, C)
    elif all(hasattr(system, a) for a in ("seq_len", "dim", "mlp_tokens")):
        S, C, ref, lead = system.seq_len, system.dim, system.mlp_tokens.w1, ()
    else:
        raise TypeError(f"initial_states needs a MixerODE or a Mixer block (seq_len, dim), got {type(system).__name__}.")
    g = torch.Generator().manual_seed(seed)
    x0 = mean + std * torch.randn(lead + (batch, S, C), generator=g, dtype=ref.dtype)
    return x0.to(ref.device)


def integrate(f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, t_end: float = 10.0,
              dt: float = 1e-3, method: str = "rk4", save_every: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate the autonomous ODE ``dx/dt = f(x)`` from ``x0`` (any shape, e.g. ``(B, S, C)``) with
    :func:`hopfield_lab.ham.integrate`.

    ``f`` is a :class:`MixerODE` (then the flow of its reduced HAM, :attr:`MixerODE.reduced`, is
    integrated, and ``x0`` must be ``(..., S, C)``) or any function of a tensor. ``method`` is
    ``"rk4"`` (classical fourth order) or ``"euler"``; ``n = round(t_end / dt)`` fixed steps. Returns
    ``(t, xs)``: times ``(T,)`` and states ``(T, *x0.shape)``, recorded every ``save_every`` steps
    and at the end (``T = ceil(n / save_every) + 1``, the initial state included). Follows the
    caller's grad mode; NaN or inf states raise :class:`hopfield_lab.ham.DivergenceError`.
    """
    n = steps_for(t_end, dt)  # a one-line error for dt=0, NaN, inf or a tiny dt (> 10^6 steps)
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every!r}")
    if method not in INTEGRATORS:
        raise ValueError(f"method must be one of {INTEGRATORS}, got {method!r}")
    kw = dict(record_states=True, record_every=save_every, max_abs=None)
    if isinstance(f, MixerODE):
        traj = f.reduced.run({"x": x0}, n, dt, method=method, grad=True, **kw)
    else:
        traj = _integrate(lambda xs: {"x": f(xs["x"])}, {"x": x0}, n, dt, method, **kw)
    return traj.t.to(dtype=x0.dtype, device=x0.device), traj.states["x"]


def energy_landscape(system: MixerODE, x1: torch.Tensor, x2: torch.Tensor, pseudo: bool = False) -> torch.Tensor:
    """Energy of the S=2, C=1 system on the grid ``x1 (n1,) x x2 (n2,)``; returns ``(n2, n1)`` (rows = x2).

    ``pseudo=True`` evaluates :meth:`MixerODE.pseudo_energy` instead of (2).
    """
    if system.shape != (2, 1):
        raise ValueError(f"the 2-D landscape needs the S=2, C=1 system, got (S, C) = {system.shape}")
    X1, X2 = torch.meshgrid(x1.to(system.A.dtype), x2.to(system.A.dtype), indexing="xy")
    X = torch.stack([X1, X2], dim=-1).unsqueeze(-1)  # (n2, n1, 2, 1)
    return (system.pseudo_energy if pseudo else system.energy)(X)
