"""The continuous parallelized Mixer as an ODE: the symmetry-breaking demos (paper Sec. 6.2).

The visible layer is a matrix ``X`` of shape ``(S, C)`` (tokens x channels; a batch adds leading
axes, so states are ``(..., S, C)``). Its activation is LayerNorm over the *whole* matrix, without
affine parameters,

    G = LN(X) = (X - mean(X)) / sqrt(Var(X) + eps),                 (mean, Var over S*C entries)

which is the gradient of the Lagrangian ``L_v(X) = D sqrt(Var(X) + eps)`` with ``D = S*C``.
Two hidden layers with GELU Lagrangians (``Phi_GELU``, whose derivative is GELU) are integrated
out in the adiabatic limit, which leaves the flow (tau_v = 1)

    dX/dt = (A^T + U_s) GELU(A G) + GELU(G B^T) (B + U_c) - X                           (1)

with token weights ``A`` ``(Ns, S)``, channel weights ``B`` ``(Nc, C)`` and the symmetry-breaking
parts ``U_s`` ``(S, Ns)`` and ``U_c`` ``(Nc, C)``. With ``U_s = U_c = 0`` the feedback weights are
the transposes of the feedforward ones and

    E(X) = [<X, G> - L_v(X)] - sum Phi_GELU(A G) - sum Phi_GELU(G B^T)                 (2)

is a Lyapunov function: dE/dX = -J(X) dX/dt with J the (symmetric, positive semi-definite)
Jacobian of LN, so dE/dt = -<dX/dt, J dX/dt> <= 0. With a breaking part, (2) evaluated on the
trajectory is only a *pseudo-energy* and may increase. :meth:`MixerODE.pseudo_energy` adds the
paper's interaction term 1/2 <G, U_s GELU(A G)> + 1/2 <G, GELU(G B^T) U_c>; both coincide when
the breaking part is zero.

``pooled=True`` gives the variant of the official demo notebook, in which every hidden token unit
sees the channel-summed visible state (and every hidden channel unit the token-summed one) and
broadcasts its feedback; (1) and (2) hold with ``G`` replaced by those sums.

Everything is batched torch code; the defaults use float64 so that energy differences of
1e-10 between successive steps are still meaningful.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

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


@dataclass(frozen=True, eq=False)
class MixerODE:
    """The continuous parallelized Mixer (1) with weights ``A, B`` and breaking parts ``U_s, U_c``.

    Shapes: ``A (*w, Ns, S)``, ``B (*w, Nc, C)``, ``U_s (*w, S, Ns)``, ``U_c (*w, Nc, C)``; states
    ``(..., S, C)``. Leading weight axes ``*w`` (an ensemble of systems, see ``n_systems`` in
    :meth:`random`) broadcast against the states' leading axes like ``torch.matmul``.
    """

    A: torch.Tensor
    B: torch.Tensor
    U_s: torch.Tensor
    U_c: torch.Tensor
    eps: float = 1e-5
    pooled: bool = False

    def __post_init__(self):
        Ns, S = self.A.shape[-2:]
        Nc, C = self.B.shape[-2:]
        if tuple(self.U_s.shape[-2:]) != (S, Ns):
            raise ValueError(f"U_s must have shape (..., S, Ns) = (..., {S}, {Ns}), got {tuple(self.U_s.shape)}")
        if tuple(self.U_c.shape[-2:]) != (Nc, C):
            raise ValueError(f"U_c must have shape (..., Nc, C) = (..., {Nc}, {C}), got {tuple(self.U_c.shape)}")
        if self.eps <= 0:
            raise ValueError("eps must be > 0 (with eps = 0 LN is undefined at constant states)")

    # ----------------------------------------------------------------- construction
    @classmethod
    def random(cls, S: int, C: int, Ns: int, Nc: int, radii: tuple[float, float] = (1.0, 2.5),
               breaking: tuple[float, float] = (0.0, 0.0), seed: int = 0, eps: float = 1e-5,
               pooled: bool = False, n_systems: Optional[int] = None, dtype: torch.dtype = torch.float64,
               device=None) -> "MixerODE":
        """Weights uniformly on spheres: ``|A| = radii[0]``, ``|B| = radii[1]``, ``|U_s| = breaking[0]``,
        ``|U_c| = breaking[1]`` (Frobenius norms), drawn from a generator seeded with ``seed``.

        The breaking parts are drawn from the same stream *after* ``A`` and ``B``, so the symmetric
        part does not change when only ``breaking`` changes. With ``n_systems = n`` the weights get
        leading axes ``(n, 1)`` (``n`` independent systems); states are then ``(n, batch, S, C)``.
        """
        g = torch.Generator().manual_seed(seed)
        lead = () if n_systems is None else (n_systems, 1)
        A = sample_sphere(lead + (Ns, S), radii[0], g, dtype)
        B = sample_sphere(lead + (Nc, C), radii[1], g, dtype)
        U_s = sample_sphere(lead + (S, Ns), 1.0, g, dtype) * breaking[0]
        U_c = sample_sphere(lead + (Nc, C), 1.0, g, dtype) * breaking[1]
        sys = cls(A, B, U_s, U_c, eps=eps, pooled=pooled)
        return sys.to(device) if device is not None else sys

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "MixerODE":
        """A copy with all weights moved to ``device`` / cast to ``dtype``."""
        f = lambda w: w.to(device=device, dtype=dtype or w.dtype)  # noqa: E731
        return replace(self, A=f(self.A), B=f(self.B), U_s=f(self.U_s), U_c=f(self.U_c))

    def symmetric_part(self) -> "MixerODE":
        """The same system with the breaking parts set to zero."""
        return replace(self, U_s=torch.zeros_like(self.U_s), U_c=torch.zeros_like(self.U_c))

    def with_breaking_scale(self, scale: float) -> "MixerODE":
        """The same system with both breaking parts multiplied by ``scale``."""
        return replace(self, U_s=self.U_s * scale, U_c=self.U_c * scale)

    @property
    def shape(self) -> tuple[int, int]:
        """``(S, C)``, the shape of one visible state."""
        return (int(self.A.shape[-1]), int(self.B.shape[-1]))

    @property
    def breaking_norms(self) -> tuple[float, float]:
        """Frobenius norms of ``U_s`` and ``U_c`` (the largest over an ensemble)."""
        return (float(torch.linalg.matrix_norm(self.U_s).max()), float(torch.linalg.matrix_norm(self.U_c).max()))

    @property
    def is_symmetric(self) -> bool:
        return not (bool(self.U_s.any()) or bool(self.U_c.any()))

    # ----------------------------------------------------------------- the flow
    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"states must have shape (..., S, C) = (..., {self.shape[0]}, {self.shape[1]}), "
                             f"got {tuple(x.shape)}")

    def layer_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``G = LN(X)`` over the last two axes, no affine: ``(..., S, C) -> (..., S, C)``."""
        self._check(x)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        var = (x - mean).pow(2).mean(dim=(-2, -1), keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps)

    def _hidden_inputs(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs ``(Gs, Gc)`` seen by the two hidden layers and their states ``(h_s, h_c)``.

        Mixer coupling: ``Gs = Gc = G``, ``h_s = A G (..., Ns, C)``, ``h_c = G B^T (..., S, Nc)``.
        Pooled: ``Gs = G 1_C (..., S, 1)``, ``Gc = 1_S^T G (..., 1, C)``, ``h_s (..., Ns, 1)``, ``h_c (..., 1, Nc)``.
        """
        Gs = G.sum(dim=-1, keepdim=True) if self.pooled else G
        Gc = G.sum(dim=-2, keepdim=True) if self.pooled else G
        h_s = self.A @ Gs
        h_c = Gc @ self.B.mT
        return Gs, Gc, h_s, h_c

    def mixing(self, G: torch.Tensor) -> torch.Tensor:
        """The mixing term ``M(G) = (A^T + U_s) GELU(A G) + GELU(G B^T)(B + U_c)``, ``(..., S, C)``."""
        _, _, h_s, h_c = self._hidden_inputs(G)
        tokens = (self.A.mT + self.U_s) @ F.gelu(h_s)
        channels = F.gelu(h_c) @ (self.B + self.U_c)
        return tokens + channels  # broadcasts in the pooled variant

    def velocity(self, x: torch.Tensor) -> torch.Tensor:
        """``dX/dt`` of (1): ``(..., S, C) -> (..., S, C)``."""
        return self.mixing(self.layer_norm(x)) - x

    __call__ = velocity

    # ----------------------------------------------------------------- energies
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy (2) of the *symmetric part* (``A``, ``B``): ``(..., S, C) -> (...)``.

        A Lyapunov function when ``U_s = U_c = 0``; the pseudo-energy otherwise. The Legendre term
        ``<X, G> - L_v(X)`` equals ``-D eps / sqrt(Var + eps)`` exactly (computed that way to avoid
        cancellation).
        """
        self._check(x)
        D = x.shape[-1] * x.shape[-2]
        mean = x.mean(dim=(-2, -1), keepdim=True)
        var = (x - mean).pow(2).mean(dim=(-2, -1), keepdim=True)
        s = torch.sqrt(var + self.eps)
        G = (x - mean) / s
        legendre = (-D * self.eps / s).squeeze(-1).squeeze(-1)
        _, _, h_s, h_c = self._hidden_inputs(G)
        return legendre - phi_gelu(h_s).sum(dim=(-2, -1)) - phi_gelu(h_c).sum(dim=(-2, -1))

    def pseudo_energy(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's pseudo-energy: (2) plus ``1/2 <Gs, U_s GELU(h_s)> + 1/2 <Gc, GELU(h_c) U_c>``, ``(...)``.

        Equals :meth:`energy` when the breaking parts vanish.
        """
        G = self.layer_norm(x)
        Gs, Gc, h_s, h_c = self._hidden_inputs(G)
        inter = 0.5 * (Gs * (self.U_s @ F.gelu(h_s))).sum(dim=(-2, -1))
        inter = inter + 0.5 * (Gc * (F.gelu(h_c) @ self.U_c)).sum(dim=(-2, -1))
        return self.energy(x) + inter

    def ln_jvp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``J(X) v`` with ``J = dLN/dX``, the (symmetric PSD) Hessian of ``L_v``; shapes ``(..., S, C)``.

        ``J v = (v - mean v)/s - (X - m) <X - m, v> / (D s^3)`` with ``s = sqrt(Var + eps)``.
        """
        self._check(x)
        D = x.shape[-1] * x.shape[-2]
        xc = x - x.mean(dim=(-2, -1), keepdim=True)
        s = torch.sqrt(xc.pow(2).mean(dim=(-2, -1), keepdim=True) + self.eps)
        vc = v - v.mean(dim=(-2, -1), keepdim=True)
        return vc / s - xc * (xc * v).sum(dim=(-2, -1), keepdim=True) / (D * s ** 3)

    def energy_grad(self, x: torch.Tensor) -> torch.Tensor:
        """Closed-form ``dE/dX = J(X) (X - M(G))`` of the symmetric-part energy (2), ``(..., S, C)``.

        For the symmetric system this is ``-J(X) dX/dt``.
        """
        sym = self.symmetric_part()
        return self.ln_jvp(x, x - sym.mixing(self.layer_norm(x)))

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


def initial_states(system: MixerODE, batch: int = 10, mean: float = 0.5, std: float = 0.5,
                   seed: int = 0) -> torch.Tensor:
    """``batch`` initial states ``X0 ~ N(mean, std^2)`` of shape ``(batch, S, C)`` (``(n, batch, S, C)``
    for an ensemble of ``n`` systems) in the system's dtype and device."""
    g = torch.Generator().manual_seed(seed)
    S, C = system.shape
    lead = tuple(system.A.shape[:-2])[:1]  # an ensemble of n systems: (n, batch, S, C)
    x0 = mean + std * torch.randn(lead + (batch, S, C), generator=g, dtype=system.A.dtype)
    return x0.to(system.A.device)


def integrate(f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, t_end: float = 10.0,
              dt: float = 1e-3, method: str = "rk4", save_every: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate the autonomous ODE ``dx/dt = f(x)`` from ``x0`` (any shape, e.g. ``(B, S, C)``).

    ``method`` is ``"rk4"`` (classical fourth order) or ``"euler"``; ``n = round(t_end / dt)``
    fixed steps. Returns ``(t, xs)``: times ``(T,)`` and states ``(T, *x0.shape)`` with
    ``T = n // save_every + 1`` (the initial state included).
    """
    if method not in ("rk4", "euler"):
        raise ValueError(f"method must be 'rk4' or 'euler', got {method!r}")
    if dt <= 0 or t_end <= 0:
        raise ValueError("dt and t_end must be positive")
    n = int(round(t_end / dt))
    if save_every < 1:
        raise ValueError("save_every must be >= 1")
    out = [x0]
    x = x0
    for k in range(1, n + 1):
        if method == "euler":
            x = x + dt * f(x)
        else:
            k1 = f(x)
            k2 = f(x + 0.5 * dt * k1)
            k3 = f(x + 0.5 * dt * k2)
            k4 = f(x + dt * k3)
            x = x + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        if k % save_every == 0:
            out.append(x)
    xs = torch.stack(out)
    t = torch.arange(xs.shape[0], dtype=x0.dtype, device=x0.device) * (dt * save_every)
    return t, xs


def count_increases(E: torch.Tensor, rtol: float = 1e-12) -> torch.Tensor:
    """Number of steps at which an energy series ``E (T, ...)`` increases, per trailing index.

    A step counts when ``E[k+1] - E[k] > rtol * (1 + |E[k]|)`` -- the tolerance ignores
    float64 round-off once the flow has converged. Returns ``(...)`` integers.
    """
    dE = E[1:] - E[:-1]
    return (dE > rtol * (1.0 + E[:-1].abs())).sum(dim=0)


def energy_landscape(system: MixerODE, x1: torch.Tensor, x2: torch.Tensor, pseudo: bool = False) -> torch.Tensor:
    """Energy of the S=2, C=1 system on the grid ``x1 (n1,) x x2 (n2,)``; returns ``(n2, n1)`` (rows = x2).

    ``pseudo=True`` evaluates :meth:`MixerODE.pseudo_energy` instead of (2).
    """
    if system.shape != (2, 1):
        raise ValueError(f"the 2-D landscape needs the S=2, C=1 system, got (S, C) = {system.shape}")
    X1, X2 = torch.meshgrid(x1.to(system.A.dtype), x2.to(system.A.dtype), indexing="xy")
    X = torch.stack([X1, X2], dim=-1).unsqueeze(-1)  # (n2, n1, 2, 1)
    return (system.pseudo_energy if pseudo else system.energy)(X)
