"""Chapter 2 demo: one-step retrieval in a modern Hopfield network, and the role of β.

Stored patterns are handwritten digits (scikit-learn's bundled 8×8 digits, no download),
scaled to [−1, 1]. A query is a stored digit with its lower rows masked (set to 0, "unknown").
One update ``ξ_new = Xᵀ softmax(β X ξ)`` (:class:`~hopfield_lab.classical.ModernHopfieldNetwork`)
returns

* for small β the average of all stored digits (a global fixed point),
* for intermediate β a *metastable* average of the digits most similar to the query,
* for large β the cued digit itself.

:func:`retrieval_demo` computes one case, :func:`make_widget` is the ipywidgets demo whose
callback :func:`show_retrieval` draws and returns it, :func:`beta_player` is the static twin
(a ``to_jshtml`` player sweeping β).
"""
from __future__ import annotations

from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import viz
from ..classical import ModernHopfieldNetwork

__all__ = ["digit_patterns", "mask_rows", "retrieval_demo", "show_retrieval", "make_widget", "beta_player"]

SIDE = 8  # the digits are 8×8


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 8.0 - 1.0, d.target  # pixel values 0..16 → [−1, 1]


def digit_patterns(n_patterns: int, seed: int = 0, *, dtype: torch.dtype = torch.float64,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_patterns`` random digits (without replacement): patterns ``(P, 64)`` in [−1, 1] and
    labels ``(P,)``. The same ``seed`` gives the same digits."""
    x, y = _digits()
    if not 1 <= n_patterns <= len(x):
        raise ValueError(f"n_patterns must lie in [1, {len(x)}], got {n_patterns}.")
    idx = np.random.default_rng(seed).choice(len(x), n_patterns, replace=False)
    return (torch.tensor(x[idx], dtype=dtype, device=device),
            torch.tensor(y[idx], device=device))


def mask_rows(x: torch.Tensor, mask: float) -> torch.Tensor:
    """Set the lowest ``round(mask * 8)`` rows of 8×8 images ``(..., 64)`` to 0 (unknown)."""
    if not 0.0 <= mask <= 1.0:
        raise ValueError(f"mask must lie in [0, 1], got {mask}.")
    rows = int(round(mask * SIDE))
    out = x.clone().reshape(*x.shape[:-1], SIDE, SIDE)
    if rows:
        out[..., SIDE - rows :, :] = 0.0
    return out.reshape(x.shape)


def retrieval_demo(beta: float = 1.0, n_patterns: int = 30, mask: float = 0.5, seed: int = 0) -> dict:
    """Store ``n_patterns`` digits, query with digit 0 masked, apply one update.

    Returns a dict with ``patterns (P, 64)``, ``labels (P,)``, ``target_index`` (0),
    ``query (64,)``, ``retrieved (64,)``, ``weights (P,)`` (the softmax ``p``),
    ``effective_patterns`` (``1/Σp²``), ``argmax`` (the most weighted pattern),
    ``energy_before``/``energy_after`` (energy of the query and of the retrieved state),
    ``error`` (max |retrieved − target|).
    """
    x, labels = digit_patterns(n_patterns, seed)
    net = ModernHopfieldNetwork(x, beta=beta)
    query = mask_rows(x[0], mask)
    p = net.weights(query)
    new = p @ x
    return {
        "patterns": x,
        "labels": labels,
        "target_index": 0,
        "query": query,
        "retrieved": new,
        "weights": p,
        "effective_patterns": float(ModernHopfieldNetwork.effective_patterns(p)),
        "argmax": int(p.argmax()),
        "energy_before": float(net.energy(query)),
        "energy_after": float(net.energy(new)),
        "error": float((new - x[0]).abs().max()),
        "beta": beta,
    }


def _draw(fig, out: dict, axes=None):
    """Draw query / retrieved / target and the softmax weights into four axes."""
    if axes is None:
        gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 2.4])
        axes = [fig.add_subplot(gs[0, j]) for j in range(4)]
    imgs = []
    for ax, img, title in zip(axes[:3], (out["query"], out["retrieved"], out["patterns"][0]),
                              ("query (masked)", "one update", f"stored digit ({int(out['labels'][0])})")):
        imgs.append(ax.imshow(img.reshape(SIDE, SIDE).numpy(), cmap="gray_r", vmin=-1, vmax=1))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[3]
    p = out["weights"].numpy()
    colors = ["C3" if i == 0 else ("C0" if int(out["labels"][i]) == int(out["labels"][0]) else "0.6")
              for i in range(len(p))]
    bars = ax.bar(np.arange(len(p)), p, color=colors)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("stored pattern μ (red: cued, blue: same digit class)")
    ax.set_ylabel("softmax weight p_μ")
    ttl = ax.set_title("", fontsize=9)
    return axes, imgs, bars, ttl


def _title(out: dict) -> str:
    return f"β = {out['beta']:.3g}: effective number of patterns 1/Σp² = {out['effective_patterns']:.1f}"


def show_retrieval(log10_beta: float = 0.0, n_patterns: int = 30, mask: float = 0.5, seed: int = 0) -> dict:
    """The widget's callback: compute :func:`retrieval_demo` at ``β = 10**log10_beta``, draw, return it."""
    out = retrieval_demo(10.0**log10_beta, n_patterns, mask, seed)
    fig = plt.figure(figsize=(9.5, 2.6))
    *_, ttl = _draw(fig, out)
    ttl.set_text(_title(out))
    fig.tight_layout()
    plt.show()
    return out


def make_widget():
    """The chapter's interactive demo: sliders for log10 β, the number of stored digits, the
    masked fraction and the seed. Returns the ``ipywidgets.interactive`` (``.result``: last dict)."""
    import ipywidgets as w

    return w.interactive(
        show_retrieval,
        log10_beta=w.FloatSlider(value=0.0, min=-3.0, max=1.5, step=0.1, description="log10 β",
                                 continuous_update=False),
        n_patterns=w.IntSlider(value=30, min=2, max=200, description="patterns", continuous_update=False),
        mask=w.FloatSlider(value=0.5, min=0.0, max=0.75, step=0.125, description="mask",
                           readout_format=".0%", continuous_update=False),
        seed=w.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False),
    )


def beta_player(betas=None, n_patterns: int = 30, mask: float = 0.5, seed: int = 0, *, interval: int = 400):
    """Static twin of the widget: a jshtml player sweeping β (default: 21 values from 10⁻³ to 10^1.5)."""
    betas = list(np.logspace(-3, 1.5, 19)) if betas is None else list(betas)
    outs = [retrieval_demo(float(b), n_patterns, mask, seed) for b in betas]
    fig = plt.figure(figsize=(9.5, 2.6))
    axes, imgs, bars, ttl = _draw(fig, outs[0])
    fig.tight_layout()

    def update(i):
        o = outs[i]
        imgs[1].set_data(o["retrieved"].reshape(SIDE, SIDE).numpy())
        for b, h in zip(bars, o["weights"].numpy()):
            b.set_height(h)
        ttl.set_text(_title(o))

    return viz.animate(update, len(outs), fig, interval=interval)
