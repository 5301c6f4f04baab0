"""The Energy MetaFormer: a three-layer hierarchical associative memory trained by denoising.

Karakida, Ota and Taki (2024, Sec. 4) build the smallest "MetaFormer" that is also a Hopfield
network: one visible layer between two hidden layers,

    xs (ReLU, n_s)  --xi_s--  xv (LayerNorm Lagrangian, n_v)  --xi_c--  xc (ReLU, n_c)

with dense symmetric synapses (the same matrix carries the signal up and down). Its energy is

    E = [<x_s,g_s> - L_s(x_s)] + [<x_v,g_v> - L_v(x_v)] + [<x_c,g_c> - L_c(x_c)]
        - <g_s, xi_s g_v> - <g_c, xi_c g_v>

and inference is ``K`` descent steps ``x <- x - alpha dE/dg`` on all three layers at once, with the
closed-form gradient

    dE/dg_s = x_s - xi_s g_v,   dE/dg_c = x_c - xi_c g_v,   dE/dg_v = x_v - xi_s^T g_s - xi_c^T g_c.

Because ``dE/dx = (d g/d x)^T dE/dg`` and every Lagrangian here has a positive semi-definite
Hessian, ``-dE/dg`` is a descent direction of ``E`` in state space: for small ``alpha`` the energy
never increases.

Training (the paper's set-up, :meth:`DenoisingConfig.paper`, as in the official notebook
``demo/demo_energymetaformer.ipynb`` of github.com/Toshihiro-Ota/paramixer): images scaled to
[0, 1], flattened and L2-normalised; Gaussian noise (sigma 0.3) on the visible state, hidden states
start at zero; 10 steps with alpha = 0.1; loss = MSE between the final visible activation ``g_v``
and the clean image; Adam (lr 1e-4), batch 512, 100 epochs on MNIST. One difference: the official
synapses start at ``0.02 N(0, 1)``, this library's at ``0.2 + 0.02 N(0, 1)``. The offset only
changes each synapse row's mean, which neither the dynamics nor the training can see (see
:meth:`EnergyMetaFormer.receptive_fields`; a test trains both and compares).

Shapes: batches of flattened images are ``(B, n_v)``; a state is a :class:`State` of
``(B, n_s)``, ``(B, n_v)``, ``(B, n_c)`` tensors; synapses are ``xi_s: (n_s, n_v)`` and
``xi_c: (n_c, n_v)``, so each row of a synapse matrix is a receptive field over the image.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor, nn

from .ham import HAM, Dense, Layer
from .lagrangians import LayerNorm, ReLU

__all__ = [
    "State",
    "EnergyMetaFormer",
    "DenoisingConfig",
    "prepare_images",
    "fit",
    "energy_descent",
    "denoising_flops",
    "mosaic",
]


class State(NamedTuple):
    """The three layers' states (or activations, or energy gradients) of a batch.

    ``s``: ``(B, n_s)`` token-side hidden layer, ``v``: ``(B, n_v)`` visible layer,
    ``c``: ``(B, n_c)`` channel-side hidden layer.
    """

    s: Tensor
    v: Tensor
    c: Tensor


class EnergyMetaFormer(nn.Module):
    """Three-layer HAM ``xs (ReLU) - xv (LayerNorm) - xc (ReLU)`` with dense symmetric synapses.

    A thin wrapper around :class:`hopfield_lab.ham.HAM` (attribute ``ham``: layers ``"xs"``,
    ``"xv"``, ``"xc"``; :class:`~hopfield_lab.ham.Dense` synapses ``"xi_s"`` (xv -> xs) and
    ``"xi_c"`` (xv -> xc)) that adds an initialisation (the official notebook's std 0.02 plus an
    offset 0.2 that the notebook does not use; see ``init_mean``), batched :class:`State` tuples,
    the denoising loss and receptive fields.

    Args:
        n_visible: visible neurons ``n_v`` (784 for MNIST).
        n_s, n_c: hidden neurons of the two ReLU layers (900 each in the paper).
        eps: the LayerNorm Lagrangian's epsilon (its gamma is 1 and delta 0, as in the paper).
        init_mean, init_std: synapses start as ``init_mean + init_std * N(0, 1)``. The official
            notebook uses std 0.02 and no offset (its ``+ 0.2`` is commented out); the default
            offset 0.2 is kept here because it is invisible (row means never reach the
            dynamics, and the training gradient has zero row means) and shows why
            :meth:`receptive_fields` centres.
        generator: optional ``torch.Generator`` for the initial weights.
    """

    def __init__(
        self,
        n_visible: int = 784,
        n_s: int = 900,
        n_c: int = 900,
        eps: float = 1e-5,
        init_mean: float = 0.2,
        init_std: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, n in (("n_visible", n_visible), ("n_s", n_s), ("n_c", n_c)):
            if int(n) < 1:
                raise ValueError(f"{name}={n} must be a positive number of neurons.")
        self.n_visible, self.n_s, self.n_c = int(n_visible), int(n_s), int(n_c)
        w_s = init_mean + init_std * torch.randn(n_s, n_visible, generator=generator)
        w_c = init_mean + init_std * torch.randn(n_c, n_visible, generator=generator)
        self.ham = HAM(
            layers={
                "xs": Layer(self.n_s, ReLU()),
                "xv": Layer(self.n_visible, LayerNorm(gamma=1.0, delta=None, eps=eps)),
                "xc": Layer(self.n_c, ReLU()),
            },
            synapses={
                "xi_s": Dense(pre="xv", post="xs", weight=w_s),  # (n_s, n_v)
                "xi_c": Dense(pre="xv", post="xc", weight=w_c),  # (n_c, n_v)
            },
        )

    @property
    def L_s(self):
        """The ReLU Lagrangian of layer xs."""
        return self.ham.layers["xs"].lagrangian

    @property
    def L_v(self):
        """The LayerNorm Lagrangian of the visible layer xv."""
        return self.ham.layers["xv"].lagrangian

    @property
    def L_c(self):
        """The ReLU Lagrangian of layer xc."""
        return self.ham.layers["xc"].lagrangian

    @property
    def xi_s(self) -> nn.Parameter:
        """Synapse xs-xv, ``(n_s, n_v)``: row k is hidden neuron k's receptive field."""
        return self.ham.synapses["xi_s"].weight

    @property
    def xi_c(self) -> nn.Parameter:
        """Synapse xv-xc, ``(n_c, n_v)``."""
        return self.ham.synapses["xi_c"].weight

    @staticmethod
    def as_dict(x: State) -> dict:
        """A :class:`State` as the ``{"xs", "xv", "xc"}`` dict used by :class:`~hopfield_lab.ham.HAM`."""
        return {"xs": x.s, "xv": x.v, "xc": x.c}

    @staticmethod
    def from_dict(d: dict) -> State:
        return State(d["xs"], d["xv"], d["xc"])

    def extra_repr(self) -> str:
        return f"n_s={self.n_s}, n_visible={self.n_visible}, n_c={self.n_c}"

    # ---------------------------------------------------------------- states
    def _check_visible(self, v: Tensor) -> None:
        if v.ndim != 2 or v.shape[-1] != self.n_visible:
            raise ValueError(
                f"expected a batch of flattened images of shape (B, {self.n_visible}), got "
                f"{tuple(v.shape)}; flatten with prepare_images() or build the model with "
                f"n_visible={v.shape[-1]}."
            )

    def init_state(self, v: Tensor) -> State:
        """The state that starts inference: visible ``v`` ``(B, n_v)``, hidden layers at zero."""
        self._check_visible(v)
        B = v.shape[0]
        zs = v.new_zeros(B, self.n_s)
        zc = v.new_zeros(B, self.n_c)
        return State(zs, v, zc)

    def random_state(self, batch: int, scale: float = 10.0, generator: torch.Generator | None = None) -> State:
        """All three layers drawn from ``scale * N(0, 1)``: shapes ``(batch, n)``."""
        dev, dt = self.xi_s.device, self.xi_s.dtype

        def draw(n: int) -> Tensor:
            return scale * torch.randn(batch, n, generator=generator, device="cpu", dtype=dt).to(dev)

        return State(draw(self.n_s), draw(self.n_visible), draw(self.n_c))

    def activations(self, x: State) -> State:
        """``g = dL/dx`` of each layer: ReLU, LayerNorm, ReLU."""
        return State(self.L_s.activation(x.s), self.L_v.activation(x.v), self.L_c.activation(x.c))

    # ---------------------------------------------------------------- energy
    def energy(self, x: State) -> Tensor:
        """Energy of each state of the batch: ``(B,)`` (:meth:`hopfield_lab.ham.HAM.energy`)."""
        return self.ham.energy(self.as_dict(x))

    def dEdg(self, x: State) -> State:
        """Closed-form ``dE/dg`` of each layer: the state minus the layer's synaptic input."""
        return self.from_dict(self.ham.dEdg(self.as_dict(x)))

    def energy_and_dEdg(self, x: State) -> tuple[Tensor, State]:
        """``(E (B,), dE/dg)`` sharing one evaluation of the activations and layer inputs."""
        d = self.as_dict(x)
        gs = self.ham.activations(d)
        I = self.ham.inputs(gs)
        E = self.ham.energy(d, gs)
        return E, State(x.s - I["xs"], x.v - I["xv"], x.c - I["xc"])

    # ---------------------------------------------------------------- dynamics
    def step(self, x: State, alpha: float) -> State:
        """One descent step ``x <- x - alpha dE/dg`` on all three layers."""
        d = self.dEdg(x)
        return State(x.s - alpha * d.s, x.v - alpha * d.v, x.c - alpha * d.c)

    def descend(self, x: State, steps: int, alpha: float, record_energy: bool = False) -> tuple[State, Tensor | None]:
        """``steps`` descent steps. Returns the final state and, if asked, the energies
        ``(steps + 1, B)`` before every step and after the last one."""
        if steps < 0:
            raise ValueError(f"steps={steps} must be >= 0.")
        energies = []
        for _ in range(steps):
            if record_energy:
                E, d = self.energy_and_dEdg(x)
                energies.append(E)
            else:
                d = self.dEdg(x)
            x = State(x.s - alpha * d.s, x.v - alpha * d.v, x.c - alpha * d.c)
        if record_energy:
            energies.append(self.energy(x))
            return x, torch.stack(energies)
        return x, None

    def denoise(self, v: Tensor, steps: int = 10, alpha: float = 0.1) -> Tensor:
        """Start from visible state ``v`` ``(B, n_v)`` (hidden at zero), descend, return ``g_v`` ``(B, n_v)``."""
        x, _ = self.descend(self.init_state(v), steps, alpha)
        return self.L_v.activation(x.v)

    def denoising_loss(
        self,
        clean: Tensor,
        sigma: float = 0.3,
        steps: int = 10,
        alpha: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """MSE between ``g_v`` after ``steps`` descent steps from ``clean + sigma * noise`` and
        ``clean`` (``(B, n_v)``, L2-normalised images); a scalar. A ``generator`` must live on
        ``clean``'s device."""
        self._check_visible(clean)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        out = self.denoise(clean + sigma * noise, steps, alpha)
        return (out - clean).pow(2).mean()

    def receptive_fields(self, layer: str = "s", sort: bool = True, centre: bool = True) -> Tensor:
        """Rows of ``xi_s`` or ``xi_c`` ``(n_hidden, n_v)``, each scaled to unit L2 norm.

        ``centre``: subtract each row's mean first. The LayerNorm activation ``g_v`` has zero mean,
        so a row's mean never reaches the hidden neuron, and its feedback shifts ``x_v`` uniformly,
        which ``g_v`` ignores too: the mean is invisible to the dynamics, and the training gradient
        has zero row means (the mean holds the 0.2 offset of the default initialisation).
        ``sort``: strongest (largest norm of the shown part) first.
        """
        if layer not in ("s", "c"):
            raise ValueError(f"layer={layer!r}: use 's' (xs-xv synapse) or 'c' (xv-xc synapse).")
        W = (self.xi_s if layer == "s" else self.xi_c).detach()
        if centre:
            W = W - W.mean(dim=1, keepdim=True)
        norms = W.norm(dim=1)
        if sort:
            order = norms.argsort(descending=True)
            W, norms = W[order], norms[order]
        return W / norms.clamp_min(1e-12)[:, None]


# -------------------------------------------------------------------- data
def prepare_images(images: Tensor) -> Tensor:
    """uint8 images ``(N, C, H, W)`` (or ``(N, H, W)``) -> float32 ``(N, C*H*W)``: scaled to
    [0, 1], flattened and L2-normalised (all-black images stay zero)."""
    if images.ndim not in (3, 4):
        raise ValueError(f"expected images of shape (N, C, H, W) or (N, H, W), got {tuple(images.shape)}.")
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    x = rearrange(x, "n ... -> n (...)")
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True)
class DenoisingConfig:
    """Sizes and hyper-parameters of a denoising run (defaults: the paper's)."""

    n_s: int = 900
    n_c: int = 900
    epochs: int = 100
    batch_size: int = 512
    lr: float = 1e-4
    sigma: float = 0.3
    steps: int = 10
    alpha: float = 0.1
    seed: int = 0

    @classmethod
    def paper(cls) -> "DenoisingConfig":
        """The paper's MNIST set-up: 900-784-900, 100 epochs, batch 512, Adam 1e-4, 10 steps, alpha 0.1."""
        return cls()

    @classmethod
    def quick(cls) -> "DenoisingConfig":
        """A CPU-sized run (seconds): small hidden layers, few epochs, a larger learning rate."""
        return cls(n_s=100, n_c=100, epochs=40, batch_size=128, lr=1e-2)

    @classmethod
    def for_mode(cls, quick: bool) -> "DenoisingConfig":
        """``quick()`` in quick mode, else ``paper()`` (the book passes :func:`hopfield_lab.quick`)."""
        return cls.quick() if quick else cls.paper()

    def replace(self, **changes) -> "DenoisingConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


def fit(
    model: EnergyMetaFormer,
    images: Tensor,
    config: DenoisingConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model`` by denoising on ``images`` ``(N, n_v)`` (from :func:`prepare_images`).

    The data are moved to the device once and shuffled there. Returns a history dict with
    ``loss`` (mean loss per epoch, list of floats), ``step_loss`` (every optimiser step) and
    ``config``. The model is left on ``device`` in eval mode.
    """
    config = config or DenoisingConfig.paper()
    if device is None:
        device = model.xi_s.device
    device = torch.device(device)
    if images.ndim != 2 or images.shape[1] != model.n_visible:
        raise ValueError(
            f"images must be (N, {model.n_visible}) flattened, L2-normalised vectors "
            f"(prepare_images); got {tuple(images.shape)}."
        )
    model.to(device).train()
    data = images.to(device=device, dtype=model.xi_s.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    N = data.shape[0]
    n_batches = math.ceil(N / config.batch_size)
    history: dict = {"loss": [], "step_loss": [], "config": config.as_dict()}
    from .runtime import progress_bar

    bar = progress_bar(range(config.epochs), enabled=progress, desc="denoising training")
    for _epoch in bar:
        perm = torch.randperm(N, generator=gen, device=device)
        total = torch.zeros((), device=device)
        for b in range(n_batches):
            batch = data[perm[b * config.batch_size : (b + 1) * config.batch_size]]
            loss = model.denoising_loss(batch, config.sigma, config.steps, config.alpha, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * batch.shape[0]
            history["step_loss"].append(loss.detach())
        epoch_loss = (total / N).item()
        history["loss"].append(epoch_loss)
        bar.set_postfix(loss=f"{epoch_loss:.5f}")
    history["step_loss"] = torch.stack(history["step_loss"]).cpu().tolist() if history["step_loss"] else []
    model.eval()
    return history


def denoising_flops(n_visible: int, n_s: int, n_c: int, steps: int) -> int:
    """Floating-point operations of one training image in :func:`fit` (forward and backward).

    Each descent step makes four matrix-vector products (``xi_s g_v``, ``xi_c g_v``,
    ``xi_s^T g_s``, ``xi_c^T g_c``) of ``2 n_v n`` FLOPs each (a multiply-add counts 2):
    ``4 n_v (n_s + n_c)`` FLOPs forward. Back-propagation costs about twice the forward pass, and
    element-wise work (ReLU, LayerNorm, Adam) is a few percent, left out. Total:
    ``3 * steps * 4 * n_v * (n_s + n_c)`` (about 1.7e8 for the paper's 900-784-900 and 10 steps).
    """
    for name, n in (("n_visible", n_visible), ("n_s", n_s), ("n_c", n_c), ("steps", steps)):
        if int(n) < 0:
            raise ValueError(f"{name}={n} must be >= 0.")
    return 3 * int(steps) * 4 * int(n_visible) * (int(n_s) + int(n_c))


@torch.no_grad()
def energy_descent(
    model: EnergyMetaFormer,
    n_states: int = 16,
    steps: int = 28,
    alpha: float = 0.1,
    scale: float = 10.0,
    seed: int = 0,
) -> Tensor:
    """Energies ``(steps + 1, n_states)`` along descent from random states ``scale * N(0, 1)``."""
    gen = torch.Generator().manual_seed(seed)
    x = model.random_state(n_states, scale=scale, generator=gen)
    _, E = model.descend(x, steps, alpha, record_energy=True)
    return E.cpu()


def mosaic(fields: Tensor, shape: tuple[int, int], ncols: int | None = None, pad: float = float("nan")) -> Tensor:
    """Tile ``fields`` ``(n, H*W)`` (or ``(n, H, W)``) into one image ``(rows*(H+1)-1, ncols*(W+1)-1)``
    with one-pixel separators filled with ``pad`` (NaN shows as blank in matplotlib)."""
    H, W = shape
    f = fields.detach().float().cpu().reshape(fields.shape[0], H, W)
    n = f.shape[0]
    ncols = ncols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / ncols)
    canvas = torch.full((rows * (H + 1) - 1, ncols * (W + 1) - 1), pad)
    for k in range(n):  # tiles, not neurons: at most a few hundred
        r, c = divmod(k, ncols)
        canvas[r * (H + 1) : r * (H + 1) + H, c * (W + 1) : c * (W + 1) + W] = f[k]
    return canvas
