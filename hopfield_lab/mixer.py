"""The MLP-Mixer family of Karakida, Ota and Taki (2024): vanilla, ParaMixer, SymMixer, AsymMixer(λ).

One classifier, :class:`Mixer`, and three swappable parts:

* a **block** (``block_layer``): :class:`SerialMixerBlock` (the vanilla Mixer: token mixing, then
  channel mixing) or :class:`ParallelMixerBlock` (both read the same normalised state);
* a **two-layer MLP** (``mlp_layer``): :class:`Mlp` (free weights W1, W2), :class:`SymMlp` (tied,
  W2 = W1ᵀ = Aᵀ) or :class:`AsymMlp` (W2 = Aᵀ + V, with V penalised by λ‖V‖²);
* a **norm** (``norm``): the official element-wise ``nn.LayerNorm`` over tokens×channels, a per-token
  LayerNorm over channels, or :class:`LagrangianLayerNorm` (scalar γ over tokens×channels), the
  only one that is the gradient of a Lagrangian, so that a SymMixer block has an energy.

So the four models of the paper are one-line swaps::

    vanilla   = Mixer(block_layer=SerialMixerBlock,   mlp_layer=Mlp)
    paramixer = Mixer(block_layer=ParallelMixerBlock, mlp_layer=Mlp)
    symmixer  = Mixer(block_layer=ParallelMixerBlock, mlp_layer=SymMlp)
    asymmixer = Mixer(block_layer=ParallelMixerBlock, mlp_layer=AsymMlp, lam=1e-2)

Shapes: images ``(batch, in_chans, H, W)``; states ``(batch, tokens, channels)`` = ``(b, S, C)``
with S = (H/p)(W/p) tokens in row-major patch order. The token MLP mixes along S (weights of shape
``(Ns, S)``), the channel MLP along C (weights ``(Nc, C)``), with Ns = int(int(r_s C)·h) and
Nc = int(int(r_c C)·h) for ``mlp_ratio = (r_s, r_c)`` and ``hidden_ratio = h``.

Every block exposes ``update(x)``: its mixing increment. A parallel block's forward is
``x <- x + update(x)``, repeated ``n_iter`` times with the same weights; the continuous-time view of
the same block is the flow ``dx/dt = update(x) - x`` (book chapter 6, §6.2), whose Lyapunov function
:meth:`ParallelMixerBlock.energy` exists exactly for tied weights and a Lagrangian norm.

Parameter names follow the official code (github.com/Toshihiro-Ota/paramixer), so its state_dicts
load directly: ``stem.proj``, ``blocks.{i}.norm`` (``norm1``/``norm2`` for the serial block),
``blocks.{i}.mlp_tokens.fc1|fc2``, ``blocks.{i}.mlp_channels.fc1|fc2``, ``norm``, ``head``.
"""
from __future__ import annotations

import fnmatch
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "Mlp", "SymMlp", "AsymMlp", "LagrangianLayerNorm", "DropPath", "PatchEmbed",
    "SerialMixerBlock", "ParallelMixerBlock", "Mixer", "create_model", "list_models",
    "model_config", "NORMS", "INITS", "Family", "FAMILIES", "family_of", "check_lam",
]



def _pair(v) -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"expected a number or a pair, got {v!r}")
        return tuple(v)
    return (v, v)


# --------------------------------------------------------------------------------------------
# two-layer MLPs: x (..., in) -> W2 act(W1 x) (..., in); no biases (as in the official code)
# --------------------------------------------------------------------------------------------
class _TwoLayer(nn.Module):
    """Common interface: ``w1`` (hidden, in), ``w2`` (in, hidden), ``breaking`` (V or None)."""

    in_features: int
    hidden_features: int
    #: whether this MLP has a symmetry-breaking weight (:attr:`breaking`), penalised by λ‖V‖²
    has_breaking: bool = False

    def __init__(self, in_features: int, hidden_features: int, act_layer=nn.GELU, drop: float = 0.0):
        super().__init__()
        if in_features < 1 or hidden_features < 1:
            raise ValueError(
                f"an MLP needs positive sizes, got in_features={in_features}, "
                f"hidden_features={hidden_features}: check embed_dim, mlp_ratio and hidden_ratio"
            )
        self.in_features, self.hidden_features = in_features, hidden_features
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.drop2 = nn.Dropout(drop)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hidden_features={self.hidden_features}"

    @property
    def breaking(self) -> torch.Tensor | None:
        """The symmetry-breaking weight V (AsymMlp) or None."""
        return None

    @torch.no_grad()
    def tie_(self) -> "_TwoLayer":
        """Make the feedback weight the transpose of the feedforward one, W2 = W1ᵀ (in place).

        The tied starting point of the spontaneous-symmetry-breaking experiments: training then
        decides whether the weights stay tied. Each MLP owns how it ties (free: copy W1ᵀ into W2;
        AsymMlp: V = 0; SymMlp: tied by construction, nothing to do). Returns ``self``.
        """
        raise NotImplementedError

    #: how :meth:`mix_tokens` runs, all the same function: "bmm" (default: two batched GEMMs on the
    #: (b, S, C) layout, the weights broadcast over the batch with stride 0, so no transposed copy
    #: of the state is made; measured fastest on CPU, forward + backward), "matmul"
    #: (``torch.matmul(W, x)``) or "transpose" (the official code's form: the MLP on the (b, C, S)
    #: view, which copies the state into that layout). The latter two are the reference forms of
    #: the tests.
    token_mixing: str = "bmm"

    def mix_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Token mixing: the MLP applied along the token axis, (b, S, C) -> (b, S, C)."""
        mode = self.token_mixing
        if mode == "bmm":
            b = x.shape[0]
            w1 = self.w1                                                # (Ns, S)
            h = self.drop1(self.act(torch.bmm(w1.expand(b, -1, -1), x)))  # (b,Ns,S)@(b,S,C) -> (b,Ns,C)
            w2 = self.w2                                                # (S, Ns)
            return self.drop2(torch.bmm(w2.expand(b, -1, -1), h))       # (b,S,Ns)@(b,Ns,C) -> (b,S,C)
        if mode == "matmul":
            h = self.drop1(self.act(torch.matmul(self.w1, x)))          # (Ns,S)@(b,S,C) -> (b,Ns,C)
            return self.drop2(torch.matmul(self.w2, h))                 # (S,Ns)@(b,Ns,C) -> (b,S,C)
        if mode != "transpose":
            raise ValueError(f"token_mixing must be 'bmm', 'matmul' or 'transpose', got {mode!r}")
        x = rearrange(x, "b s c -> b c s")                              # (b, C, S)
        return rearrange(self(x), "b c s -> b s c")                     # MLP over S, back to (b, S, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., in)
        raise NotImplementedError


class _TwoLinear(_TwoLayer):
    """Two bias-free linears: ``fc1.weight`` (hidden, in) = W1 and ``fc2.weight`` (in, hidden),
    the layout of :class:`Mlp` (fc2 = W2) and :class:`AsymMlp` (fc2 = V)."""

    def __init__(self, in_features: int, hidden_features: int, act_layer=nn.GELU, drop: float = 0.0):
        super().__init__(in_features, hidden_features, act_layer, drop)
        self.fc1 = nn.Linear(in_features, hidden_features, bias=False)
        self.fc2 = nn.Linear(hidden_features, in_features, bias=False)

    @property
    def w1(self) -> torch.Tensor:
        return self.fc1.weight


class Mlp(_TwoLinear):
    """Free two-layer MLP ``W2 GELU(W1 x)``: ``fc1.weight`` = W1 (hidden, in), ``fc2.weight`` = W2 (in, hidden)."""

    @property
    def w2(self) -> torch.Tensor:
        return self.fc2.weight

    @torch.no_grad()
    def tie_(self) -> "Mlp":
        self.fc2.weight.copy_(self.fc1.weight.t())                     # W2 = W1ᵀ, (in, hidden)
        return self

    def forward(self, x):
        h = self.drop1(self.act(F.linear(x, self.fc1.weight)))        # (..., hidden)
        return self.drop2(F.linear(h, self.fc2.weight))                 # (..., in)



class SymMlp(_TwoLayer):
    """Tied two-layer MLP ``Aᵀ GELU(A x)``: the only weight is ``fc2.weight`` = A of shape (hidden, in).

    The name ``fc2`` (not ``fc1``) follows the official code, so that its state_dicts load.
    """

    def __init__(self, in_features: int, hidden_features: int, act_layer=nn.GELU, drop: float = 0.0):
        super().__init__(in_features, hidden_features, act_layer, drop)
        self.fc2 = nn.Linear(in_features, hidden_features, bias=False)

    @property
    def w1(self) -> torch.Tensor:
        return self.fc2.weight

    @property
    def w2(self) -> torch.Tensor:
        return self.fc2.weight.t()

    def tie_(self) -> "SymMlp":
        return self                                                     # W2 = Aᵀ always

    def forward(self, x):
        A = self.fc2.weight                                             # (hidden, in)
        h = self.drop1(self.act(F.linear(x, A)))                        # (..., hidden)
        return self.drop2(torch.matmul(h, A))                           # (..., in) = h A



class AsymMlp(_TwoLinear):
    """Tied MLP plus a symmetry-breaking term: ``(Aᵀ + V) GELU(A x)``.

    ``fc1.weight`` = A (hidden, in), ``fc2.weight`` = V (in, hidden), as in the official code; the
    model's :meth:`Mixer.symmetry_penalty` adds λ‖V‖² to the loss (λ → ∞ gives SymMlp back).
    """

    has_breaking = True

    @property
    def w2(self) -> torch.Tensor:
        return self.fc1.weight.t() + self.fc2.weight

    @property
    def breaking(self) -> torch.Tensor:
        return self.fc2.weight

    @torch.no_grad()
    def tie_(self) -> "AsymMlp":
        self.fc2.weight.zero_()                                         # V = 0: W2 = Aᵀ
        return self

    def forward(self, x):
        A, V = self.fc1.weight, self.fc2.weight                         # (hidden, in), (in, hidden)
        h = self.drop1(self.act(F.linear(x, A)))                        # (..., hidden)
        return self.drop2(F.linear(h, A.t() + V))                       # (..., in)



# --------------------------------------------------------------------------------------------
# norms
# --------------------------------------------------------------------------------------------
class LagrangianLayerNorm(nn.Module):
    """LayerNorm with a *scalar* gain, used as a Mixer norm: the gradient of a convex Lagrangian.

    A thin module around :class:`hopfield_lab.lagrangians.LayerNorm` (stored as ``L``, with the
    learnable scalar ``L.gamma`` = γ and tensor ``L.delta`` = δ of shape ``normalized_shape``)::

        L(x) = D γ sqrt(Var(x) + ε) + <δ, x>,      g(x) = ∂L/∂x = γ (x − mean) / sqrt(Var + ε) + δ

    over the D entries of the trailing dims ``normalized_shape`` (population variance, as
    ``nn.LayerNorm``). ``forward`` returns g (it is used where ``nn.LayerNorm`` would be);
    :meth:`lagrangian` and :meth:`legendre` give L and <x, g> − L. The Hessian is PSD for γ > 0.
    With an element-wise γ the map would not be a gradient (its Jacobian is not symmetric), which
    is why the official norm has no energy.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-6):
        super().__init__()
        from . import lagrangians

        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = shape
        self.L = lagrangians.LayerNorm(gamma=1.0, delta=torch.zeros(shape), eps=eps,
                                       dim=tuple(range(-len(shape), 0)), learnable=True)

    @property
    def eps(self) -> float:
        return self.L.eps

    @property
    def gamma(self) -> torch.Tensor:
        return self.L.gamma

    @property
    def delta(self) -> torch.Tensor:
        return self.L.delta

    def _check_shape(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"LagrangianLayerNorm over {self.normalized_shape} got a tensor of shape "
                             f"{tuple(x.shape)}: its trailing dims must be {self.normalized_shape}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """g(x), same shape as ``x`` (..., *normalized_shape)."""
        self._check_shape(x)
        return self.L.activation(x)

    def lagrangian(self, x: torch.Tensor) -> torch.Tensor:
        """L(x), shape ``x.shape[:-len(normalized_shape)]``."""
        self._check_shape(x)
        return self.L(x)

    def legendre(self, x: torch.Tensor) -> torch.Tensor:
        """<x, g> − L(x) = −D γ ε / sqrt(Var + ε) (zero when ε = 0), shape as :meth:`lagrangian`."""
        self._check_shape(x)
        return self.L.legendre(x)


def _norm_tokens_channels(seq_len: int, dim: int) -> nn.Module:
    return nn.LayerNorm((seq_len, dim), eps=1e-6)


def _norm_channels(seq_len: int, dim: int) -> nn.Module:
    return nn.LayerNorm(dim, eps=1e-6)


def _norm_lagrangian(seq_len: int, dim: int) -> nn.Module:
    return LagrangianLayerNorm((seq_len, dim), eps=1e-6)


NORMS: dict[str, Callable[[int, int], nn.Module]] = {
    "tokens_channels": _norm_tokens_channels,   # official: element-wise affine over S×C
    "channels": _norm_channels,                 # standard Mixer: per-token LayerNorm over C
    "lagrangian": _norm_lagrangian,             # scalar γ over S×C: an energy exists
}


def _resolve_norm(norm) -> Callable[[int, int], nn.Module]:
    if callable(norm):
        return norm
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(NORMS)} "
                         "(or pass a callable (seq_len, dim) -> nn.Module)")
    return NORMS[norm]


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability p (rescaled by 1/(1−p))."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {p}")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: ``(b, in_chans, H, W) -> (b, S, C)`` by a strided Conv2d ``proj``."""

    def __init__(self, img_size=224, patch_size=16, in_chans: int = 3, embed_dim: int = 512):
        super().__init__()
        self.img_size, self.patch_size = _pair(img_size), _pair(patch_size)
        self.grid_size = tuple(i // p for i, p in zip(self.img_size, self.patch_size))
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[-2:]) != self.img_size or x.shape[1] != self.proj.in_channels:
            raise ValueError(
                f"expected images of shape (batch, {self.proj.in_channels}, {self.img_size[0]}, "
                f"{self.img_size[1]}), got {tuple(x.shape)}: resize the input or build the model "
                "with matching img_size / in_chans"
            )
        x = self.proj(x)                                                # (b, C, H/p, W/p)
        return rearrange(x, "b c h w -> b (h w) c")                     # (b, S, C)


# --------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, dim, seq_len, mlp_ratio, mlp_layer, act_layer, drop, drop_path, hidden_ratio, n_iter):
        super().__init__()
        if n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {n_iter}")
        r_tokens, r_channels = _pair(mlp_ratio)
        tokens_dim, channels_dim = int(r_tokens * dim), int(r_channels * dim)
        self.dim, self.seq_len, self.n_iter = dim, seq_len, int(n_iter)
        self.mlp_tokens = mlp_layer(seq_len, int(tokens_dim * hidden_ratio), act_layer=act_layer, drop=drop)
        self.mlp_channels = mlp_layer(dim, int(channels_dim * hidden_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path)

    def _check(self, x):
        if x.ndim != 3 or x.shape[1:] != (self.seq_len, self.dim):
            raise ValueError(f"a block takes states (batch, {self.seq_len}, {self.dim}) = "
                             f"(batch, tokens, channels), got {tuple(x.shape)}")

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One iteration of the block: (b, S, C) -> (b, S, C)."""
        raise NotImplementedError

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """The mixing increment of one iteration, ``step(x) - x``: (b, S, C) -> (b, S, C)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``n_iter`` iterations with shared weights: (b, S, C) -> (b, S, C)."""
        self._check(x)
        for _ in range(self.n_iter):
            x = self.step(x)
        return x

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seq_len={self.seq_len}, n_iter={self.n_iter}"

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            f"{type(self).__name__} has no energy: the serial block applies token mixing and then "
            "channel mixing to an updated state, so its update is not the gradient flow of any "
            "scalar function. Energies exist for ParallelMixerBlock with SymMlp and norm='lagrangian'."
        )


class SerialMixerBlock(_Block):
    """The vanilla Mixer block (serial): ``x += W2ˢ GELU(W1ˢ N1(x))`` then ``x += GELU(N2(x) W1ᶜᵀ) W2ᶜᵀ``."""

    def __init__(self, dim: int, seq_len: int, mlp_ratio=(0.5, 4.0), mlp_layer=Mlp, norm_layer=_norm_tokens_channels,
                 act_layer=nn.GELU, drop: float = 0.0, drop_path: float = 0.0, hidden_ratio: float = 1,
                 n_iter: int = 1):
        super().__init__(dim, seq_len, mlp_ratio, mlp_layer, act_layer, drop, drop_path, hidden_ratio, n_iter)
        self.norm1 = norm_layer(seq_len, dim)
        self.norm2 = norm_layer(seq_len, dim)

    def step(self, x):
        x = x + self.drop_path(self.mlp_tokens.mix_tokens(self.norm1(x)))  # token mixing, (b, S, C)
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))        # channel mixing, (b, S, C)

    def update(self, x):
        return self.step(x) - x


class ParallelMixerBlock(_Block):
    """The parallelized block: ``x += update(x)``, update = token-MLP(N(x)) + channel-MLP(N(x)).

    With :class:`SymMlp` and :class:`LagrangianLayerNorm` the flow ``dx/dt = update(x) − x`` has
    the energy :meth:`energy`. The block is not a unit Euler step of that flow (which would be
    ``x <- update(x)``, no skip): the norm is scale-invariant (up to its ε), so iteration
    ``k = 0, 1, ...`` is an explicit Euler step of size ``1 / (k + 2)`` (a shrinking step) of the
    flow for the rescaled state ``y_k = x_k / (k + 1)`` (book §6.3).
    """

    def __init__(self, dim: int, seq_len: int, mlp_ratio=(0.5, 4.0), mlp_layer=Mlp, norm_layer=_norm_tokens_channels,
                 act_layer=nn.GELU, drop: float = 0.0, drop_path: float = 0.0, hidden_ratio: float = 1,
                 n_iter: int = 1):
        super().__init__(dim, seq_len, mlp_ratio, mlp_layer, act_layer, drop, drop_path, hidden_ratio, n_iter)
        self.norm = norm_layer(seq_len, dim)

    def _branches(self, x):
        g = self.norm(x)                                                # G = N(x), (b, S, C)
        tokens = self.drop_path(self.mlp_tokens.mix_tokens(g))          # (b, S, C)
        channels = self.drop_path(self.mlp_channels(g))                 # (b, S, C); own drop-path draw
        return tokens, channels

    def step(self, x):
        tokens, channels = self._branches(x)
        return x + tokens + channels

    def update(self, x):
        tokens, channels = self._branches(x)
        return tokens + channels

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Lyapunov function of ``dx/dt = update(x) − x`` (book §6.2), one value per sample.

        ``E(X) = [<X, G> − L_v(X)] − Σ Φ(A G) − Σ Φ(G Bᵀ)`` with G = N(X), Φ = Φ_GELU, A the token
        and B the channel weight. Needs tied weights (SymMlp) and the Lagrangian norm (scalar γ ≥ 0
        for descent); no dropout/drop-path. x: (b, S, C) -> (b,).
        """
        self._check(x)
        self._require_energy()
        from .lagrangians import phi_gelu

        g = self.norm(x)                                                # (b, S, C)
        A, B = self.mlp_tokens.fc2.weight, self.mlp_channels.fc2.weight  # (Ns, S), (Nc, C)
        h_tokens = torch.matmul(A, g)                                   # A G, (b, Ns, C)
        h_channels = F.linear(g, B)                                     # G Bᵀ, (b, S, Nc)
        visible = self.norm.legendre(x)                                 # <X, G> − L_v(X), (b,)
        return visible - phi_gelu(h_tokens).sum(dim=(1, 2)) - phi_gelu(h_channels).sum(dim=(1, 2))

    def flow(self, x: torch.Tensor) -> torch.Tensor:
        """dx/dt = update(x) − x, the continuous-time view of the block (τ_v = 1): (b, S, C) -> (b, S, C)."""
        return self.update(x) - x

    def to_ham(self, tau: float = 1.0, tau_tokens: float = 1e-2, tau_channels: float = 1e-2):
        """The three-layer HAM behind this SymMixer block (book §6.1-6.2), as a :class:`hopfield_lab.ham.HAM`.

        Layers ``"x"`` (S, C) with this block's Lagrangian LayerNorm, ``"hs"`` (Ns, C) and ``"hc"``
        (S, Nc) with GELU Lagrangians and time constants ``tau_tokens``, ``tau_channels``; synapses
        ``"A"`` (token mixing, A = ``mlp_tokens.fc2.weight``) and ``"B"`` (channel mixing). Weights are
        copied (detached). As τ_s, τ_c → 0 its visible dynamics become :meth:`flow` and
        ``ham.eliminate("hs", "hc").energy({"x": x})`` equals :meth:`energy`.
        """
        self._require_energy()
        from .ham import HAM, ChannelMixing, Layer, TokenMixing
        from .lagrangians import GELU, LayerNorm

        A, B = self.mlp_tokens.fc2.weight.detach(), self.mlp_channels.fc2.weight.detach()
        S, C = self.seq_len, self.dim
        visible = LayerNorm(gamma=self.norm.gamma.detach().clone(), delta=self.norm.delta.detach().clone(),
                            eps=self.norm.eps, dim=(-2, -1))
        ham = HAM(
            layers={
                "x": Layer((S, C), visible, tau=tau),
                "hs": Layer((A.shape[0], C), GELU(), tau=tau_tokens),
                "hc": Layer((S, B.shape[0]), GELU(), tau=tau_channels),
            },
            synapses={
                "A": TokenMixing(pre="x", post="hs", weight=A.clone()),   # H^s = A G
                "B": ChannelMixing(pre="x", post="hc", weight=B.clone()),  # H^c = G Bᵀ
            },
        )
        return ham.to(device=A.device, dtype=A.dtype)

    def _require_energy(self):
        if not isinstance(self.norm, LagrangianLayerNorm):
            raise TypeError(
                f"this block's norm is {type(self.norm).__name__}, not a Lagrangian LayerNorm: an "
                "element-wise gain γ (nn.LayerNorm) is not the gradient of any scalar function (its "
                "Jacobian is not symmetric), so the flow has no energy. Build the model with "
                "norm='lagrangian' (scalar γ)."
            )
        for name, mlp in (("mlp_tokens", self.mlp_tokens), ("mlp_channels", self.mlp_channels)):
            if not isinstance(mlp, SymMlp):
                raise TypeError(
                    f"{name} is {type(mlp).__name__}, with untied weights (second layer ≠ first "
                    "layerᵀ): the feedback differs from the feedforward weights, so the flow is not a "
                    "gradient flow and no energy exists (only a pseudo-energy). Use the SymMixer "
                    "(mlp_layer=SymMlp)."
                )


# --------------------------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------------------------
class Mixer(nn.Module):
    """Patch embedding -> ``num_blocks`` mixer blocks -> LayerNorm(C) -> mean over tokens -> linear head.

    Keyword names and defaults follow the official ``MlpMixer``; ``norm`` picks the blocks' norm
    (see :data:`NORMS`), ``lam`` is AsymMixer's λ (used by :meth:`symmetry_penalty`).
    Input ``(b, in_chans, H, W)``, logits ``(b, num_classes)``.
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        img_size: int | tuple[int, int] = 224,
        in_chans: int = 3,
        patch_size: int | tuple[int, int] = 16,
        num_blocks: int = 8,
        embed_dim: int = 512,
        mlp_ratio: float | tuple[float, float] = (0.5, 4.0),
        block_layer: type[_Block] = ParallelMixerBlock,
        mlp_layer: type[_TwoLayer] = Mlp,
        norm: str | Callable[[int, int], nn.Module] = "tokens_channels",
        act_layer: type[nn.Module] = nn.GELU,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        hidden_ratio: float = 1,
        n_iter: int = 1,
        lam: float = 0.0,
        init: str = "random",
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}: 'random' is the official "
                             "init, 'tied' starts every MLP at W2 = W1ᵀ (V = 0 for AsymMixer)")
        self.init = init
        _check_sizes(img_size, patch_size, num_blocks, embed_dim, in_chans, num_classes)
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        #: λ, the weight of the symmetry-breaking penalty λ Σ‖V‖² (:meth:`symmetry_penalty`); 0 without V
        self.lam = check_lam(lam, mlp_layer)
        self.model_name = "custom"  # create_model() sets the registry name
        #: the :class:`Family` of (block_layer, mlp_layer), None for a combination outside FAMILIES
        self.family = _family_of_layers(block_layer, mlp_layer)
        #: whether the MLPs carry symmetry-breaking weights V (penalised by λ‖V‖²)
        self.has_breaking = bool(getattr(mlp_layer, "has_breaking", False))
        self.norm_kind = norm if isinstance(norm, str) else getattr(norm, "__name__", "custom")
        norm_layer = _resolve_norm(norm)

        self.stem = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        seq_len = self.stem.num_patches
        self.blocks = nn.Sequential(*[
            block_layer(embed_dim, seq_len, mlp_ratio, mlp_layer=mlp_layer, norm_layer=norm_layer,
                        act_layer=act_layer, drop=proj_drop_rate, drop_path=drop_path_rate,
                        hidden_ratio=hidden_ratio, n_iter=n_iter)
            for _ in range(num_blocks)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    @property
    def seq_len(self) -> int:
        return self.stem.num_patches

    @torch.no_grad()
    def init_weights(self) -> None:
        """The official init: xavier-uniform linears, zero head, LeCun-normal (truncated) patch conv.

        With ``init="tied"`` every two-layer MLP is then tied by its own :meth:`_TwoLayer.tie_`
        (W2 = W1ᵀ; xavier-uniform gives W1 and W2 the same bound, so W2 keeps its random scale).
        """
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if name.startswith("head"):
                    nn.init.zeros_(m.weight)
                    nn.init.zeros_(m.bias)
                else:
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                std = math.sqrt(1.0 / fan_in) / 0.87962566103423978   # std of N(0,1) cut at ±2
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, LagrangianLayerNorm):
                nn.init.ones_(m.gamma)
                nn.init.zeros_(m.delta)
        if self.init == "tied":
            for m in self.modules():
                if isinstance(m, _TwoLayer):
                    m.tie_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(b, in_chans, H, W) -> (b, S, C), after the final LayerNorm."""
        x = self.stem(x)                                                # (b, S, C)
        x = self.blocks(x)                                              # (b, S, C)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(b, S, C) -> (b, num_classes) (or the pooled (b, C) with ``pre_logits``)."""
        x = self.head_drop(x.mean(dim=1))                               # (b, C)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def breaking_weights(self) -> list[torch.Tensor]:
        """The symmetry-breaking weights V of every block's token and channel MLP (empty without them)."""
        return [mlp.breaking for block in self.blocks for mlp in (block.mlp_tokens, block.mlp_channels)
                if mlp.breaking is not None]

    def symmetry_penalty(self) -> torch.Tensor:
        """λ Σ_blocks (‖Vˢ‖² + ‖Vᶜ‖²) for AsymMixer (differentiable, 0-dim); a 0-dim zero tensor
        (the model's device and dtype) when λ = 0 or the model has no V."""
        Vs = self.breaking_weights()
        if self.lam == 0.0 or not Vs:
            p = self.norm.weight
            return torch.zeros((), device=p.device, dtype=p.dtype)
        return self.lam * torch.cat([V.reshape(-1) for V in Vs]).pow(2).sum()   # one read of all V

    @torch.no_grad()
    def add_symmetry_penalty_grad_(self) -> torch.Tensor:
        """Add the penalty's gradient ∂/∂V (λ Σ‖V‖²) = 2λV to every ``V.grad`` in place; return
        :meth:`symmetry_penalty` (detached, 0-dim).

        Call it after ``loss.backward()`` of a loss *without* the penalty: the gradients are then
        those of ``loss + symmetry_penalty()``, without the 2 x depth small norms in the autograd
        graph (back-propagating them costs ~4 ms per step on a GPU in eager mode). This is what the
        trainer does (:func:`hopfield_lab.train.train_step`); a subclass that changes
        :meth:`symmetry_penalty` changes this method with it.
        """
        if self.lam != 0.0:
            for V in self.breaking_weights():
                if V.grad is None:
                    V.grad = torch.zeros_like(V)
                V.grad.add_(V, alpha=2.0 * self.lam)
        return self.symmetry_penalty()


#: how the two-layer MLPs start: "random" (the official init) or "tied" (W2 = W1ᵀ; see ``tie_``)
INITS = ("random", "tied")


def check_lam(lam, model=None) -> float:
    """λ as a float when it is a valid penalty weight for ``model``, else a ValueError that says why.

    The one home of λ's rules: λ weighs AsymMixer's symmetry-breaking penalty λ Σ‖V‖², so it is a
    finite real ≥ 0, and nonzero only for models whose MLPs carry a breaking weight V
    (``has_breaking``). ``model``: a registered model or family name (:func:`family_of`), a
    two-layer MLP class, or None (the range only). :class:`Mixer`, :func:`create_model` and
    :meth:`hopfield_lab.config.TrainConfig.validate` (``--lam``) all ask this function.
    """
    value = float(lam) if isinstance(lam, numbers.Real) and not isinstance(lam, bool) else math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"lam must be a finite number ≥ 0 (λ, the weight of the symmetry-breaking penalty), "
                         f"got {lam!r}")
    if value != 0.0 and model is not None:
        has_v = getattr(model, "has_breaking", None) if isinstance(model, type) else family_of(model).has_breaking
        if not has_v:
            with_v = [f.name for f in FAMILIES.values() if f.has_breaking]
            what = model.__name__ if isinstance(model, type) else repr(str(model))
            raise ValueError(f"lam (λ = {value:g}) only applies to AsymMixer models (families with a breaking "
                             f"weight V: {', '.join(with_v)}), not {what}, which has no V: use e.g. "
                             f"{with_v[0]}_cifar_small, or leave lam unset")
    return value


def _check_sizes(img_size, patch_size, num_blocks, embed_dim, in_chans, num_classes):
    img, patch = _pair(img_size), _pair(patch_size)
    for name, v in (("img_size", img), ("patch_size", patch)):
        if not all(isinstance(i, int) and i > 0 for i in v):
            raise ValueError(f"{name} must be a positive integer (or a pair), got {v}")
    bad = [i for i, p in zip(img, patch) if i % p]
    if bad or any(p > i for i, p in zip(img, patch)):
        valid = sorted({d for d in range(1, min(img) + 1) if img[0] % d == 0 and img[1] % d == 0})
        raise ValueError(
            f"img_size {img_size} is not divisible by patch_size {patch_size}; patch sizes that "
            f"tile a {img[0]}x{img[1]} image: {valid}"
        )
    for name, v, lo in (("num_blocks", num_blocks, 0), ("embed_dim", embed_dim, 1),
                        ("in_chans", in_chans, 1), ("num_classes", num_classes, 0)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer ≥ {lo}, got {v!r}")


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """One model family: how its blocks are built, and how the book and the tools name it.

    ``name`` is the registry prefix (``"asymmixer"`` -> ``asymmixer_cifar_small``); ``label`` its
    name in the book's tables and legends; ``color`` its matplotlib colour in every plot;
    ``official`` the official code's ``(block class, MLP class)`` names (None if it has no
    counterpart there); ``official_sizes`` the 224-px sizes of the official registry (every
    family also gets the CIFAR-size presets).
    """

    name: str
    label: str
    color: str
    block_layer: type
    mlp_layer: type
    official: tuple[str, str] | None = None
    official_sizes: tuple[str, ...] = ()

    @property
    def has_breaking(self) -> bool:
        """True when the MLPs carry a symmetry-breaking weight V, penalised by λ‖V‖² (AsymMixer)."""
        return self.mlp_layer.has_breaking

    def __str__(self) -> str:
        return self.name


_ALL_224 = ("s32_224", "s16_224", "b32_224", "b16_224", "l32_224", "l16_224")

#: The model families in display order (the one list of them: add a family here).
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("vanillamixer", "vanilla (serial)", "C0", SerialMixerBlock, Mlp, ("vMixerBlock", "vMlp"), _ALL_224),
    Family("paramixer", "ParaMixer", "C1", ParallelMixerBlock, Mlp, ("pMixerBlock", "vMlp"), _ALL_224),
    Family("symmixer", "SymMixer", "C2", ParallelMixerBlock, SymMlp, ("pMixerBlock", "sMlp"), _ALL_224),
    Family("asymmixer", "AsymMixer", "C3", ParallelMixerBlock, AsymMlp, ("pMixerBlock", "aMlp"), ("s16_224",)),
)}


def family_of(name: str) -> Family:
    """The :class:`Family` of a family name (``"symmixer"``) or a registered model name
    (``"symmixer_cifar_small"``, ``"asymmixer_s16_224_l02"``); a ValueError lists the families."""
    key = str(name)
    if key in _REGISTRY:
        return FAMILIES[_REGISTRY[key]["family"]]
    if key in FAMILIES:
        return FAMILIES[key]
    raise ValueError(f"{key!r} is neither a model family ({', '.join(FAMILIES)}) nor a registered model "
                     "name (hopfield_lab.list_models())")


def _family_of_layers(block_layer, mlp_layer) -> Family | None:
    return next((f for f in FAMILIES.values() if (f.block_layer, f.mlp_layer) == (block_layer, mlp_layer)), None)


_SIZES_224 = {
    "s32_224": dict(patch_size=32, num_blocks=8, embed_dim=512),
    "s16_224": dict(patch_size=16, num_blocks=8, embed_dim=512),
    "b32_224": dict(patch_size=32, num_blocks=12, embed_dim=768),
    "b16_224": dict(patch_size=16, num_blocks=12, embed_dim=768),
    "l32_224": dict(patch_size=32, num_blocks=24, embed_dim=1024),
    "l16_224": dict(patch_size=16, num_blocks=24, embed_dim=1024),
}
# CIFAR-size presets (32 px, patch 4 -> 64 tokens) used by the book (chapter 8) and its GPU study
_SIZES_CIFAR = {
    "cifar_small": dict(img_size=32, patch_size=4, num_blocks=8, embed_dim=256, num_classes=10),
    "cifar_tiny": dict(img_size=32, patch_size=4, num_blocks=2, embed_dim=64, num_classes=10),
    # between the two: the seeded CPU study of spontaneous symmetry breaking (benchmarks/symmetry_study.sh)
    "cifar_cpu": dict(img_size=32, patch_size=4, num_blocks=4, embed_dim=128, num_classes=10),
}
# aliases of the official registry: n_iter variants of the tied/free families, λ-suffixed AsymMixers
_OFFICIAL_N_ITERS = (2, 3, 4)
_OFFICIAL_LAMBDAS = {"l00": 0.0, "l06": 1e-6, "l05": 1e-5, "l04": 1e-4, "l035": 5e-4, "l03": 1e-3,
                     "l02": 1e-2, "l01": 0.1, "l10": 1.0}


def _build_registry() -> dict[str, dict]:
    reg: dict[str, dict] = {}
    for fam in FAMILIES.values():
        for size in fam.official_sizes:
            reg[f"{fam.name}_{size}"] = dict(family=fam.name, **_SIZES_224[size])
        if "s16_224" in fam.official_sizes:
            s16 = dict(family=fam.name, **_SIZES_224["s16_224"])
            if fam.has_breaking:
                reg.update({f"{fam.name}_s16_224_{sfx}": dict(s16, lam=lam) for sfx, lam in _OFFICIAL_LAMBDAS.items()})
            else:
                reg.update({f"{fam.name}_s16_224_ni{n}": dict(s16, n_iter=n) for n in _OFFICIAL_N_ITERS})
        for size, cfg in _SIZES_CIFAR.items():
            reg[f"{fam.name}_{size}"] = dict(family=fam.name, **cfg)
    return reg


_REGISTRY = _build_registry()

OVERRIDES = ("num_classes", "img_size", "in_chans", "patch_size", "num_blocks", "embed_dim", "mlp_ratio",
             "hidden_ratio", "n_iter", "drop_path_rate", "drop_rate", "proj_drop_rate", "norm", "lam", "init")
# names used elsewhere for the same options (the Mixer paper's "depth", timm's "drop_path", ...)
_OVERRIDE_ALIASES = {"depth": "num_blocks", "dim": "embed_dim", "width": "embed_dim", "drop_path": "drop_path_rate",
                     "lambda": "lam", "lcoeff": "lam", "patch": "patch_size", "classes": "num_classes",
                     "channels": "in_chans"}


def unknown_overrides(overrides) -> str | None:
    """None when every key of ``overrides`` is an option of :func:`create_model`, else a message
    naming the unknown ones, the option each probably means, and the valid names."""
    import difflib

    unknown = sorted(set(overrides) - set(OVERRIDES))
    if not unknown:
        return None
    hints = []
    for k in unknown:
        guess = _OVERRIDE_ALIASES.get(k) or next(iter(difflib.get_close_matches(k, OVERRIDES, n=1)), None)
        hints.append(f"{k!r}" + (f" (did you mean {guess}?)" if guess else ""))
    return (f"unknown model option(s) {', '.join(hints)}; valid overrides: {', '.join(OVERRIDES)}, "
            "e.g. num_blocks=4 n_iter=2")


def list_models(pattern: str | None = None) -> list[str]:
    """Names accepted by :func:`create_model`, sorted; ``pattern`` is an fnmatch filter (e.g. ``"sym*"``)."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def model_config(name: str, **overrides) -> dict:
    """The full keyword configuration :func:`create_model` would pass to :class:`Mixer` (plain data + classes)."""
    if name not in _REGISTRY:
        close = [n for n in _REGISTRY if n.split("_")[0] == name.split("_")[0]] or list_models()
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(close))} "
                         f"(list_models() gives all {len(_REGISTRY)})")
    problem = unknown_overrides(overrides)
    if problem:
        raise TypeError(f"create_model: {problem}")
    cfg = dict(_REGISTRY[name])
    family = FAMILIES[cfg.pop("family")]
    if "lam" in overrides:
        check_lam(overrides["lam"], name)
    if "norm" in overrides and not callable(overrides["norm"]) and overrides["norm"] not in NORMS:
        raise ValueError(f"unknown norm {overrides['norm']!r}; choose one of {sorted(NORMS)}")
    cfg.update(overrides)
    return dict(block_layer=family.block_layer, mlp_layer=family.mlp_layer, **cfg)


def create_model(name: str, **overrides) -> Mixer:
    """Build a registered model, e.g. ``create_model("symmixer_cifar_small")`` or
    ``create_model("asymmixer_s16_224", num_classes=10, lam=1e-2, n_iter=2, norm="channels")``.

    Names: ``{vanillamixer,paramixer,symmixer}_{s32,s16,b32,b16,l32,l16}_224`` and
    ``asymmixer_s16_224`` (official registry, 1000 classes by default; the official ``_ni{2,3,4}``
    and ``asymmixer_s16_224_l..`` aliases too), and ``{vanillamixer,paramixer,symmixer,asymmixer}_
    {cifar_small,cifar_cpu,cifar_tiny}`` (32 px, patch 4, 10 classes; small: C=256, depth 8; cpu:
    C=128, depth 4; tiny: C=64, depth 2). Overrides: the official keyword names (``num_classes, img_size, in_chans, patch_size,
    num_blocks, embed_dim, mlp_ratio, hidden_ratio, n_iter, drop_path_rate`` and ``drop_rate,
    proj_drop_rate``), ``norm`` in ``{"tokens_channels", "channels", "lagrangian"}`` and ``lam``
    (AsymMixer only), ``init`` in ``{"random", "tied"}`` (tied: every MLP starts at W2 = W1ᵀ).
    MNIST-style input: ``img_size=28, patch_size=4 (or 7), in_chans=1``.
    """
    model = Mixer(**model_config(name, **overrides))
    model.model_name = name
    return model
