"""Classical associative memories: the binary Hopfield network, dense associative memory and
the modern (continuous) Hopfield network.

Three models, from 1982 to 2021, that chapters 1 and 2 of the book build on. All of them are
plain torch code, batched over many states at once, on any device and dtype.

Binary Hopfield network (Hopfield 1982)
    ``N`` neurons ``s_i = ±1``, ``P`` stored patterns ``ξ^μ ∈ {±1}^N``, Hebbian weights
    ``W = (1/N) Σ_μ ξ^μ ξ^μᵀ`` with zero diagonal, energy ``E(s) = -½ sᵀ W s`` and the update
    ``s_i ← sign(Σ_j W_ij s_j)``, asynchronous (one neuron at a time, random order: ``E`` never
    increases) or synchronous (all at once: may oscillate in 2-cycles).
    :class:`HopfieldNetwork`.

Dense associative memory (Krotov & Hopfield 2016; Demircigil et al. 2017)
    ``E(s) = -Σ_μ F(ξ^μ · s)`` with a fast-growing ``F``: ``F(x) = x^n`` (optionally rectified,
    ``max(x, 0)^n``) or ``F(x) = exp(x)``. The update flips neuron ``i`` to whichever sign has
    the lower energy, ``s_i ← sign(Σ_μ [F(ξ^μ_i + Σ_{j≠i} ξ^μ_j s_j) − F(−ξ^μ_i + Σ_{j≠i} ξ^μ_j s_j)])``.
    Capacity grows like ``N^(n−1)`` (polynomial) or ``exp(αN)`` (exponential).
    :class:`DenseAssociativeMemory`.

Modern Hopfield network (Ramsauer et al. 2021)
    Continuous states ``ξ ∈ R^d``, stored patterns as rows of ``X ∈ R^(P×d)``, energy
    ``E(ξ) = −β⁻¹ log Σ_μ exp(β x_μ·ξ) + ½ ξ·ξ + β⁻¹ log P + ½ M²`` (``M = max_μ ‖x_μ‖``) and the
    update ``ξ ← Xᵀ softmax(β X ξ)``, which is attention: :func:`attention`,
    :func:`attention_equivalence`. :class:`ModernHopfieldNetwork`.

:func:`capacity_curve` measures recall versus load ``P/N`` for the two binary models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

__all__ = [
    "check_binary",
    "random_patterns",
    "corrupt",
    "overlap",
    "hebbian_weights",
    "hebbian_couplings",
    "HopfieldNetwork",
    "DenseAssociativeMemory",
    "ModernHopfieldNetwork",
    "RunResult",
    "CapacityResult",
    "capacity_curve",
    "attention",
    "attention_equivalence",
    "separation",
]


# --------------------------------------------------------------------------------------------
# helpers on ±1 patterns
# --------------------------------------------------------------------------------------------
def check_binary(x: torch.Tensor, name: str = "patterns") -> torch.Tensor:
    """Raise a clear error unless every entry of ``x`` is +1 or −1; return ``x`` unchanged."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of ±1 values, got {type(x).__name__}.")
    if not (x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold numbers (±1), got dtype {x.dtype}.")
    if x.numel() and not bool(((x == 1) | (x == -1)).all()):
        bad = x[(x != 1) & (x != -1)].flatten()[:3].tolist()
        raise ValueError(
            f"{name} must contain only +1 and −1 (found e.g. {bad}). Binarise first, e.g. "
            f"`torch.where(x > threshold, 1.0, -1.0)` for images in [0, 1], or `2 * bits - 1` for 0/1 bits."
        )
    return x


def random_patterns(
    n_patterns: int,
    n_neurons: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Independent uniformly random ±1 patterns, shape ``(n_patterns, n_neurons)``.

    Drawn on the CPU (so a seeded ``generator`` gives the same patterns on every device) and then
    moved to ``device``.
    """
    bits = torch.randint(0, 2, (n_patterns, n_neurons), generator=generator)
    return (2 * bits - 1).to(device=device, dtype=dtype)


def corrupt(
    patterns: torch.Tensor,
    flip_fraction: float,
    *,
    generator: torch.Generator | None = None,
    exact: bool = True,
) -> torch.Tensor:
    """Flip a fraction of the entries of ±1 patterns (shape ``(..., N)``; same shape back).

    ``exact=True`` flips exactly ``round(flip_fraction * N)`` randomly chosen entries of each
    pattern; ``exact=False`` flips each entry independently with probability ``flip_fraction``.
    Randomness is drawn on the CPU with ``generator`` (device independent).
    """
    if not 0.0 <= flip_fraction <= 1.0:
        raise ValueError(f"flip_fraction must lie in [0, 1], got {flip_fraction}.")
    shape = patterns.shape
    n = shape[-1]
    if exact:
        k = int(round(flip_fraction * n))
        scores = torch.rand(shape, generator=generator)
        ranks = scores.argsort(dim=-1).argsort(dim=-1)
        flip = ranks < k
    else:
        flip = torch.rand(shape, generator=generator) < flip_fraction
    flip = flip.to(patterns.device)
    return torch.where(flip, -patterns, patterns)


def overlap(states: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """Overlaps ``m = (1/N) s · ξ``.

    ``states (..., N)`` and ``patterns (..., N)`` of the same shape give ``(...)`` (pairwise);
    ``states (B, N)`` with ``patterns (P, N)`` and ``B != P`` is an error: use
    ``states @ patterns.T / N`` for all pairs.
    """
    if states.shape != patterns.shape:
        raise ValueError(
            f"overlap pairs states with patterns row by row and needs equal shapes, got "
            f"{tuple(states.shape)} and {tuple(patterns.shape)}; for all pairs use states @ patterns.T / N."
        )
    return (states * patterns).sum(-1) / states.shape[-1]


def _sign_keep(h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """sign(h), keeping the current state s where h == 0 (so ties never raise the energy)."""
    return torch.where(h > 0, torch.ones_like(s), torch.where(h < 0, -torch.ones_like(s), s))


def _check_states(s: torch.Tensor, n: int, name: str = "states") -> torch.Tensor:
    if s.ndim < 1 or s.shape[-1] != n:
        raise ValueError(
            f"{name} must have shape (..., {n}) (last dim = number of neurons), got {tuple(s.shape)}."
        )
    return s


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What :meth:`HopfieldNetwork.run` and :meth:`DenseAssociativeMemory.run` return.

    Attributes:
        state: final states, same shape as the initial ones ``(..., B, N)``.
        energy: energies after every recorded point, ``(T, ..., B)``; entry 0 is the initial energy.
        frames: states at every recorded point, ``(T, ..., B, N)`` (``None`` unless ``record_every``).
        updates: the number of single-neuron (async) or whole-network (sync) updates at each
            recorded point, length ``T``.
        sweeps: how many sweeps ran (one sweep = N single-neuron updates, or one sync update).
        converged: True if the last sweep changed no neuron in any state (a fixed point).
    """

    state: torch.Tensor
    energy: torch.Tensor
    frames: torch.Tensor | None
    updates: list[int]
    sweeps: int
    converged: bool


@dataclass
class CapacityResult:
    """What :func:`capacity_curve` returns; every tensor has one entry per number of patterns.

    Attributes:
        n_neurons: N.
        n_patterns: the numbers of stored patterns P, ``(L,)``.
        load: ``P / N``, ``(L,)``.
        overlap: mean final overlap with the cued pattern, ``(L,)``.
        overlap_std: its standard deviation over patterns and trials, ``(L,)``.
        perfect: fraction of cues recalled exactly (overlap 1), ``(L,)``.
        bit_error: mean fraction of wrong bits in the final state, ``(L,)``.
        trial_overlap: mean final overlap of each trial (one independent set of stored patterns,
            i.e. one network), ``(L, trials)``: its spread across trials is the sampling spread of
            the curve (``overlap_std`` mixes cues of the same network, which are correlated).
    """

    n_neurons: int
    n_patterns: torch.Tensor
    load: torch.Tensor
    overlap: torch.Tensor
    overlap_std: torch.Tensor
    perfect: torch.Tensor
    bit_error: torch.Tensor
    settings: dict = field(default_factory=dict)
    trial_overlap: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------
# binary Hopfield network
# --------------------------------------------------------------------------------------------
def hebbian_weights(patterns: torch.Tensor) -> torch.Tensor:
    """Hebbian weights ``W = (1/N) Σ_μ ξ^μ ξ^μᵀ`` with zero diagonal.

    Args:
        patterns: ±1 tensor ``(..., P, N)``; leading dims give a stack of independent networks.
    Returns:
        ``(..., N, N)``, symmetric, zero diagonal.
    """
    return hebbian_couplings(patterns) / patterns.shape[-1]


#: integer sums are exact in a float type up to 2**(mantissa bits + 1)
_EXACT_INT = {torch.float16: 2**11, torch.bfloat16: 2**8, torch.float32: 2**24, torch.float64: 2**53}


def _exact_dtype(p: int, n: int, dtype: torch.dtype) -> torch.dtype:
    """``dtype`` if it adds integers up to ``N·P`` exactly, else float64."""
    return dtype if dtype in _EXACT_INT and n * p < _EXACT_INT[dtype] else torch.float64


def hebbian_couplings(patterns: torch.Tensor) -> torch.Tensor:
    """Integer Hebbian couplings ``J = Σ_μ ξ^μ ξ^μᵀ`` with zero diagonal, so that ``W = J / N``.

    Every entry is an integer in ``[−P, P]`` and every local field ``(J s)_i`` an integer in
    ``[−NP, NP]``. Float types add such integers *exactly* (as long as they stay below
    ``2**24`` in float32, ``2**53`` in float64), in any order, so fields computed from ``J`` do not
    depend on the BLAS kernel, the thread count or the device; in particular a field that is
    mathematically 0 is exactly 0, and the tie rule (keep the state) applies on every machine.
    ``J`` is returned in float64 when ``N·P`` is too large for the patterns' float type.

    Args:
        patterns: ±1 tensor ``(..., P, N)``.
    Returns:
        ``(..., N, N)``, symmetric, zero diagonal, integer-valued.
    """
    check_binary(patterns)
    if patterns.ndim < 2:
        raise ValueError(f"patterns must have shape (P, N) (or (..., P, N)), got {tuple(patterns.shape)}.")
    p, n = patterns.shape[-2:]
    patterns = patterns.to(_exact_dtype(p, n, patterns.dtype))
    j = patterns.transpose(-1, -2) @ patterns
    return j - torch.diag_embed(torch.diagonal(j, dim1=-2, dim2=-1))


def _iterate(net, s: torch.Tensor, dtype: torch.dtype, mode: str, max_sweeps: int,
             generator: torch.Generator | None, record_every: int | None) -> RunResult:
    """The update loop shared by the binary and the dense networks' ``run``.

    ``net`` provides ``n_neurons``, ``energy``, ``step_sync`` and ``sweep_async``; ``s`` holds ±1
    states ``(..., B, N)``. Stops at a fixed point or after ``max_sweeps`` sweeps.
    """
    check_binary(s, "states")
    _check_states(s, net.n_neurons)
    if mode not in ("async", "sync"):
        raise ValueError(f"mode must be 'async' or 'sync', got {mode!r}.")
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be ≥ 1, got {max_sweeps}.")
    s = s.to(dtype)
    energies = [net.energy(s)]
    frames = [s.clone()] if record_every else None
    updates = [0]
    converged = False
    sweeps = 0
    n = net.n_neurons
    for sweep in range(max_sweeps):
        sweeps += 1
        if mode == "async":
            s_new, nflip, rec = net.sweep_async(s, generator=generator, record_every=record_every)
            if record_every:
                for j, f in enumerate(rec, 1):
                    frames.append(f)
                    energies.append(net.energy(f))
                    updates.append(sweep * n + j * record_every)
            changed = nflip > 0
        else:
            s_new = net.step_sync(s)
            changed = bool((s_new != s).any())
            if record_every:
                frames.append(s_new.clone())
        s = s_new
        if not (mode == "async" and record_every):
            energies.append(net.energy(s))
            updates.append(sweeps * (n if mode == "async" else 1))
        if not changed:
            converged = True
            break
    return RunResult(
        state=s,
        energy=torch.stack(energies),
        frames=torch.stack(frames) if frames is not None else None,
        updates=updates,
        sweeps=sweeps,
        converged=converged,
    )


class HopfieldNetwork:
    """Binary Hopfield network with Hebbian storage (Hopfield 1982).

    Energy and dynamics (states ``s ∈ {±1}^N``, local field ``h = W s``)::

        E(s) = −½ Σ_ij W_ij s_i s_j − Σ_i b_i s_i               (1)
        s_i ← sign(h_i + b_i)       (h_i + b_i = 0: s_i unchanged)  (2)

    Asynchronous updates of one neuron at a time never increase ``E`` because ``W`` is symmetric
    with zero diagonal: flipping ``s_i`` changes the energy by ``ΔE = −Δs_i (h_i + b_i) ≤ 0``.

    Args:
        patterns: ±1 patterns ``(P, N)`` stored with the Hebbian rule, or ``(K, P, N)`` for a
            stack of K independent networks (states then have shape ``(K, B, N)``).
        weights: instead of ``patterns``, any symmetric weight matrix ``(..., N, N)``.
        bias: optional thresholds ``b`` of shape ``(N,)``.
    """

    def __init__(
        self,
        patterns: torch.Tensor | None = None,
        *,
        weights: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ):
        if (patterns is None) == (weights is None):
            raise ValueError("Give exactly one of `patterns` (±1, shape (P, N)) or `weights` (shape (N, N)).")
        if patterns is not None:
            if not patterns.is_floating_point():
                patterns = patterns.float()
            self.patterns = check_binary(patterns)
            # fields are computed from the integer couplings J and divided by N once: exact
            couplings, scale = hebbian_couplings(patterns), patterns.shape[-1]
            weights = (couplings / scale).to(patterns.dtype)
        else:
            self.patterns = None
            if weights.ndim < 2 or weights.shape[-1] != weights.shape[-2]:
                raise ValueError(f"weights must be square, shape (..., N, N), got {tuple(weights.shape)}.")
            if not torch.allclose(weights, weights.transpose(-1, -2)):
                raise ValueError(
                    "weights must be symmetric for the energy to exist; use (W + W.T) / 2."
                )
            couplings, scale = weights, 1
        self.W = weights
        self._J, self._scale = couplings, scale  # W = J / scale; J integer-valued for Hebbian storage
        self.n_neurons = weights.shape[-1]
        if bias is not None and bias.shape != (self.n_neurons,):
            raise ValueError(f"bias must have shape ({self.n_neurons},), got {tuple(bias.shape)}.")
        self.b = bias

    @property
    def device(self) -> torch.device:
        return self.W.device

    # -- energy and fields ------------------------------------------------------------------
    def _raw_field(self, s: torch.Tensor) -> torch.Tensor:
        """``J s`` in the couplings' dtype (exact integers for Hebbian storage), ``(..., B, N)``."""
        return s.to(self._J.dtype) @ self._J  # J symmetric: (s J)_i = Σ_j J_ij s_j

    def _field_of(self, raw: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``J s / scale + b`` from the raw field, in the dtype of ``like``. Element-wise only, so
        the result and its sign are the same on every machine once ``raw`` is exact."""
        h = raw / self._scale if self._scale != 1 else raw
        h = h if self.b is None else h + self.b
        return h.to(like.dtype)

    def field(self, s: torch.Tensor) -> torch.Tensor:
        """Local fields ``h + b = W s + b`` of states ``(..., B, N)`` (same shape back).

        For Hebbian storage ``W s`` is computed as ``(J s) / N`` with integer couplings ``J``
        (:func:`hebbian_couplings`): exact, so a zero field is exactly zero on every machine.
        """
        _check_states(s, self.n_neurons)
        return self._field_of(self._raw_field(s), s)

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        """Energy (1) of states ``(..., B, N)``; returns ``(..., B)`` (exact for Hebbian storage
        without bias: an integer sum divided by N once)."""
        quad = (s.to(self._J.dtype) * self._raw_field(s)).sum(-1)
        e = (-0.5 * quad / self._scale).to(s.dtype)
        return e if self.b is None else e - (s * self.b).sum(-1)

    # -- dynamics ---------------------------------------------------------------------------
    def step_sync(self, s: torch.Tensor) -> torch.Tensor:
        """One synchronous update (2) of every neuron at once; ``(..., B, N)`` → same shape."""
        return _sign_keep(self.field(s), s)

    def sweep_async(
        self,
        s: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        record_every: int | None = None,
    ) -> tuple[torch.Tensor, int, list[torch.Tensor]]:
        """One asynchronous sweep: every neuron updated once, in a random order drawn per state.

        Vectorised over the batch: at step t, each state ``b`` updates its own neuron
        ``perm[b, t]``; local fields are kept up to date incrementally (one row of W per flip).

        Args:
            s: states ``(..., B, N)``.
            generator: CPU generator for the random orders.
            record_every: also return the state after every this many single-neuron updates.
        Returns:
            ``(new_states, number_of_flips, recorded_states)``.
        """
        _check_states(s, self.n_neurons)
        n = self.n_neurons
        lead = s.shape[:-1]
        nets = self._J.shape[:-2].numel()  # 1 for a single network
        jflat = self._J.reshape(nets * n, n)  # row k*N + i = J[k, i]
        x = s.reshape(nets, -1, n).to(self._J.dtype)
        bb = x.shape[1]
        raw = x @ self._J.reshape(nets, n, n)  # J s: exact integers for Hebbian storage
        x, raw = x.reshape(nets * bb, n).clone(), raw.reshape(nets * bb, n).contiguous()
        start = x.clone()
        base = (torch.arange(nets, device=s.device) * n).repeat_interleave(bb)  # (K*B,)
        perm = torch.rand(nets * bb, n, generator=generator).argsort(-1).to(s.device)
        frames = []
        for t in range(n):
            i = perm[:, t : t + 1]  # (K*B, 1)
            hi = raw.gather(1, i)  # sign(J s / N + b): the raw field decides when b is None
            if self.b is not None:
                hi = hi / self._scale + self.b[i]
            old = x.gather(1, i)
            new = torch.where(hi == 0, old, hi.sign())
            x.scatter_(1, i, new)
            # fields after the flip: J s += (new - old) J[i] (integer updates stay exact)
            raw.addcmul_(new - old, jflat.index_select(0, base + i[:, 0]))
            if record_every and (t + 1) % record_every == 0:
                # a copy: x is updated in place, and .to() returns x itself when the dtypes agree
                frames.append(x.reshape(*lead, n).to(s.dtype, copy=True))
        flips = (x != start).sum()  # each neuron is updated once per sweep
        return x.reshape(*lead, n).to(s.dtype), int(flips), frames

    def run(
        self,
        s: torch.Tensor,
        *,
        mode: str = "async",
        max_sweeps: int = 100,
        generator: torch.Generator | None = None,
        record_every: int | None = None,
    ) -> RunResult:
        """Iterate the dynamics (2) from states ``s (..., B, N)`` until a fixed point or ``max_sweeps``.

        Args:
            mode: ``"async"`` (random sequential order, energy non-increasing) or ``"sync"``.
            max_sweeps: at most this many sweeps (N single-neuron updates, or one sync update, each).
            generator: CPU generator for the async orders (reproducible runs).
            record_every: record state and energy every this many single-neuron updates (async)
                or sync steps; by default only after each sweep.
        Returns:
            :class:`RunResult`.
        """
        return _iterate(self, s, self.W.dtype, mode, max_sweeps, generator, record_every)

    def recall(self, cues: torch.Tensor, *, mode: str = "async", max_sweeps: int = 100,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the dynamics from ±1 cues ``(..., B, N)`` and return the final states (same shape)."""
        return self.run(cues, mode=mode, max_sweeps=max_sweeps, generator=generator).state

    def is_fixed_point(self, s: torch.Tensor) -> torch.Tensor:
        """True for states ``(..., B, N)`` that no single update (2) changes; returns ``(..., B)``."""
        return (self.step_sync(s) == s).all(-1)

    def __repr__(self) -> str:
        p = "custom weights" if self.patterns is None else f"{self.patterns.shape[-2]} patterns"
        return f"HopfieldNetwork(N={self.n_neurons}, {p}, device={self.device})"


# --------------------------------------------------------------------------------------------
# dense associative memory
# --------------------------------------------------------------------------------------------
class DenseAssociativeMemory:
    """Dense associative memory (Krotov & Hopfield 2016; exponential F: Demircigil et al. 2017).

    ::

        E(s) = − Σ_μ F(ξ^μ · s)                                                      (3)
        s_i ← sign( Σ_μ [ F(ξ^μ_i + Σ_{j≠i} ξ^μ_j s_j) − F(−ξ^μ_i + Σ_{j≠i} ξ^μ_j s_j) ] )   (4)

    Rule (4) sets ``s_i`` to the sign with the lower energy (3) given all other neurons, so
    asynchronous updates never increase ``E``. ``F(x) = x²`` gives back the Hebbian network
    (up to a constant); larger ``n`` store ``~N^(n−1)`` patterns, ``F = exp`` exponentially many.

    Args:
        patterns: ±1 patterns ``(P, N)``.
        F: ``"poly"`` (``x^n``), ``"repu"`` (rectified: ``max(x, 0)^n``) or ``"exp"`` (``e^x``).
        n: the power for ``"poly"``/``"repu"`` (integer ≥ 1).
    """

    def __init__(self, patterns: torch.Tensor, *, F: str = "poly", n: int = 3):
        if not isinstance(patterns, torch.Tensor) or patterns.ndim != 2:
            raise ValueError(
                f"patterns must be a ±1 tensor of shape (P, N), got "
                f"{tuple(patterns.shape) if isinstance(patterns, torch.Tensor) else type(patterns).__name__}."
            )
        if not patterns.is_floating_point():
            patterns = patterns.float()
        self.patterns = check_binary(patterns)
        if F not in ("poly", "repu", "exp"):
            raise ValueError(f"F must be 'poly', 'repu' or 'exp', got {F!r}.")
        if F != "exp" and (int(n) != n or n < 1):
            raise ValueError(f"n must be an integer ≥ 1 for F={F!r}, got {n}.")
        self.kind = F
        self.n = int(n)
        self.n_patterns, self.n_neurons = patterns.shape

    @property
    def device(self) -> torch.device:
        return self.patterns.device

    def F(self, x: torch.Tensor) -> torch.Tensor:
        """The separation function F, element-wise."""
        if self.kind == "poly":
            return x**self.n
        if self.kind == "repu":
            return x.clamp_min(0) ** self.n
        return torch.exp(x)

    def overlaps(self, s: torch.Tensor) -> torch.Tensor:
        """``ξ^μ · s`` for states ``(B, N)``; returns ``(B, P)``."""
        _check_states(s, self.n_neurons)
        return s @ self.patterns.T

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        """Energy (3) of states ``(B, N)``; returns ``(B,)``.

        For ``F = exp`` it is computed as ``−exp(logsumexp(ξ·s))`` in float64 (finite up to
        N ≈ 700); the dynamics never need it.
        """
        m = self.overlaps(s)
        if self.kind == "exp":
            return -torch.exp(torch.logsumexp(m.double(), -1))
        return -self.F(self._exact(m)).sum(-1).to(s.dtype)

    def _exact(self, z: torch.Tensor) -> torch.Tensor:
        """Integer-valued overlaps as int64 when ``Σ_μ F`` fits (``P (N+1)^n < 2^62``), else float64.

        Overlaps of ±1 vectors are integers, so ``Σ_μ F(ξ^μ·s ± 1)`` is an integer sum: in int64 it
        is exact in any order, and the sign of rule (4), ties included, is the same on every
        machine. (A float32 sum of ``P`` cubes of size up to ``N³`` is not: its rounding depends on
        the summation order, i.e. on the BLAS kernel and the thread count.)
        """
        if self.n * math.log2(self.n_neurons + 1) + math.log2(self.n_patterns) < 62:
            return z.round().to(torch.int64)
        return z.to(torch.float64)

    def _drive(self, plus: torch.Tensor, minus: torch.Tensor) -> torch.Tensor:
        """Sign-carrying ``Σ_μ F(plus) − Σ_μ F(minus)`` over the pattern dim (−2 or −1).

        Exact for ``F = x^n`` and rectified ``x^n`` (:meth:`_exact`). For ``F = exp`` the two
        sums are compared in log space (no overflow), in float64 and over *sorted* exponents:
        ``Σ_μ e^(a_μ) = Σ_μ e^(b_μ)`` for integers only when the two multisets are equal (e is
        transcendental), and sorting makes equal multisets give bit-equal sums, so exact ties are
        recognised as ties on every machine.
        """
        if self.kind == "exp":
            lse = lambda z: torch.logsumexp(z.double().sort(dim=-1).values, -1)
            return lse(plus) - lse(minus)
        return (self.F(self._exact(plus)) - self.F(self._exact(minus))).sum(-1)

    def step_sync(self, s: torch.Tensor) -> torch.Tensor:
        """Rule (4) for all neurons at once; ``(B, N)`` → ``(B, N)``. Uses ``B·P·N`` memory."""
        _check_states(s, self.n_neurons)
        m = self.overlaps(s)  # (B, P)
        xi = self.patterns.T[None]  # (1, N, P)
        rest = m[:, None, :] - xi * s[:, :, None]  # (B, N, P): Σ_{j≠i} ξ_j s_j
        d = self._drive(rest + xi, rest - xi)  # (B, N)
        return _sign_keep(d, s)

    def sweep_async(self, s: torch.Tensor, *, generator: torch.Generator | None = None,
                    record_every: int | None = None) -> tuple[torch.Tensor, int, list[torch.Tensor]]:
        """One asynchronous sweep of rule (4), random order per state, vectorised over the batch.

        Overlaps ``ξ^μ·s`` are updated incrementally after each flip (cost ``B·P`` per step).
        Returns ``(new_states (B, N), number_of_flips, recorded_states)``.
        """
        _check_states(s, self.n_neurons)
        if s.ndim != 2:
            raise ValueError(f"states must have shape (B, N), got {tuple(s.shape)}.")
        x = s.clone()
        bsz, n = x.shape
        m = self.overlaps(x)  # (B, P)
        xiT = self.patterns.T.contiguous()  # (N, P)
        perm = torch.rand(bsz, n, generator=generator).argsort(-1).to(s.device)
        frames = []
        for t in range(n):
            i = perm[:, t : t + 1]  # (B, 1)
            xi_i = xiT.index_select(0, i[:, 0])  # (B, P)
            old = x.gather(1, i)  # (B, 1)
            rest = m - xi_i * old  # Σ_{j≠i} ξ_j s_j
            d = self._drive(rest + xi_i, rest - xi_i)[:, None]
            new = torch.where(d == 0, old, d.sign().to(old.dtype))
            x.scatter_(1, i, new)
            m.addcmul_(xi_i, new - old)
            if record_every and (t + 1) % record_every == 0:
                frames.append(x.clone())
        flips = int((x != s).sum())  # each neuron is updated once per sweep
        return x, flips, frames

    def run(self, s: torch.Tensor, *, mode: str = "async", max_sweeps: int = 100,
            generator: torch.Generator | None = None, record_every: int | None = None) -> RunResult:
        """Iterate rule (4) from ±1 states ``(B, N)``; same contract as :meth:`HopfieldNetwork.run`."""
        return _iterate(self, s, self.patterns.dtype, mode, max_sweeps, generator, record_every)

    def recall(self, cues: torch.Tensor, *, mode: str = "async", max_sweeps: int = 100,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the dynamics from ±1 cues ``(B, N)``; return the final states ``(B, N)``."""
        return self.run(cues, mode=mode, max_sweeps=max_sweeps, generator=generator).state

    def __repr__(self) -> str:
        f = "exp" if self.kind == "exp" else f"{self.kind}, n={self.n}"
        return f"DenseAssociativeMemory(N={self.n_neurons}, P={self.n_patterns}, F={f})"


# --------------------------------------------------------------------------------------------
# capacity
# --------------------------------------------------------------------------------------------
def capacity_curve(
    n_neurons: int,
    n_patterns: Sequence[int],
    *,
    model: str = "hopfield",
    F: str = "poly",
    n: int = 3,
    trials: int = 5,
    flip_fraction: float = 0.0,
    cues_per_trial: int | None = None,
    mode: str = "async",
    max_sweeps: int = 30,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> CapacityResult:
    """Recall quality versus load ``P/N`` for random ±1 patterns.

    For each ``P`` and each of ``trials`` independent draws: store ``P`` random patterns, cue the
    network with (up to ``cues_per_trial`` of) them with ``flip_fraction`` of the bits flipped,
    run the dynamics to a fixed point (or ``max_sweeps``) and measure the final overlap
    ``m = (1/N) s·ξ`` with the cued pattern.

    With ``flip_fraction=0`` this is the classic stability test: for the Hebbian network
    (``model="hopfield"``) the overlap stays near 1 below ``P/N ≈ 0.138`` and collapses above it
    (Amit, Gutfreund & Sompolinsky 1985), smeared by finite size.

    Args:
        n_neurons: N.
        n_patterns: the values of P to test.
        model: ``"hopfield"`` (Hebbian, trials batched as a stack of networks) or ``"dense"``
            (:class:`DenseAssociativeMemory` with ``F`` and ``n``).
        trials: independent pattern sets per P.
        flip_fraction: fraction of cue bits flipped.
        cues_per_trial: cue at most this many of the stored patterns (default: all).
        mode: ``"async"`` or ``"sync"``.
        seed: seeds a CPU generator: same numbers on every device.
        progress: show a tqdm bar over P.
    Returns:
        :class:`CapacityResult` (float64 statistics, computed from integer overlaps: the same
        numbers on every machine, thread count and device).
    """
    if model not in ("hopfield", "dense"):
        raise ValueError(f"model must be 'hopfield' or 'dense', got {model!r}.")
    ps = [int(p) for p in n_patterns]
    if not ps or min(ps) < 1:
        raise ValueError(f"n_patterns must be a non-empty list of positive integers, got {list(n_patterns)}.")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    g = torch.Generator().manual_seed(seed)
    iterator: Sequence[int] | object = ps
    if progress:
        from .runtime import progress_bar

        iterator = progress_bar(ps, desc=f"capacity ({model}, N={n_neurons})")
    means, stds, perf, berr, per_trial = [], [], [], [], []
    for p in iterator:
        c = p if cues_per_trial is None else min(p, cues_per_trial)
        pats = random_patterns(trials * p, n_neurons, generator=g, device=dev).reshape(trials, p, n_neurons)
        target = pats[:, :c]
        cues = corrupt(target, flip_fraction, generator=g)
        if model == "hopfield":
            net = HopfieldNetwork(pats)
            final = net.recall(cues, mode=mode, max_sweeps=max_sweeps, generator=g)
        else:
            final = torch.stack([
                DenseAssociativeMemory(pats[t], F=F, n=n).recall(cues[t], mode=mode, max_sweeps=max_sweeps, generator=g)
                for t in range(trials)
            ])
        # overlaps as exact integers N·m, summed in int64: the statistics are the same on every
        # machine (a float mean of many m values would depend on the summation order)
        d = (final * target).sum(-1).round().to(torch.int64).flatten().cpu()  # (trials·c,) = N·m
        k, s1, s2 = d.numel(), int(d.sum()), int((d * d).sum())
        mean = s1 / (k * n_neurons)
        var = (s2 - s1 * s1 / k) / (k - 1) / n_neurons**2 if k > 1 else 0.0
        means.append(mean)
        stds.append(math.sqrt(max(var, 0.0)))
        perf.append(int((d == n_neurons).sum()) / k)
        berr.append((1 - mean) / 2)
        per_trial.append((d.reshape(trials, c).sum(-1).double() / (c * n_neurons)).tolist())  # exact sums
    pt = torch.tensor(ps)
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float64)
    return CapacityResult(
        n_neurons=n_neurons,
        n_patterns=pt,
        load=pt.double() / n_neurons,
        overlap=as_tensor(means),
        overlap_std=as_tensor(stds),
        perfect=as_tensor(perf),
        bit_error=as_tensor(berr),
        trial_overlap=as_tensor(per_trial),
        settings=dict(model=model, F=F, n=n, trials=trials, flip_fraction=flip_fraction,
                      mode=mode, max_sweeps=max_sweeps, seed=seed),
    )


# --------------------------------------------------------------------------------------------
# modern Hopfield network and attention
# --------------------------------------------------------------------------------------------
class ModernHopfieldNetwork:
    """Modern continuous Hopfield network (Ramsauer et al. 2021).

    Stored patterns are the rows ``x_μ`` of ``X (P, d)``; states ``ξ`` are rows of ``(B, d)``::

        E(ξ) = −β⁻¹ log Σ_μ exp(β x_μ·ξ) + ½ ξ·ξ + β⁻¹ log P + ½ M²      (5)
        ξ_new = Σ_μ p_μ v_μ,   p = softmax(β X ξ)                          (6)

    with ``M = max_μ ‖x_μ‖`` and values ``v_μ = x_μ`` (pure retrieval) unless ``values (P, d_v)``
    are given (a Hopfield *layer*: keys X, values V). With ``values = None`` rule (6) is the
    concave–convex procedure on (5): ``E`` never increases, and ``E ≥ 0``.

    Args:
        patterns: real tensor ``(P, d)``.
        beta: inverse temperature β > 0.
        values: optional ``(P, d_v)``.
    """

    def __init__(self, patterns: torch.Tensor, beta: float = 1.0, values: torch.Tensor | None = None):
        if not isinstance(patterns, torch.Tensor) or patterns.ndim != 2:
            raise ValueError(
                "patterns must be a real tensor of shape (P, d) (one stored pattern per row), got "
                f"{tuple(patterns.shape) if isinstance(patterns, torch.Tensor) else type(patterns).__name__}."
            )
        if not patterns.is_floating_point():
            raise TypeError(f"patterns must be floating point, got {patterns.dtype}; use patterns.float().")
        if not (beta > 0 and math.isfinite(beta)):
            raise ValueError(f"beta must be a positive finite number, got {beta}.")
        if values is not None and (values.ndim != 2 or values.shape[0] != patterns.shape[0]):
            raise ValueError(
                f"values must have shape (P, d_v) with P = {patterns.shape[0]} rows, got {tuple(values.shape)}."
            )
        self.X = patterns
        self.V = values
        self.beta = float(beta)
        self.n_patterns, self.dim = patterns.shape

    def _check(self, xi: torch.Tensor) -> torch.Tensor:
        if xi.ndim < 1 or xi.shape[-1] != self.dim:
            raise ValueError(f"states must have shape (..., {self.dim}) (pattern dimension d), got {tuple(xi.shape)}.")
        return xi

    def weights(self, xi: torch.Tensor) -> torch.Tensor:
        """The softmax weights ``p = softmax(β X ξ)`` of (6); ``(..., d)`` → ``(..., P)``."""
        return torch.softmax(self.beta * (self._check(xi) @ self.X.T), dim=-1)

    def energy(self, xi: torch.Tensor) -> torch.Tensor:
        """Energy (5) of states ``(..., d)``; returns ``(...)``."""
        self._check(xi)
        lse = torch.logsumexp(self.beta * (xi @ self.X.T), dim=-1) / self.beta
        m2 = (self.X**2).sum(-1).max()
        return -lse + 0.5 * (xi**2).sum(-1) + math.log(self.n_patterns) / self.beta + 0.5 * m2

    def update(self, xi: torch.Tensor) -> torch.Tensor:
        """One update (6): ``(..., d)`` → ``(..., d)`` (or ``(..., d_v)`` with values)."""
        p = self.weights(xi)
        return p @ (self.X if self.V is None else self.V)

    def retrieve(self, xi: torch.Tensor, steps: int = 1, *, tol: float | None = None,
                 return_trajectory: bool = False):
        """Apply (6) ``steps`` times (stop early once no entry moves more than ``tol``).

        Returns the final states ``(..., d)``, or ``(final, trajectory (T+1, ..., d))``.
        """
        if self.V is not None:
            raise ValueError("retrieve iterates the update, which needs values == patterns; use update() for a layer.")
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}.")
        traj = [xi]
        for _ in range(steps):
            new = self.update(xi)
            traj.append(new)
            done = tol is not None and (new - xi).abs().max() <= tol
            xi = new
            if done:
                break
        return (xi, torch.stack(traj)) if return_trajectory else xi

    @staticmethod
    def effective_patterns(p: torch.Tensor) -> torch.Tensor:
        """Participation ratio ``1 / Σ_μ p_μ²`` of softmax weights ``(..., P)``: ≈1 for a single
        retrieved pattern, ≈k for a metastable average of k patterns, P for the global average."""
        return 1.0 / (p**2).sum(-1)

    def __repr__(self) -> str:
        return f"ModernHopfieldNetwork(P={self.n_patterns}, d={self.dim}, beta={self.beta:g})"


def separation(patterns: torch.Tensor) -> torch.Tensor:
    """Separation ``Δ_μ = x_μ·x_μ − max_{ν≠μ} x_μ·x_ν`` of each stored pattern (Ramsauer et al.).

    ``patterns (P, d)`` → ``(P,)``. One update retrieves pattern μ with error ``~ 2(P−1) M e^(−βΔ_μ + ...)``:
    large ``β Δ_μ`` means one-step retrieval.
    """
    if patterns.ndim != 2 or patterns.shape[0] < 2:
        raise ValueError(f"patterns must have shape (P, d) with P ≥ 2, got {tuple(patterns.shape)}.")
    g = patterns @ patterns.T
    self_ = g.diagonal()
    off = g.masked_fill(torch.eye(len(g), dtype=torch.bool, device=g.device), float("-inf"))
    return self_ - off.max(-1).values


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: float | None = None) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(β Q Kᵀ) V``, written out.

    Shapes: ``q (..., T_q, d)``, ``k (..., T_k, d)``, ``v (..., T_k, d_v)`` → ``(..., T_q, d_v)``.
    ``beta`` defaults to ``1/√d`` (the transformer's choice).
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"attention needs q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v); got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    beta = 1.0 / math.sqrt(q.shape[-1]) if beta is None else beta
    return torch.softmax(beta * q @ k.transpose(-1, -2), dim=-1) @ v


def attention_equivalence(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          beta: float | None = None) -> dict[str, torch.Tensor]:
    """The modern Hopfield update (6) is attention: compute both and compare.

    The queries ``q (T_q, d)`` are the states ξ, the keys ``k (T_k, d)`` are the stored patterns
    and ``v (T_k, d_v)`` the values: ``ξ_new = Vᵀ softmax(β K ξ)`` row by row equals
    ``softmax(β Q Kᵀ) V``, which we also take from :func:`torch.nn.functional.scaled_dot_product_attention`
    (an independent implementation). Returns ``{"hopfield", "attention", "max_abs_diff"}``.
    """
    if q.ndim != 2 or k.ndim != 2 or v.ndim != 2:
        raise ValueError("attention_equivalence takes 2-D q (T_q, d), k (T_k, d), v (T_k, d_v).")
    beta = 1.0 / math.sqrt(q.shape[-1]) if beta is None else beta
    hop = ModernHopfieldNetwork(k, beta=beta, values=v).update(q)
    att = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None], scale=beta)[0]
    return {"hopfield": hop, "attention": att, "max_abs_diff": (hop - att).abs().max()}
