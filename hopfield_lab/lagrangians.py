r"""Lagrangians of neuron layers and their activations.

A layer of neurons has a state ``x`` and a convex scalar *Lagrangian* :math:`L(x)`; its
activation is the gradient :math:`g = \partial L / \partial x` and the layer's own energy is the
Legendre term :math:`\langle x, g\rangle - L(x)` (Krotov 2021, :cite:`krotov2021hierarchical`).

Every Lagrangian here is a :class:`torch.nn.Module` acting on the trailing *neuron dims* it is
given (``dim``, negative ints; default ``-1``, a vector layer; ``dim=(-2, -1)`` for a whole
tokens x channels matrix). All other dims are batch dims and are kept:

====================  ===========================================  ===========================
method                returns                                      shape (x of shape ``(*B, *N)``)
====================  ===========================================  ===========================
``L(x)`` (forward)    the Lagrangian, summed over the neuron dims  ``B``
``L.activation(x)``   ``g = dL/dx`` in closed form                 same as ``x``
``L.legendre(x)``     ``<x, g> - L(x)``                            ``B``
====================  ===========================================  ===========================

Example::

    >>> import torch
    >>> from hopfield_lab.lagrangians import LayerNorm, Softmax
    >>> x = torch.randn(10, 4, 8)                  # batch 10, 4 tokens, 8 channels
    >>> lag = LayerNorm(dim=(-2, -1), eps=0.0)     # normalise the whole 4 x 8 matrix
    >>> lag(x).shape, lag.activation(x).shape, lag.legendre(x).abs().max() < 1e-5
    (torch.Size([10]), torch.Size([10, 4, 8]), tensor(True))

The activations (``activation``) are written in closed form; autograd of ``L`` only appears in
the tests, which check the two against each other for every subclass defined here.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Lagrangian",
    "Identity",
    "RePU",
    "ReLU",
    "Softmax",
    "Tanh",
    "GELU",
    "LayerNorm",
    "Spherical",
    "phi_gelu",
    "get_lagrangian",
    "LAGRANGIANS",
]

Dim = Union[int, Sequence[int]]

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _normalise_dim(dim: Dim) -> tuple[int, ...]:
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if len(dims) == 0:
        raise ValueError("dim must name at least one neuron dim, e.g. dim=-1 or dim=(-2, -1).")
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"dim must hold ints, got {d!r} in {dim!r}.")
        if d >= 0:
            raise ValueError(
                f"dim={dim!r}: neuron dims are counted from the end, so they must be negative "
                f"(e.g. -1 for channels, (-2, -1) for a tokens x channels matrix); got {d}."
            )
    if len(set(dims)) != len(dims):
        raise ValueError(f"dim={dim!r} names the same dim twice.")
    return tuple(sorted(dims))


class Lagrangian(nn.Module):
    r"""Base class: a scalar convex function :math:`L` of a layer's state.

    Args:
        dim: the trailing neuron dims ``L`` acts over (negative ints). ``-1``: a vector layer;
            ``(-2, -1)``: a whole matrix-valued layer, e.g. tokens x channels. The other dims of
            ``x`` are batch dims.

    Subclasses implement ``forward`` (``L``, batch dims kept) and ``activation``
    (``g = dL/dx``, same shape as ``x``) in closed form; ``legendre`` defaults to
    ``<x, g> - L`` and is overridden where a closed form is more accurate.

    Class attributes:
        convex: True when ``L`` is convex everywhere (its Hessian is positive semi-definite),
            which is what makes the network energy a Lyapunov function of the dynamics.
        name: the key of :func:`get_lagrangian`.
    """

    convex: bool = True
    name: str = "lagrangian"

    def __init__(self, dim: Dim = -1):
        super().__init__()
        self.dim: tuple[int, ...] = _normalise_dim(dim)

    # -- helpers -------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """How many trailing dims the neurons span (``-min(dim)``)."""
        return -min(self.dim)

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}.")
        if x.dim() < self.ndim:
            raise ValueError(
                f"{type(self).__name__}(dim={self.dim}) needs a tensor with at least {self.ndim} "
                f"dims, got shape {tuple(x.shape)}."
            )

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        return t.sum(dim=self.dim)

    def _place(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Broadcast a tensor given over the neuron dims (in order) so that it lines up with x."""
        t = t.to(dtype=x.dtype, device=x.device)
        neuron_shape = tuple(x.shape[d] for d in self.dim)
        try:
            t = torch.broadcast_to(t, neuron_shape)
        except RuntimeError as err:
            raise ValueError(
                f"{type(self).__name__}: delta of shape {tuple(t.shape)} does not broadcast to the "
                f"neuron dims {self.dim} of x, which have shape {neuron_shape}."
            ) from err
        if self.dim == tuple(range(-len(self.dim), 0)):
            return t
        full = [1] * self.ndim
        for d, n in zip(self.dim, neuron_shape):
            full[self.ndim + d] = n
        return t.reshape(full)

    def neuron_count(self, x: torch.Tensor) -> int:
        """D: the number of neurons one Lagrangian sums over (product of the neuron dims)."""
        return math.prod(x.shape[d] for d in self.dim)

    # -- interface -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """L(x). x: ``(*B, *N)`` -> ``(*B,)``."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward (the Lagrangian L).")

    def activation(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """g = dL/dx. x: ``(*B, *N)`` -> same shape."""
        raise NotImplementedError(f"{type(self).__name__} does not define activation (g = dL/dx).")

    def legendre(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's energy ``<x, g> - L(x)``. x: ``(*B, *N)`` -> ``(*B,)``."""
        return self._sum(x * self.activation(x)) - self(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _Elementwise(Lagrangian):
    """L(x) = sum_i l(x_i): subclasses give ``_l`` (elementwise) and ``activation``."""

    def _l(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self._sum(self._l(x))


class Identity(_Elementwise):
    r"""Quadratic Lagrangian: :math:`L = \tfrac12 \sum_i x_i^2`, :math:`g = x`.

    Legendre term :math:`\tfrac12 \sum x_i^2`. Shapes: x ``(*B, *N)`` -> L ``(*B,)``, g like x.
    """

    name = "identity"

    def _l(self, x):
        return 0.5 * x * x

    def activation(self, x):
        self._check(x)
        return x

    def legendre(self, x):
        return self(x)


class RePU(_Elementwise):
    r"""Rectified power unit: :math:`L = \tfrac1n \sum_i \max(x_i, 0)^n`,
    :math:`g = \max(x, 0)^{n-1}`.

    ``n = 2`` gives the ReLU activation. Convex for every ``n > 1``.
    Legendre term :math:`(1 - 1/n) \sum \max(x_i,0)^n`. Shapes: x ``(*B, *N)`` -> L ``(*B,)``.

    Args:
        n: the power, ``n > 1`` (real).
        dim: neuron dims.
    """

    name = "repu"

    def __init__(self, n: float = 2, dim: Dim = -1):
        super().__init__(dim)
        if not (isinstance(n, (int, float)) and n > 1):
            raise ValueError(
                f"RePU needs a power n > 1 (n = 2 is ReLU); got n={n!r}. With n <= 1 the "
                "activation max(x,0)^(n-1) is not continuous."
            )
        self.n = n

    def _l(self, x):
        return torch.relu(x).pow(self.n) / self.n

    def activation(self, x):
        self._check(x)
        if self.n == 2:
            return torch.relu(x)
        return torch.relu(x).pow(self.n - 1)

    def extra_repr(self):
        return f"n={self.n}, dim={self.dim}"


class ReLU(RePU):
    r"""ReLU activation, the RePU with n = 2: :math:`L = \tfrac12 \sum \max(x,0)^2`,
    :math:`g = \max(x, 0)`."""

    name = "relu"

    def __init__(self, dim: Dim = -1):
        super().__init__(n=2, dim=dim)


class Softmax(Lagrangian):
    r"""Log-sum-exp Lagrangian: :math:`L = \beta^{-1} \log \sum_i e^{\beta x_i}`,
    :math:`g = \mathrm{softmax}(\beta x)` (jointly over all neuron dims).

    Legendre term :math:`\beta^{-1} \sum_i g_i \log g_i` (minus the entropy of g, over beta).
    Shapes: x ``(*B, *N)`` -> L ``(*B,)``, g like x (sums to 1 over the neuron dims).

    Args:
        beta: inverse temperature, > 0.
        dim: neuron dims.
    """

    name = "softmax"

    def __init__(self, beta: float = 1.0, dim: Dim = -1):
        super().__init__(dim)
        if not beta > 0:
            raise ValueError(f"Softmax needs an inverse temperature beta > 0, got beta={beta!r}.")
        self.beta = float(beta)

    def forward(self, x):
        self._check(x)
        return torch.logsumexp(self.beta * x, dim=self.dim) / self.beta

    def activation(self, x):
        self._check(x)
        bx = self.beta * x
        return torch.exp(bx - torch.logsumexp(bx, dim=self.dim, keepdim=True))

    def legendre(self, x):
        self._check(x)
        bx = self.beta * x
        logg = bx - torch.logsumexp(bx, dim=self.dim, keepdim=True)
        return self._sum(torch.exp(logg) * logg) / self.beta

    def extra_repr(self):
        return f"beta={self.beta}, dim={self.dim}"


class Tanh(_Elementwise):
    r""":math:`L = \sum_i \log\cosh x_i`, :math:`g = \tanh x`.

    Computed stably as :math:`|x| + \log(1 + e^{-2|x|}) - \log 2`.
    Shapes: x ``(*B, *N)`` -> L ``(*B,)``, g like x.
    """

    name = "tanh"

    def _l(self, x):
        a = x.abs()
        return a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)

    def activation(self, x):
        self._check(x)
        return torch.tanh(x)


def phi_gelu(x: torch.Tensor) -> torch.Tensor:
    r"""The GELU Lagrangian, elementwise (book chapter 3):

    .. math::
        \Phi(x) = \tfrac14\bigl(x^2 + (x^2 - 1)\,\mathrm{erf}(x/\sqrt2)
                   + x\sqrt{2/\pi}\, e^{-x^2/2}\bigr),

    so that :math:`\Phi'(x) = \mathrm{GELU}(x) = x\,\Phi_{\mathcal N}(x)` and :math:`\Phi(0) = 0`
    (:math:`\Phi(-\infty) = 1/4`). Written with ``erfc`` so that it keeps full precision for
    large negative ``x``. Same shape as ``x``.

    Note: :math:`\Phi'' = \mathrm{GELU}'` is negative for :math:`x \lesssim -0.7518`, so
    :math:`\Phi` is not convex there.
    """
    z = x / _SQRT_2
    # x^2 + (x^2 - 1) erf = x^2 (1 + erf) - erf, and 1 + erf(z) = erfc(-z) (no cancellation).
    return 0.25 * (x * x * torch.erfc(-z) - torch.erf(z) + x * _SQRT_2_OVER_PI * torch.exp(-0.5 * x * x))


class GELU(_Elementwise):
    r"""GELU Lagrangian: :math:`L = \sum_i \Phi(x_i)` (:func:`phi_gelu`),
    :math:`g = \mathrm{GELU}(x) = x\,\Phi_{\mathcal N}(x)` (the exact, erf-based GELU).

    Not convex: :math:`\Phi'' < 0` for :math:`x \lesssim -0.75` (GELU is not monotone). This
    does not matter when a GELU layer is eliminated adiabatically, but the energy of a network
    whose GELU layers are simulated with finite tau is then not guaranteed to decrease.
    Shapes: x ``(*B, *N)`` -> L ``(*B,)``, g like x.
    """

    name = "gelu"
    convex = False

    def _l(self, x):
        return phi_gelu(x)

    def activation(self, x):
        self._check(x)
        return F.gelu(x)


def _scalar_gamma(gamma, cls_name: str) -> torch.Tensor:
    g = torch.as_tensor(gamma, dtype=torch.get_default_dtype()) if not isinstance(gamma, torch.Tensor) else gamma
    if g.numel() != 1:
        raise ValueError(
            f"{cls_name}: gamma must be a scalar, got shape {tuple(g.shape)}. An element-wise gamma "
            "(as in nn.LayerNorm's affine weight) is not the gradient of any scalar Lagrangian: the "
            "Jacobian of the activation stops being symmetric, so there is no energy "
            "(book chapter 3). Use one scalar gamma here and put per-neuron scales in the synapses."
        )
    g = g.detach().reshape(()) if not isinstance(g, nn.Parameter) else g.reshape(())
    if not float(g) > 0:
        raise ValueError(f"{cls_name}: gamma must be > 0 for a convex Lagrangian, got {float(g)}.")
    return g.clone()


class _NormLagrangian(Lagrangian):
    """Shared parameter handling of LayerNorm and Spherical (scalar gamma, tensor delta, eps)."""

    def __init__(self, gamma=1.0, delta=None, eps: float = 1e-5, dim: Dim = -1, learnable: bool = False):
        super().__init__(dim)
        if not eps >= 0:
            raise ValueError(f"{type(self).__name__}: eps must be >= 0, got eps={eps!r}.")
        self.eps = float(eps)
        g = _scalar_gamma(gamma, type(self).__name__)
        if learnable:
            self.gamma = nn.Parameter(g)
        else:
            self.register_buffer("gamma", g)
        if delta is None:
            self.delta = None
        else:
            d = delta.detach().clone() if isinstance(delta, torch.Tensor) else torch.as_tensor(
                delta, dtype=torch.get_default_dtype())
            if d.dim() > len(self.dim):
                raise ValueError(
                    f"{type(self).__name__}: delta has {d.dim()} dims (shape {tuple(d.shape)}) but "
                    f"the Lagrangian acts over {len(self.dim)} neuron dims {self.dim}."
                )
            if learnable:
                self.delta = nn.Parameter(d)
            else:
                self.register_buffer("delta", d)

    def _gamma(self, x):
        return self.gamma.to(dtype=x.dtype, device=x.device)

    def _delta_terms(self, x):
        """(<delta, x> over neuron dims, delta placed like x) or (0, None)."""
        if self.delta is None:
            return 0.0, None
        d = self._place(self.delta, x)
        return self._sum(d * x), d

    def extra_repr(self):
        d = None if self.delta is None else tuple(self.delta.shape)
        return f"gamma={float(self.gamma):g}, delta={d}, eps={self.eps:g}, dim={self.dim}"


class LayerNorm(_NormLagrangian):
    r"""LayerNorm Lagrangian (Hoover et al. 2023, :cite:`hoover2023energy`):

    .. math::
        L = D\,\gamma\,\sqrt{\mathrm{Var}(x) + \varepsilon} + \langle \delta, x\rangle,\qquad
        g = \gamma\,\frac{x - \bar x}{\sqrt{\mathrm{Var}(x) + \varepsilon}} + \delta,

    with mean and (biased) variance over the ``D`` neurons of the neuron dims ``dim`` jointly
    (``dim=(-2, -1)``: the whole tokens x channels matrix, as in the paper). Legendre term
    :math:`-D\gamma\varepsilon/\sqrt{\mathrm{Var}+\varepsilon}`: zero for ``eps = 0``
    (L is then 1-homogeneous). Convex; the Hessian has zero modes (shift, and scale at eps = 0).

    Args:
        gamma: a *scalar* scale > 0. An element-wise gamma raises ValueError: it is not the
            gradient of any scalar Lagrangian.
        delta: bias, a tensor broadcastable to the shape of the neuron dims (in order), or None.
        eps: >= 0.
        dim: neuron dims.
        learnable: make gamma (and delta, if given) ``nn.Parameter`` s.

    Shapes: x ``(*B, *N)`` -> L ``(*B,)``, g like x.
    """

    name = "layernorm"

    def __init__(self, gamma=1.0, delta=None, eps: float = 1e-5, dim: Dim = -1, learnable: bool = False):
        super().__init__(gamma, delta, eps, dim, learnable)

    def _centre(self, x):
        xc = x - x.mean(dim=self.dim, keepdim=True)
        var = (xc * xc).mean(dim=self.dim, keepdim=True)
        return xc, torch.sqrt(var + self.eps)

    def forward(self, x):
        self._check(x)
        _, s = self._centre(x)
        lin, _ = self._delta_terms(x)
        s = s.sum(dim=self.dim)  # drop the keepdim'd size-1 neuron dims
        return self.neuron_count(x) * self._gamma(x) * s + lin

    def activation(self, x):
        self._check(x)
        k = len(self.dim)
        if self.dim == tuple(range(-k, 0)):  # trailing dims: the fused kernel, same formula
            g = F.layer_norm(x, x.shape[x.dim() - k:], eps=self.eps) * self._gamma(x)
        else:
            xc, s = self._centre(x)
            g = self._gamma(x) * xc / s
        _, d = self._delta_terms(x)
        return g if d is None else g + d

    def legendre(self, x):
        self._check(x)
        _, s = self._centre(x)
        s = s.sum(dim=self.dim)  # keepdim'd size-1 dims -> drop them
        if self.eps == 0.0:
            return torch.zeros_like(s)
        return -self.neuron_count(x) * self._gamma(x) * self.eps / s

    def hvp(self, x, v):
        r"""Hessian-vector product :math:`\nabla^2 L(x)\,v`, i.e. the Jacobian of the activation
        applied to ``v`` (symmetric and positive semi-definite):

        .. math::
            \nabla^2 L\, v = \gamma\Bigl(\frac{v - \bar v}{s}
                - \frac{(x - \bar x)\,\langle x - \bar x, v\rangle}{D\,s^3}\Bigr),
            \qquad s = \sqrt{\mathrm{Var}(x) + \varepsilon},

        means and inner products over the neuron dims. ``x``, ``v``: ``(*B, *N)`` -> same shape.
        """
        self._check(x)
        xc, s = self._centre(x)
        vc = v - v.mean(dim=self.dim, keepdim=True)
        inner = (xc * v).sum(dim=self.dim, keepdim=True)
        return self._gamma(x) * (vc / s - xc * inner / (self.neuron_count(x) * s ** 3))


class Spherical(_NormLagrangian):
    r"""Spherical-norm Lagrangian:

    .. math::
        L = \gamma\sqrt{\textstyle\sum_i x_i^2 + \varepsilon} + \langle\delta, x\rangle,\qquad
        g = \gamma\,\frac{x}{\sqrt{\sum_i x_i^2 + \varepsilon}} + \delta,

    the sum running over the neuron dims. Legendre term
    :math:`-\gamma\varepsilon/\sqrt{\sum x^2 + \varepsilon}`, zero for ``eps = 0``. Convex.
    Same arguments as :class:`LayerNorm` (scalar gamma only).

    Shapes: x ``(*B, *N)`` -> L ``(*B,)``, g like x.
    """

    name = "spherical"

    def __init__(self, gamma=1.0, delta=None, eps: float = 1e-5, dim: Dim = -1, learnable: bool = False):
        super().__init__(gamma, delta, eps, dim, learnable)

    def _norm(self, x, keepdim):
        return torch.sqrt((x * x).sum(dim=self.dim, keepdim=keepdim) + self.eps)

    def forward(self, x):
        self._check(x)
        lin, _ = self._delta_terms(x)
        return self._gamma(x) * self._norm(x, False) + lin

    def activation(self, x):
        self._check(x)
        g = self._gamma(x) * x / self._norm(x, True)
        _, d = self._delta_terms(x)
        return g if d is None else g + d

    def legendre(self, x):
        self._check(x)
        r = self._norm(x, False)
        if self.eps == 0.0:
            return torch.zeros_like(r)
        return -self._gamma(x) * self.eps / r


LAGRANGIANS: dict[str, type[Lagrangian]] = {
    cls.name: cls for cls in (Identity, RePU, ReLU, Softmax, Tanh, GELU, LayerNorm, Spherical)
}


def get_lagrangian(name: str | Lagrangian, **kw) -> Lagrangian:
    """Build a Lagrangian by name, e.g. ``get_lagrangian("softmax", beta=2.0)``.

    Names are case-insensitive and ignore ``_``/``-`` (``"layer_norm"`` works). A
    :class:`Lagrangian` instance is returned unchanged (keyword arguments then raise).
    Valid names: ``identity, repu, relu, softmax, tanh, gelu, layernorm, spherical``.
    """
    if isinstance(name, Lagrangian):
        if kw:
            raise TypeError(f"get_lagrangian got a Lagrangian instance and also keyword arguments {sorted(kw)}.")
        return name
    if not isinstance(name, str):
        raise TypeError(f"get_lagrangian expects a name (str) or a Lagrangian, got {type(name).__name__}.")
    key = name.lower().replace("_", "").replace("-", "").replace(" ", "")
    aliases = {"linear": "identity", "quadratic": "identity", "lse": "softmax", "logsumexp": "softmax",
               "ln": "layernorm", "sphere": "spherical"}
    key = aliases.get(key, key)
    if key not in LAGRANGIANS:
        raise ValueError(f"Unknown Lagrangian {name!r}. Valid names: {', '.join(sorted(LAGRANGIANS))}.")
    return LAGRANGIANS[key](**kw)
