"""Demos of chapter 5 (the Energy MetaFormer).

* :func:`load_images` -- the chapter's images (MNIST in full mode; offline data in quick mode).
* :func:`correlation` -- per-image Pearson correlation, the denoising score of the chapter.
* :func:`denoise_trajectory` -- noisy cue -> visible activation after every descent step, with energies.
* :func:`sigma_sweep`, :func:`denoising_examples` -- recall quality against the noise level, and
  a few recalled images at some noise levels; :func:`mean_image_correlation` and
  :func:`loss_references` -- what a network that recalls one prototype would score.
* Figures, each drawn from plain data so that the live run and the committed full-size run use the
  same function: :func:`plot_loss`, :func:`plot_fields` (receptive fields, also
  :func:`plot_receptive_fields`), :func:`plot_energy_descent`, :func:`plot_sigma_sweep`,
  :func:`plot_denoising_examples`.
* :func:`make_widget` -- the chapter's ipywidgets demo: noise level, number of steps, step size;
  :func:`descent_player` -- its static twin: a ``to_jshtml`` player over the descent steps.
* :func:`full_size_ch05_metaformer` -- the full-size study (MNIST, 900-784-900) of
  ``benchmarks/full_size.py``; :func:`load_full_size` reads its committed result;
  :func:`colab_t4_estimate` -- the expected full-mode training time on a Colab T4.
* :func:`check_energy_gradient` -- the check of the chapter's auto-checked coding exercise.

The model itself lives in :mod:`hopfield_lab.metaformer`; this module only runs and draws it.
"""
from __future__ import annotations

import base64
import math
import time
import zlib

import numpy as np
import torch
from torch import Tensor

from ... import metaformer as mf
from .. import viz

#: the committed full-size result (``hopfield_lab/results/full_size/``)
FULL_SIZE = "full_size/ch05_metaformer.json"
#: settings shared by the chapter's figures and the full-size study
SIGMAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)          # the noise sweep
EXAMPLE_SIGMAS = (0.1, 0.3, 0.5)                  # the denoising examples
DESCENT = {"n_states": 16, "steps": 28, "alpha": 0.5, "scale": 10.0, "seed": 1}   # energy from random states
#: the official notebook's set-up for the paper's Fig. 2b, 2c (``demo/demo_energymetaformer.ipynb`` of
#: github.com/Toshihiro-Ota/paramixer), in the words of :func:`settings_table`
OFFICIAL = {
    "data": "MNIST, 60,000 training images",
    "network": "900-784-900",
    "initial synapses": "0.02 N(0, 1)",
    "training": "Adam 1e-4, batch 512, 100 epochs (11,800 steps)",
    "denoising": "σ = 0.3, K = 10 steps of α = 0.1",
    "energy descent": "1 random state 10 N(0, 1), 28 updates of α = 0.5",
}
#: Colab's T4: FP32 peak 8.1 TFLOP/s (NVIDIA's data sheet); assumed to sustain half of it here
T4_PEAK_FLOPS = 8.1e12
T4_UTILISATION = 0.5


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
    final ``g_v`` with the clean image). Raises a one-line ValueError for a NaN/inf or negative
    ``sigma``, a step ``alpha`` that is not positive and finite, images with NaN/inf, or a descent
    that blows up.
    """
    if not (math.isfinite(float(sigma)) and sigma >= 0):
        raise ValueError(f"sigma (the noise level) must be a finite number >= 0, got {sigma!r}.")
    if not (math.isfinite(float(alpha)) and alpha > 0):
        raise ValueError(f"alpha (the descent step) must be a positive, finite number, got {alpha!r}; e.g. alpha=0.1.")
    if not bool(torch.isfinite(clean).all()):
        raise ValueError(f"the clean images hold {int((~torch.isfinite(clean)).sum())} NaN/inf values: "
                         "pass finite pixel values (e.g. images scaled to [0, 1]).")
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
    if not bool(torch.isfinite(frames[-1]).all()):
        raise ValueError(f"the descent blew up (NaN/inf states after {steps} steps of alpha={alpha:g}): "
                         "use a smaller alpha.")
    return {
        "noisy": noisy.cpu(),
        "frames": frames.cpu(),
        "energy": torch.stack(energies).cpu(),
        "corr_noisy": correlation(noisy, clean).cpu(),
        "corr_out": correlation(frames[-1], clean).cpu(),
    }


def sigma_sweep(model: mf.EnergyMetaFormer, clean: Tensor, sigmas=SIGMAS, steps: int = 10, alpha: float = 0.1,
                seed: int = 2) -> dict:
    """Mean correlation with the clean images ``(B, n_v)`` of the noisy cue and of the recall
    (``g_v`` after ``steps`` steps), for each noise level: ``{"sigmas", "r_cue", "r_recall"}``
    (lists of floats, one per sigma)."""
    trajs = [denoise_trajectory(model, clean, sigma=s, steps=steps, alpha=alpha, seed=seed) for s in sigmas]
    return {"sigmas": [float(s) for s in sigmas],
            "r_cue": [float(t["corr_noisy"].mean()) for t in trajs],
            "r_recall": [float(t["corr_out"].mean()) for t in trajs]}


def denoising_examples(model: mf.EnergyMetaFormer, clean: Tensor, sigmas=EXAMPLE_SIGMAS, steps: int = 10,
                       alpha: float = 0.1, seed: int = 2) -> dict:
    """Noisy cues and recalls of the images ``clean`` ``(n, n_v)`` at a few noise levels.

    Returns ``{"sigmas", "clean" (n, n_v), "noisy", "recall"}`` (lists over sigmas of ``(n, n_v)``:
    the cue and ``g_v`` after ``steps`` steps) and ``"r_cue"``, ``"r_recall"`` (lists over sigmas
    of ``(n,)`` correlations with the clean image)."""
    trajs = [denoise_trajectory(model, clean, sigma=s, steps=steps, alpha=alpha, seed=seed) for s in sigmas]
    return {"sigmas": [float(s) for s in sigmas], "clean": clean.detach().cpu(),
            "noisy": [t["noisy"] for t in trajs], "recall": [t["frames"][-1] for t in trajs],
            "r_cue": [t["corr_noisy"] for t in trajs], "r_recall": [t["corr_out"] for t in trajs]}


def mean_image_correlation(train: Tensor, test: Tensor) -> float:
    """Mean correlation of the average training image with each test image ``(N, n_v)``: the score
    of a network that recalls one prototype whatever the cue."""
    return float(correlation(train.mean(0, keepdim=True).expand_as(test), test).mean())


def loss_references(clean: Tensor) -> dict:
    """Two reference values of the denoising loss eq. (ch5-loss) on the images ``clean`` ``(N, n_v)``
    (L2-normalised): ``"perfect"``, a recall with correlation 1 with every image, and
    ``"mean_image"``, a recall equal to the images' average whatever the cue.

    With ``||g_v||^2 = D`` (LayerNorm, epsilon neglected) the loss of a recall with correlation
    ``r`` is ``1 + ||t||^2 / D - 2 r ||t - mean(t)|| / sqrt(D)``, averaged over the images."""
    D = clean.shape[1]
    centred_norm = (clean - clean.mean(1, keepdim=True)).norm(dim=1)
    r_mean = correlation(clean.mean(0, keepdim=True).expand_as(clean), clean)

    def loss(r):
        return float((1 + clean.pow(2).sum(1) / D - 2 * r * centred_norm / D ** 0.5).mean())

    return {"perfect": loss(1.0), "mean_image": loss(r_mean)}


# -------------------------------------------------------------------- figures
def plot_receptive_fields(model, shape: tuple[int, int], layer: str = "s", n: int = 100, ax=None,
                          title: str | None = None):
    """Mosaic of the ``n`` strongest receptive fields on a diverging colour map centred at zero.

    ``model``: an :class:`~hopfield_lab.metaformer.EnergyMetaFormer` (its rows of ``xi_s`` or
    ``xi_c``, centred and scaled to unit norm, strongest first) or the fields themselves
    ``(n_fields, H*W)``. Returns the axes' image."""
    import matplotlib.pyplot as plt

    fields = model.receptive_fields(layer) if isinstance(model, mf.EnergyMetaFormer) else torch.as_tensor(model)
    fields = fields[:n]
    tiles = mf.mosaic(fields, shape)
    lim = float(torch.nan_to_num(tiles).abs().max())
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(tiles.numpy(), cmap="seismic", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    name = r"$\xi_s$ ($x_s$–$x_v$)" if layer == "s" else r"$\xi_c$ ($x_v$–$x_c$)"
    ax.set_title(title or f"{len(fields)} strongest receptive fields\nof {name}", fontsize=10)
    return im


def plot_fields(fields_s: Tensor, fields_c: Tensor, shape: tuple[int, int], title: str, n: int = 64):
    """The ``n`` strongest receptive fields of both synapses side by side (each ``(n_hidden, H*W)``,
    centred, unit norm, strongest first, as :meth:`~hopfield_lab.metaformer.EnergyMetaFormer.receptive_fields`
    returns them). Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 4.3), constrained_layout=True)
    for ax, layer, f in zip(axes, ("s", "c"), (fields_s, fields_c)):
        im = plot_receptive_fields(f, shape, layer=layer, n=n, ax=ax)
    fig.colorbar(im, ax=axes, shrink=0.7, label="weight (row centred, unit L2 norm)")
    fig.suptitle(title, fontsize=11)
    return fig


def plot_loss(history: dict, ax, title: str) -> None:
    """Denoising loss per optimiser step and per epoch (``history`` from
    :func:`hopfield_lab.metaformer.fit`: ``"step_loss"``, ``"loss"``)."""
    steps, epochs = np.asarray(history["step_loss"]), np.asarray(history["loss"])
    per_epoch = len(steps) / max(len(epochs), 1)
    ax.plot(np.arange(len(steps)) / per_epoch, steps, lw=0.8, alpha=0.6, label="per batch")
    ax.plot(np.arange(1, len(epochs) + 1), epochs, "o-", ms=2, label="epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("denoising loss ℓ (MSE per pixel)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def plot_energy_descent(E, ax, title: str, alpha: float) -> None:
    """Energy ``(updates + 1, n_states)`` along descent from random states, one line per state and
    their mean."""
    E = np.asarray(E.numpy() if hasattr(E, "numpy") else E)
    ax.plot(E, color="C0", alpha=0.5, lw=1)
    ax.plot(E.mean(1), color="k", lw=2, label=f"mean of {E.shape[1]} random states")
    ax.set_xlabel(f"number of updates k\n(x ← x − α ∂E/∂g, α = {alpha:g})")
    ax.set_ylabel("energy E (dimensionless)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def plot_sigma_sweep(sweep: dict, r_mean: float, ax, title: str, sigma_train: float = 0.3,
                     steps: int = 10) -> None:
    """Mean correlation with the clean image of the cue and of the recall against the noise level
    (``sweep`` from :func:`sigma_sweep`), with the average training image's as a line."""
    ax.plot(sweep["sigmas"], sweep["r_cue"], "o-", label="noisy cue")
    ax.plot(sweep["sigmas"], sweep["r_recall"], "s-", label=f"$g_v$ after {steps} descent steps")
    ax.axhline(r_mean, color="gray", ls="--", label="average training image")
    ax.axvline(sigma_train, color="k", lw=0.8, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("noise level σ of the cue\n(per pixel, images of unit L2 norm)")
    ax.set_ylabel("mean correlation r with the clean image")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def plot_denoising_examples(ex: dict, shape: tuple[int, int], title: str):
    """Rows: the clean images, then for each noise level the cue and the recall (``ex`` from
    :func:`denoising_examples`), each image with its correlation r with the clean one. Returns
    the figure."""
    import matplotlib.pyplot as plt

    rows = [("clean", ex["clean"], None)]
    for s, noisy, rec, rc, rr in zip(ex["sigmas"], ex["noisy"], ex["recall"], ex["r_cue"], ex["r_recall"]):
        rows += [(f"cue σ = {s:g}", noisy, rc), (f"recall σ = {s:g}", rec, rr)]
    n = rows[0][1].shape[0]
    side = min(1.25, (viz.MAX_WIDTH_IN - 0.6) / n)
    fig, axes = plt.subplots(len(rows), n, figsize=(side * n + 0.6, (side + 0.05) * len(rows) + 0.3),
                             constrained_layout=True, squeeze=False)
    for r, (name, imgs, score) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.imshow(np.asarray(imgs[j]).reshape(shape), cmap="gray_r", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if score is not None:
                ax.set_title(f"r = {float(score[j]):.2f}", fontsize=8, pad=2)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _draw(fig, axes, clean, traj, shape, sigma, steps, alpha):
    n = clean.shape[0]
    rows = (("clean", clean), ("noisy cue", traj["noisy"]), (f"$g_v$ after\n{steps} steps", traj["frames"][-1]))
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
    fig.suptitle(f"Denoising by energy descent: σ = {sigma:g}, {steps} steps of α = {alpha:g}\n"
                 f"(r: correlation with the clean image)", fontsize=10)


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
            fig, axes = plt.subplots(3, n_show + 1, figsize=(viz.MAX_WIDTH_IN, 4.6),
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
              f"mean r = {float(corr[k]):.2f}\n(top: clean, bottom: $g_v$)" for k in range(steps + 1)]
    per_image = [f"clean {j + 1}" for j in range(n_show)] + [f"$g_v$ {j + 1}" for j in range(n_show)]
    alt = (f"Player over {steps} steps of energy descent from noisy cues (noise σ = {sigma:g}): the top row "
           f"shows {n_show} clean images, the bottom row the visible activation of the network, which starts "
           "as the noisy cue; the title gives, at each step, the mean energy and the mean correlation with "
           "the clean images.")
    html = viz.animate_images(frames, shape=shape, titles=per_image, frame_titles=titles, ncols=n_show,
                              interval=interval, vmin=None, vmax=None, alt=alt)
    return html, traj


def _training(config: mf.DenoisingConfig, n_images: int) -> str:
    steps = config.epochs * -(-n_images // config.batch_size)
    return f"Adam {config.lr:g}, batch {config.batch_size}, {config.epochs} epochs ({steps:,} steps)"


def settings_table(live: dict, full: dict) -> str:
    """A Markdown table of the set-ups: the official notebook's, this page's run and the committed
    full-size run. ``live``: ``{"config", "data", "n_train", "n_visible", "mode"}`` of the chapter's
    run; ``full``: :func:`load_full_size`."""
    fc = mf.DenoisingConfig(**full["settings"]["config"])
    init = "0.2 + 0.02 N(0, 1)"
    descent = (f"{DESCENT['n_states']} random states {DESCENT['scale']:g} N(0, 1), {DESCENT['steps']} updates "
               f"of α = {DESCENT['alpha']:g}")
    cols = {
        "official notebook (paper's Fig. 2b, 2c)": OFFICIAL,
        f"this page ({live['mode']} mode)": {
            "data": live["data"], "network": f"{live['config'].n_s}-{live['n_visible']}-{live['config'].n_c}",
            "initial synapses": init, "training": _training(live["config"], live["n_train"]),
            "denoising": f"σ = {live['config'].sigma:g}, K = {live['config'].steps} steps of α = {live['config'].alpha:g}",
            "energy descent": descent},
        "committed full-size run": {
            "data": full["settings"]["data"].split(";")[0] + f" ({full['n_test']:,} more held out)",
            "network": full["settings"]["network"], "initial synapses": init,
            "training": _training(fc, full["n_train"]),
            "denoising": f"σ = {fc.sigma:g}, K = {fc.steps} steps of α = {fc.alpha:g}", "energy descent": descent},
    }
    rows = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for key in OFFICIAL:
        rows.append(f"| {key} | " + " | ".join(c[key] for c in cols.values()) + " |")
    return "\n".join(rows)


def toy_denoising(config: mf.DenoisingConfig) -> tuple[float, float]:
    """The chapter's checked training run, in float64 so that its printed numbers hold on every
    machine: 64 noisy copies of 4 random 6x6 prototypes, a 20-36-20 network, 20 epochs of batch 16
    (80 Adam steps of learning rate 1e-2; ``config`` gives sigma, steps and alpha). Returns the
    denoising loss on fixed noise before and after training."""
    gen = torch.Generator().manual_seed(0)
    protos = torch.rand(4, 1, 6, 6, generator=gen)
    noisy = (protos.repeat(16, 1, 1, 1) + 0.05 * torch.randn(64, 1, 6, 6, generator=gen)).clamp(0, 1)
    toy = mf.prepare_images((noisy * 255).to(torch.uint8)).double()                   # (64, 36)
    net = mf.EnergyMetaFormer(36, 20, 20, generator=torch.Generator().manual_seed(0)).double()

    def loss() -> float:
        with torch.no_grad():
            return float(net.denoising_loss(toy, config.sigma, config.steps, config.alpha,
                                            generator=torch.Generator().manual_seed(5)))

    before = loss()
    mf.fit(net, toy, config.replace(n_s=20, n_c=20, epochs=20, batch_size=16, lr=1e-2), progress=False)
    return before, loss()


# -------------------------------------------------------------------- the full-size study
#: epochs of the committed full-size run (8,000 MNIST images, batch 512: 16 Adam steps per epoch);
#: chosen so that it fits in about an hour on one CPU core (measured first: 12 s of CPU time and
#: about 18 s of wall time per epoch on the shared 2-core machine of the README's row)
FULL_SIZE_EPOCHS = 200


def _pack(x: Tensor) -> dict:
    """Rows ``(n, D)`` as uint8 scaled between each row's min and max, zlib-compressed and
    base64-encoded (compact JSON; error at most 1/510 of a row's range)."""
    x = x.detach().to("cpu", torch.float32)
    lo, hi = x.min(dim=1).values, x.max(dim=1).values
    q = ((x - lo[:, None]) / (hi - lo).clamp_min(1e-12)[:, None] * 255).round().to(torch.uint8)
    return {"shape": list(x.shape), "lo": [float(f"{v:.6g}") for v in lo], "hi": [float(f"{v:.6g}") for v in hi],
            "uint8_zlib_base64": base64.b64encode(zlib.compress(q.numpy().tobytes(), 9)).decode("ascii")}


def _unpack(d: dict) -> Tensor:
    """Inverse of :func:`_pack`: float32 rows ``(n, D)``."""
    q = np.frombuffer(zlib.decompress(base64.b64decode(d["uint8_zlib_base64"])), dtype=np.uint8).reshape(d["shape"])
    lo, hi = torch.tensor(d["lo"])[:, None], torch.tensor(d["hi"])[:, None]
    return lo + torch.from_numpy(q.astype(np.float32)) / 255 * (hi - lo)


def _sig(values, digits: int = 6) -> list:
    """Floats (nested lists allowed) rounded to ``digits`` significant digits for a small JSON."""
    if isinstance(values, (list, tuple)):
        return [_sig(v, digits) for v in values]
    return float(f"{float(values):.{digits}g}")


def load_images(quick: bool | None = None, root=None, split: str = "train", max_images: int | None = None,
                verbose: bool = True, dataset: str | None = None):
    """Images for the Energy MetaFormer, flattened and normalised: ``(X (N, H*W), (H, W), description)``.

    Full mode: MNIST via torchvision (downloaded on first use). Quick mode: no download; the
    MNIST test images of the offline archive when ``root`` or ``$HOPFIELD_LAB_DATA`` holds
    ``mnist-test10k-png.tar.gz``, else scikit-learn's bundled 8x8 digits
    (:func:`hopfield_lab.data.quick_dataset` prints the choice). ``dataset`` names a data set of
    :data:`hopfield_lab.data.DATASETS` (e.g. ``"digits"``, ``"mnist-test10k"``) and overrides the
    mode's choice (never downloading in quick mode). ``max_images`` keeps the first
    ``max_images`` of the split. Prints the data used when ``verbose``.
    """
    from ...training import data as hl_data
    from ...runtime import quick as _quick

    quick = _quick() if quick is None else quick
    if dataset is not None:
        if str(dataset).lower() not in hl_data.DATASETS:
            raise ValueError(f"dataset={dataset!r} is not a named data set; use one of "
                             f"{', '.join(sorted(hl_data.DATASETS))} (or dataset=None for the mode's choice).")
        name = str(dataset).lower()
        imgs, _ = hl_data.load_dataset(name, split=split, root=root, download=not quick)
    elif quick:
        name = hl_data.quick_dataset("mnist", root=root, verbose=verbose)
        imgs, _ = hl_data.load_dataset(name, split=split, root=root, download=False)
    else:
        name = "mnist"
        try:
            imgs, _ = hl_data.load_dataset(name, split=split, root=root, download=True)
        except Exception as err:
            raise RuntimeError(
                "Full mode trains on MNIST, which could not be loaded or downloaded "
                f"({type(err).__name__}: {err}). Install torchvision and connect to the internet, "
                f"set {hl_data.DATA_ENV} to a folder with torchvision's MNIST files, or switch to "
                "quick mode (HOPFIELD_LAB_QUICK=1)."
            ) from err
    if imgs.ndim == 4 and imgs.shape[1] != 1:
        raise ValueError(f"{name!r} has {imgs.shape[1]} colour channels; the Energy MetaFormer's figures "
                         "expect grey-scale images (one channel): use 'mnist', 'mnist-test10k' or 'digits'.")
    if max_images is not None:
        imgs = imgs[:max_images]
    H, W = imgs.shape[-2:]
    desc = f"{name} {split} split, {imgs.shape[0]} images of {H}x{W} pixels"
    if verbose:
        print(f"data: {desc}")
    return mf.prepare_images(imgs), (int(H), int(W)), desc


def _archive_sha256(dataset: str) -> str | None:
    import hashlib

    from ...training import data as hd

    src = hd.find_archive(dataset)
    if src is None or not src.is_file():
        return None
    return hashlib.sha256(src.read_bytes()).hexdigest()


def full_size_ch05_metaformer(tiny: bool = False) -> tuple[dict, dict]:
    """The chapter's Energy MetaFormer at full size (900-784-900) trained on MNIST, on a CPU.

    Data: the 10,000 MNIST test images of the offline archive ``mnist-test10k-png.tar.gz``
    (registry entry ``"mnist-test10k"``: 8,000 for training, 2,000 held out), found through
    ``$HOPFIELD_LAB_DATA`` (:func:`hopfield_lab.data.find_archive`). Settings: the paper's
    (:meth:`~hopfield_lab.metaformer.DenoisingConfig.paper`) except ``FULL_SIZE_EPOCHS`` epochs of
    the 8,000 images. ``tiny``: scikit-learn's bundled 8x8 digits and a 32-64-32 network for two
    epochs (the code paths in seconds, no archive needed).

    Returns ``(data, settings)`` for ``benchmarks/full_size.py``: the training history, the 64
    strongest receptive fields of each synapse, the energy from random states (:data:`DESCENT`),
    the noise sweep (:data:`SIGMAS`) on the held-out images, denoising examples
    (:data:`EXAMPLE_SIGMAS`) and the measured training time per image.
    """
    if tiny:
        dataset, n_train, n_test = "digits", 256, 64
        config = mf.DenoisingConfig.quick().replace(n_s=32, n_c=32, epochs=2, batch_size=64)
    else:
        dataset, n_train, n_test = "mnist-test10k", None, None
        config = mf.DenoisingConfig.paper().replace(epochs=FULL_SIZE_EPOCHS)
    X, shape, desc = load_images(quick=True, split="train", dataset=dataset, max_images=n_train)
    X_test, _, desc_test = load_images(quick=True, split="test", dataset=dataset, max_images=n_test)
    model = mf.EnergyMetaFormer(X.shape[1], config.n_s, config.n_c, generator=torch.Generator().manual_seed(config.seed))
    wall, cpu = time.perf_counter(), time.process_time()
    history = mf.fit(model, X, config, device="cpu", progress=not tiny)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    passes = config.epochs * X.shape[0]
    flops = mf.denoising_flops(X.shape[1], config.n_s, config.n_c, config.steps)
    ex = denoising_examples(model, X_test[:8], EXAMPLE_SIGMAS, config.steps, config.alpha)
    data = {
        "shape": list(shape),
        "n_train": int(X.shape[0]),
        "n_test": int(X_test.shape[0]),
        "history": {"loss": _sig(history["loss"]), "step_loss": _sig(history["step_loss"])},
        "fields_s": _pack(model.receptive_fields("s")[:64]),
        "fields_c": _pack(model.receptive_fields("c")[:64]),
        "energy": _sig(mf.energy_descent(model, **DESCENT).T.tolist(), 7),    # (n_states, updates + 1)
        "sweep": {k: _sig(v) for k, v in sigma_sweep(model, X_test, SIGMAS, config.steps, config.alpha).items()},
        "r_mean": _sig(mean_image_correlation(X, X_test)),
        "loss_references": {k: _sig(v) for k, v in loss_references(X).items()},
        "examples": {"sigmas": ex["sigmas"], "clean": _pack(ex["clean"]),
                     "noisy": [_pack(t) for t in ex["noisy"]], "recall": [_pack(t) for t in ex["recall"]],
                     "r_cue": [_sig(t.tolist(), 4) for t in ex["r_cue"]],
                     "r_recall": [_sig(t.tolist(), 4) for t in ex["r_recall"]]},
        "timing": {"train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1), "image_passes": passes,
                   "flops_per_image": flops, "seconds_per_image": _sig(wall / passes, 4),
                   "flops_per_second": _sig(flops * passes / wall, 4)},
    }
    settings = {"dataset": dataset, "data": f"{desc}; held out: {desc_test}",
                "archive_sha256": _archive_sha256(dataset), "config": config.as_dict(),
                "network": f"{config.n_s}-{X.shape[1]}-{config.n_c}", "init": "0.2 + 0.02 N(0, 1) (library default)",
                "energy_descent": dict(DESCENT), "sigmas": list(SIGMAS), "example_sigmas": list(EXAMPLE_SIGMAS),
                "device": "cpu", "torch_threads": torch.get_num_threads()}
    return data, settings


def load_full_size(name: str = FULL_SIZE, path=None) -> dict:
    """The committed full-size result, ready to plot: the JSON's ``data`` with the images and fields
    as float tensors (``fields_s``, ``fields_c`` ``(64, H*W)``; ``examples`` as from
    :func:`denoising_examples`; ``energy`` ``(updates + 1, n_states)``), plus ``settings``,
    ``seconds`` and ``provenance``. ``path``: read that JSON file instead of the committed ``name``."""
    import json

    from ... import results

    if path is not None:
        with open(path) as fh:
            rec = json.load(fh)
    else:
        rec = results.load(name)
    d = dict(rec["data"])
    d["shape"] = tuple(d["shape"])
    d["fields_s"], d["fields_c"] = _unpack(d["fields_s"]), _unpack(d["fields_c"])
    d["energy"] = torch.tensor(d["energy"]).T
    e = d["examples"]
    d["examples"] = {"sigmas": e["sigmas"], "clean": _unpack(e["clean"]),
                     "noisy": [_unpack(t) for t in e["noisy"]], "recall": [_unpack(t) for t in e["recall"]],
                     "r_cue": [torch.tensor(t) for t in e["r_cue"]], "r_recall": [torch.tensor(t) for t in e["r_recall"]]}
    d.update(settings=rec["settings"], seconds=rec["seconds"], provenance=rec["provenance"])
    return d


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def colab_t4_estimate(config: mf.DenoisingConfig, n_images: int, n_visible: int, measured: dict) -> str:
    """One line: the expected time of :func:`~hopfield_lab.metaformer.fit` with ``config`` on
    ``n_images`` images on a Colab T4, labelled as an estimate.

    Derived from a measured run at the same sizes (``measured``: the ``timing`` of the committed
    full-size result, FLOP/s sustained on its CPU) and the ratio of that rate to a T4 that
    sustains :data:`T4_UTILISATION` of its FP32 peak :data:`T4_PEAK_FLOPS`."""
    flops = mf.denoising_flops(n_visible, config.n_s, config.n_c, config.steps)
    total = flops * n_images * config.epochs
    cpu_rate = float(measured["flops_per_second"])
    t4_rate = T4_PEAK_FLOPS * T4_UTILISATION
    return (f"Expected full-mode training time on a Colab T4: about {_duration(total / t4_rate)} (estimate: "
            f"{config.epochs} epochs x {n_images:,} images x {flops / 1e6:.0f} MFLOP = {total:.1e} FLOP; "
            f"the committed CPU run sustained {cpu_rate / 1e9:.3g} GFLOP/s at these sizes "
            f"({1e3 * float(measured['seconds_per_image']):.1f} ms per image), so {_duration(total / cpu_rate)} "
            f"there; a T4 at {T4_UTILISATION:.0%} of its {T4_PEAK_FLOPS / 1e12:.1f} TFLOP/s FP32 peak is "
            f"{t4_rate / cpu_rate:.0f}x faster).")


# -------------------------------------------------------------------- the auto-checked exercise
def check_energy_gradient(fn) -> None:
    """Check a reader's ``fn(x_s, x_v, x_c, xi_s, xi_c, eps)``: the closed-form gradient
    eq. (ch5-dEdg), returned as a tuple ``(dE/dg_s, dE/dg_v, dE/dg_c)``.

    States ``x_s (B, n_s)``, ``x_v (B, n_v)``, ``x_c (B, n_c)``; synapses ``xi_s (n_s, n_v)``,
    ``xi_c (n_c, n_v)``; ``eps`` the LayerNorm's epsilon. Compares with
    :meth:`~hopfield_lab.metaformer.EnergyMetaFormer.dEdg` on a random network and names typical
    mistakes. Prints one line (right, or what is wrong).
    """
    from ..exercises import assert_close, check, name_mistake

    def hint(got, want, variants, what):
        name_mistake(got, want, variants, what, atol=1e-8, rtol=1e-6)

    def test(f):
        gen = torch.Generator().manual_seed(0)
        eps = 0.3                                              # large enough to matter
        m = mf.EnergyMetaFormer(12, 7, 9, eps=eps, init_mean=0.0, init_std=0.5, generator=gen).double()
        x = m.random_state(5, scale=1.5, generator=gen)
        xi_s, xi_c = m.xi_s.detach().clone(), m.xi_c.detach().clone()
        want = m.dEdg(x)
        got = f(x.s.clone(), x.v.clone(), x.c.clone(), xi_s.clone(), xi_c.clone(), eps)
        if not (isinstance(got, (tuple, list)) and len(got) == 3):
            size = f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""
            raise AssertionError("return a tuple of three tensors (dE/dg_s, dE/dg_v, dE/dg_c), got "
                                 f"{type(got).__name__}{size}.")
        g = m.activations(x)
        xc = x.v - x.v.mean(-1, keepdim=True)
        gv_unbiased = xc / torch.sqrt(xc.var(-1, keepdim=True) + eps)
        gv_no_eps = xc / torch.sqrt(xc.pow(2).mean(-1, keepdim=True))
        names = ("dE/dg_s (shape (B, n_s))", "dE/dg_v (shape (B, n_v))", "dE/dg_c (shape (B, n_c))")
        states = "use the activations g = ReLU(x), LayerNorm(x) in the synaptic inputs, not the states x."
        hint(got[0], want.s, [(x.s + g.v @ xi_s.T, "wrong sign: ∂E/∂g is the state minus its input, x_s − ξ_s g_v."),
                              (x.s - x.v @ xi_s.T, states),
                              (x.s - gv_unbiased @ xi_s.T, "g_v uses the biased variance (the mean of the squared "
                                                           "deviations; torch.var divides by D − 1 unless unbiased=False)."),
                              (x.s - gv_no_eps @ xi_s.T, "ε is missing under the square root of g_v.")], names[0])
        hint(got[1], want.v, [(x.v + g.s @ xi_s + g.c @ xi_c, "wrong sign: ∂E/∂g_v = x_v − ξ_sᵀ g_s − ξ_cᵀ g_c."),
                              (x.v - g.s @ xi_s, "the feedback ξ_cᵀ g_c from the layer x_c is missing."),
                              (x.v - g.c @ xi_c, "the feedback ξ_sᵀ g_s from the layer x_s is missing."),
                              (x.v - x.s @ xi_s - x.c @ xi_c, states)], names[1])
        hint(got[2], want.c, [(x.c + g.v @ xi_c.T, "wrong sign: ∂E/∂g is the state minus its input, x_c − ξ_c g_v."),
                              (x.c - x.v @ xi_c.T, states)], names[2])
        for got_k, want_k, what in zip(got, want, names):
            assert_close(got_k, want_k, f"{what} for 5 states of a 7-12-9 network", atol=1e-8, rtol=1e-8)

    check("Closed-form energy gradient", test, fn)
