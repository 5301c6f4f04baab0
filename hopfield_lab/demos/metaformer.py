"""Demos of chapter 5 (the Energy MetaFormer).

* :func:`correlation` -- per-image Pearson correlation, the denoising score of the chapter.
* :func:`denoise_trajectory` -- noisy cue -> visible activation after every descent step, with energies.
* :func:`plot_receptive_fields` -- the strongest receptive fields of a synapse as a mosaic.
* :func:`make_widget` -- the chapter's ipywidgets demo: noise level, number of steps, step size.
* :func:`descent_player` -- its static twin: a ``to_jshtml`` player over the descent steps.

The model itself lives in :mod:`hopfield_lab.metaformer`; this module only runs and draws it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import metaformer as mf
from .. import viz


def correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation between matching rows of ``a`` and ``b`` ``(B, D)`` -> ``(B,)``.

    The LayerNorm activation is centred and scale-free, so this (not the raw MSE) says how much of
    an image it shows: 1 = the same picture up to brightness and contrast."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)


@torch.no_grad()
def denoise_trajectory(model: mf.EnergyMetaFormer, clean: Tensor, sigma: float = 0.3, steps: int = 10,
                       alpha: float = 0.1, seed: int = 0) -> dict:
    """Add noise ``sigma`` to ``clean`` ``(B, n_v)`` and descend ``steps`` steps of size ``alpha``.

    Returns a dict: ``noisy`` ``(B, n_v)``, ``frames`` ``(steps + 1, B, n_v)`` (visible activation
    ``g_v`` before the first and after every step), ``energy`` ``(steps + 1, B)``,
    ``corr_noisy`` and ``corr_out`` ``(B,)`` (:func:`correlation` of the noisy cue and of the
    final ``g_v`` with the clean image).
    """
    dev = model.xi_s.device
    clean = clean.to(dev, model.xi_s.dtype)
    gen = torch.Generator().manual_seed(seed)
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen, dtype=clean.dtype).to(dev)
    x = model.init_state(noisy)
    frames, energies = [model.L_v.activation(x.v)], [model.energy(x)]
    for _ in range(steps):
        x = model.step(x, alpha)
        frames.append(model.L_v.activation(x.v))
        energies.append(model.energy(x))
    frames = torch.stack(frames)
    return {
        "noisy": noisy.cpu(),
        "frames": frames.cpu(),
        "energy": torch.stack(energies).cpu(),
        "corr_noisy": correlation(noisy, clean).cpu(),
        "corr_out": correlation(frames[-1], clean).cpu(),
    }


def plot_receptive_fields(model: mf.EnergyMetaFormer, shape: tuple[int, int], layer: str = "s", n: int = 100,
                          ax=None, title: str | None = None):
    """Mosaic of the ``n`` strongest receptive fields (rows of ``xi_s`` or ``xi_c``, each scaled to
    unit norm) on a diverging colour map centred at zero. Returns the axes' image."""
    import matplotlib.pyplot as plt

    fields = model.receptive_fields(layer)[:n]
    tiles = mf.mosaic(fields, shape)
    lim = float(torch.nan_to_num(tiles).abs().max())
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(tiles.numpy(), cmap="seismic", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    name = "ξ_s (x_s–x_v)" if layer == "s" else "ξ_c (x_v–x_c)"
    ax.set_title(title or f"{len(fields)} strongest receptive fields of {name}")
    return im


def _draw(fig, axes, clean, traj, shape, sigma, steps, alpha):
    n = clean.shape[0]
    rows = (("clean", clean), ("noisy cue", traj["noisy"]), (f"g_v after {steps} steps", traj["frames"][-1]))
    for r, (name, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.clear()
            ax.imshow(imgs[j].reshape(shape).numpy(), cmap="gray_r", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 2:
                ax.set_title(f"r = {float(traj['corr_out'][j]):.2f}", fontsize=9)
            if r == 1:
                ax.set_title(f"r = {float(traj['corr_noisy'][j]):.2f}", fontsize=9)
    axE = axes[0, n]
    axE.clear()
    E = traj["energy"].numpy()
    axE.plot(range(E.shape[0]), E, color="C0", alpha=0.7)
    axE.set_xlabel("descent step k")
    axE.set_ylabel("energy E (dimensionless)")
    axE.set_title("energy along the descent", fontsize=9)
    for r in (1, 2):
        axes[r, n].axis("off")
    fig.suptitle(f"Denoising by energy descent: σ = {sigma:g}, {steps} steps of α = {alpha:g} "
                 f"(r: correlation with the clean image)")


def make_widget(model: mf.EnergyMetaFormer, clean: Tensor, shape: tuple[int, int], n_show: int = 6, seed: int = 0):
    """The chapter's interactive demo: noise level σ, number of descent steps K and step size α.

    ``clean``: images ``(B, n_v)`` (from :func:`hopfield_lab.metaformer.prepare_images`); the first
    ``n_show`` are shown. Returns an ``ipywidgets.VBox`` with attributes ``controls`` (the
    sliders by name), ``update()`` (the callback, run on every change) and ``last`` (the
    :func:`denoise_trajectory` dict of the latest drawing plus ``sigma``, ``steps``, ``alpha``).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    clean = clean[:n_show].detach().cpu()
    controls = {
        "sigma": w.FloatSlider(value=0.3, min=0.0, max=0.8, step=0.05, description="noise σ"),
        "steps": w.IntSlider(value=10, min=0, max=40, description="steps K"),
        "alpha": w.FloatLogSlider(value=0.1, base=10, min=-2, max=0, step=0.1, description="step α"),
    }
    out = w.Output()
    box = w.VBox([w.HBox(list(controls.values())), out])
    box.controls = controls
    box.last = None

    def update(*_):
        sigma, steps, alpha = controls["sigma"].value, controls["steps"].value, controls["alpha"].value
        traj = denoise_trajectory(model, clean, sigma, steps, alpha, seed=seed)
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(3, n_show + 1, figsize=(1.5 * n_show + 3.5, 5.2),
                                     gridspec_kw={"width_ratios": [1] * n_show + [2.4]}, constrained_layout=True)
            _draw(fig, axes, clean, traj, shape, sigma, steps, alpha)
            plt.show()
            plt.close(fig)
        box.last = dict(traj, sigma=sigma, steps=steps, alpha=alpha)

    return viz.connect(box, controls, update)


def descent_player(model: mf.EnergyMetaFormer, clean: Tensor, shape: tuple[int, int], sigma: float = 0.3,
                   steps: int = 10, alpha: float = 0.1, n_show: int = 6, seed: int = 0, interval: int = 400):
    """Static twin of :func:`make_widget`: a JavaScript player over the descent steps (frame k shows
    the visible activation after k steps, the figure title the mean energy and correlation).

    Returns ``(IPython.display.HTML, trajectory dict)``."""
    clean = clean[:n_show].detach().cpu()
    traj = denoise_trajectory(model, clean, sigma, steps, alpha, seed=seed)
    frames = torch.cat([clean[None].expand(steps + 1, -1, -1), traj["frames"]], dim=1)  # (T, 2n, n_v)
    corr = torch.stack([correlation(f, clean).mean() for f in traj["frames"]])
    titles = [f"step {k}/{steps}: mean E = {float(traj['energy'][k].mean()):.2f}, "
              f"mean r = {float(corr[k]):.2f}  (top: clean, bottom: g_v)" for k in range(steps + 1)]
    per_image = [f"clean {j + 1}" for j in range(n_show)] + [f"g_v {j + 1}" for j in range(n_show)]
    html = viz.animate_images(frames, shape=shape, titles=per_image, frame_titles=titles, ncols=n_show,
                              interval=interval, vmin=None, vmax=None)
    return html, traj
