"""Chapter 1 demo: recall in a binary Hopfield network storing letter glyphs.

* :func:`glyph_patterns` draws letters as ±1 images (DejaVu Sans Bold, shipped with matplotlib,
  so no data files are needed); :func:`pick_uncorrelated` chooses weakly overlapping ones.
* :func:`recall_demo` is the computation behind the widget: store the first ``n_patterns`` letters,
  corrupt the first one, run asynchronous updates, report overlaps and the energy trace.
* :func:`make_widget` is the ipywidgets demo (sliders: noise level, number of stored letters,
  seed); its callback :func:`show_recall` draws and returns what :func:`recall_demo` computed.
* :func:`recall_player` is the static twin: a ``to_jshtml`` player of the same recall.
"""
from __future__ import annotations

import string
from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import viz
from ..classical import HopfieldNetwork, corrupt, overlap

__all__ = ["DEFAULT_LETTERS", "glyph_patterns", "pick_uncorrelated", "recall_demo", "show_recall",
           "make_widget", "recall_player"]

#: Eight capital letters with small mutual overlaps; ``pick_uncorrelated`` over A–Z starting from
#: "H" chooses them (a test checks it).
DEFAULT_LETTERS = "HTWCAMVK"


@lru_cache(maxsize=256)
def _glyph(char: str, size: int) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = 4  # render at 4× and average down: anti-aliasing decides the edge pixels
    fig = Figure(figsize=(1, 1), dpi=size * scale)
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, char, ha="center", va="center_baseline", fontsize=72 * 1.15,
             family="DejaVu Sans", weight="bold")
    fig.canvas.draw()
    a = np.asarray(fig.canvas.buffer_rgba())[..., 0].astype(float) / 255.0
    a = a.reshape(size, scale, size, scale).mean(axis=(1, 3))
    return np.where(a < 0.5, 1.0, -1.0).ravel()  # ink = +1, paper = −1


def glyph_patterns(chars: str = DEFAULT_LETTERS, size: int = 16, *, device=None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Letters drawn as ±1 images: ``(len(chars), size*size)``, ink = +1, paper = −1."""
    if not chars:
        raise ValueError("chars must contain at least one character.")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}.")
    return torch.tensor(np.stack([_glyph(c, size) for c in chars]), dtype=dtype, device=device)


def pick_uncorrelated(patterns: torch.Tensor, k: int, first: int = 0) -> list[int]:
    """Greedily choose ``k`` rows of ``patterns (P, N)`` with small mutual overlaps.

    Starts from row ``first`` and repeatedly adds the row whose largest ``|overlap|`` with the
    rows chosen so far is smallest. Returns the chosen row indices.
    """
    if not 1 <= k <= len(patterns):
        raise ValueError(f"k must lie in [1, {len(patterns)}], got {k}.")
    o = (patterns @ patterns.T).abs() / patterns.shape[-1]
    chosen = [first]
    while len(chosen) < k:
        rest = [i for i in range(len(patterns)) if i not in chosen]
        chosen.append(min(rest, key=lambda i: float(o[i, chosen].max())))
    return chosen


def recall_demo(noise: float = 0.2, n_patterns: int = 4, seed: int = 0, *,
                letters: str = DEFAULT_LETTERS, size: int = 16, record_every: int | None = None) -> dict:
    """Store the first ``n_patterns`` letters, cue the first with ``noise`` of its pixels flipped,
    and run asynchronous updates to a fixed point.

    Returns a dict with ``patterns (n_patterns, N)``, ``cue (N,)``, ``recalled (N,)``,
    ``overlap_cue`` and ``overlap_final`` (with the cued letter), ``overlaps_final`` (with each
    stored letter), ``energy`` (trace, one entry per recorded point), ``updates``, ``converged``,
    ``success`` (recalled exactly) and ``result`` (the :class:`~hopfield_lab.classical.RunResult`).
    """
    if not 1 <= n_patterns <= len(letters):
        raise ValueError(f"n_patterns must lie in [1, {len(letters)}] (one per letter in {letters!r}), got {n_patterns}.")
    pats = glyph_patterns(letters[:n_patterns], size)
    g = torch.Generator().manual_seed(seed)
    cue = corrupt(pats[:1], noise, generator=g)
    net = HopfieldNetwork(pats)
    res = net.run(cue, generator=g, record_every=record_every or pats.shape[1] // 8)
    final = res.state[0]
    return {
        "patterns": pats,
        "cue": cue[0],
        "recalled": final,
        "overlap_cue": float(overlap(cue[0], pats[0])),
        "overlap_final": float(overlap(final, pats[0])),
        "overlaps_final": (pats @ final / pats.shape[1]).tolist(),
        "energy": res.energy[:, 0].tolist(),
        "updates": res.updates,
        "converged": res.converged,
        "success": bool(torch.equal(final, pats[0])),
        "result": res,
        "size": size,
    }


def show_recall(noise: float = 0.2, n_patterns: int = 4, seed: int = 0) -> dict:
    """The widget's callback: compute :func:`recall_demo`, draw it, return its dict."""
    out = recall_demo(noise, n_patterns, seed)
    size = out["size"]
    fig = plt.figure(figsize=(9, 2.6))
    gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 2.2])
    for j, (img, title) in enumerate([
        (out["patterns"][0], "stored letter"),
        (out["cue"], f"cue: {noise:.0%} flipped\nm = {out['overlap_cue']:.2f}"),
        (out["recalled"], f"recalled\nm = {out['overlap_final']:.2f}"),
    ]):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(img.reshape(size, size).numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(gs[0, 3])
    ax.plot(out["updates"], out["energy"], marker=".")
    ax.set_xlabel("single-neuron updates")
    ax.set_ylabel("energy E (dimensionless)")
    ax.set_title(f"{n_patterns} letters stored: " + ("recalled" if out["success"] else "not recalled"), fontsize=9)
    fig.tight_layout()
    plt.show()
    return out


def make_widget():
    """The chapter's interactive demo: sliders for the noise level, the number of stored letters
    and the seed; redraws :func:`show_recall`. Returns the ``ipywidgets.interactive`` object
    (its ``.result`` holds the last dict computed)."""
    import ipywidgets as w

    return w.interactive(
        show_recall,
        noise=w.FloatSlider(value=0.2, min=0.0, max=0.5, step=0.05, description="noise",
                            readout_format=".0%", continuous_update=False),
        n_patterns=w.IntSlider(value=4, min=1, max=len(DEFAULT_LETTERS), description="letters",
                               continuous_update=False),
        seed=w.IntSlider(value=0, min=0, max=9, description="seed", continuous_update=False),
    )


def recall_player(noise: float = 0.25, n_patterns: int = 4, seed: int = 0, *, record_every: int = 16,
                  interval: int = 150):
    """Static twin of the widget: a jshtml player of the recall, one frame every ``record_every``
    single-neuron updates, with the energy trace drawn up to the current frame."""
    out = recall_demo(noise, n_patterns, seed, record_every=record_every)
    res, size = out["result"], out["size"]
    frames = res.frames[:, 0].reshape(-1, size, size).numpy()
    energy, updates = np.array(out["energy"]), np.array(out["updates"])
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [1, 1.8]})
    im = a0.imshow(frames[0], cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    a0.set_xticks([])
    a0.set_yticks([])
    title = a0.set_title("")
    a1.plot(updates, energy, color="0.8")
    (line,) = a1.plot(updates[:1], energy[:1], marker=".", color="C0")
    a1.set_xlabel("single-neuron updates")
    a1.set_ylabel("energy E (dimensionless)")
    a1.set_title(f"asynchronous recall, {n_patterns} letters stored, {noise:.0%} noise", fontsize=9)
    fig.tight_layout()
    pats = out["patterns"]

    def update(i):
        im.set_data(frames[i])
        m = float((torch.from_numpy(frames[i]).flatten().float() @ pats[0]) / pats.shape[1])
        title.set_text(f"{updates[i]} updates, m = {m:.2f}")
        line.set_data(updates[: i + 1], energy[: i + 1])

    return viz.animate(update, len(frames), fig, interval=interval)
