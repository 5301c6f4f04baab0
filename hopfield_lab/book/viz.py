"""Plotting helpers shared by the book's chapters.

Small on purpose:

* :func:`panels` -- a figure of ``n`` plot panels sized for the page column (two per row).
* :func:`pattern_grid` -- a grid of images (patterns, cues, recalls, receptive fields) with titles.
* :func:`animate` -- turn a drawing function into a JavaScript player (``to_jshtml``) that moves
  in the static HTML book; the figure is closed so the notebook does not show it twice.
* :func:`animate_images` -- the common case: a player over a sequence of image grids.
* :func:`connect` -- wire a chapter widget's controls to its drawing function.
* :func:`show_widget` -- display a widget live, or on the static pages a pointer to its twin.
* :func:`player` -- a ``FuncAnimation`` as an HTML player with a text alternative (``alt``).
* :func:`figure_problems` -- what keeps a figure from reading well in the book's column: wider
  than :data:`MAX_WIDTH_IN`, text smaller than :data:`MIN_FONT_PT`, raw TeX-style ``_``/``^``
  outside ``$...$`` mathtext.

Every figure of the book is sized for the page column (~750 CSS px at 100 dpi): at most
:data:`MAX_WIDTH_IN` inches wide, every text at least :data:`MIN_FONT_PT` points, so that it is
shown at its own scale and no text comes out under 11 px. Maths in figure text is mathtext
(``r"$\tau_s = \tau_c$"``), never ``"τ_s"``.

Example::

    from hopfield_lab import viz
    fig = viz.pattern_grid(patterns, shape=(16, 16), titles=["A", "B"], suptitle="Stored patterns")
    player = viz.animate_images(frames, shape=(16, 16), frame_titles=[f"update {t}" for t in ts],
                                alt="A noisy letter turns into the stored one, update by update.")
    player  # last expression of a cell: the player is displayed

Images may be torch tensors (any device) or NumPy arrays, either ``(K, H, W)`` or flat
``(K, H*W)`` with ``shape=(H, W)``. ±1 patterns show as black (+1) on white (−1) with the default
``cmap="gray_r"``.
"""
from __future__ import annotations

import html as _html
import math
import re
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["panels", "pattern_grid", "animate", "animate_images", "as_images", "show_widget", "player",
           "figure_problems", "MAX_WIDTH_IN", "MIN_FONT_PT"]

#: widest figure (inches) that the page column shows at its own scale (~750 CSS px at 100 dpi)
MAX_WIDTH_IN = 7.5
#: smallest text (points) in a figure: 8 pt is 11 CSS px at the column's scale
MIN_FONT_PT = 8.0
# mathtext: $...$ not preceded by a backslash
_MATH = re.compile(r"(?<!\\)\$.*?(?<!\\)\$", re.S)


def as_images(images, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Convert images to a NumPy array ``(K, H, W)``.

    Args:
        images: tensor or array ``(K, H, W)``, ``(H, W)`` (one image), or flat ``(K, H*W)`` /
            ``(H*W,)`` together with ``shape=(H, W)``.
        shape: ``(H, W)`` for flat images.
    """
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    a = np.asarray(images, dtype=float)
    if shape is not None:
        h, w = shape
        if a.shape[-1] != h * w:
            raise ValueError(f"flat images have {a.shape[-1]} pixels, but shape={shape} needs {h * w}.")
        a = a.reshape(-1, h, w)
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(
            f"images must be (K, H, W), (H, W), or flat (K, H*W) with shape=(H, W); got array of shape {a.shape}."
        )
    return a


def panels(n: int, *, ncols: int = 2, row_height: float = 2.9, width: float = MAX_WIDTH_IN,
           sharex: bool = False, sharey: bool = False, **figure_kw):
    """A figure of ``n`` plot panels for the page column: ``ncols`` panels per row (the last
    panel of a short last row spans what is left of it), ``width`` inches wide (at most
    :data:`MAX_WIDTH_IN`), ``row_height`` inches per row, constrained layout.

    Three panels become two rows (two side by side, the third across the page), so that each
    is wide enough for its labels at the book's 8-pt minimum.

    Returns ``(fig, axes)``: ``axes`` is a NumPy array of ``n`` axes (row by row).
    """
    if n < 1 or ncols < 1:
        raise ValueError(f"panels needs n ≥ 1 and ncols ≥ 1, got n={n}, ncols={ncols}.")
    if width > MAX_WIDTH_IN:
        raise ValueError(f"width={width} in is wider than the page column ({MAX_WIDTH_IN} in): "
                         "make more rows (ncols) instead.")
    ncols = min(ncols, n)
    rows = math.ceil(n / ncols)
    fig = plt.figure(figsize=(width, row_height * rows), layout="constrained", **figure_kw)
    gs = fig.add_gridspec(rows, ncols)
    axes = []
    for i in range(n):
        r, c = divmod(i, ncols)
        last_short = i == n - 1 and c < ncols - 1
        share = {"sharex": axes[0] if sharex and axes else None, "sharey": axes[0] if sharey and axes else None}
        axes.append(fig.add_subplot(gs[r, c:] if last_short else gs[r, c], **share))
    return fig, np.array(axes, dtype=object)


def _grid(k: int, ncols: int | None) -> tuple[int, int]:
    ncols = ncols or min(k, 8)
    return math.ceil(k / ncols), ncols


def pattern_grid(
    images,
    *,
    shape: tuple[int, int] | None = None,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    suptitle: str | None = None,
    cmap: str = "gray_r",
    vmin: float | None = None,
    vmax: float | None = None,
    size: float = 1.4,
    ax=None,
):
    """Show images in a grid with one title each; returns the figure.

    Args:
        images: ``(K, H, W)`` or flat ``(K, H*W)`` with ``shape``; tensors are moved to the CPU.
        shape: ``(H, W)`` for flat images.
        titles: one short title per image (e.g. ``"cue, 20 % noise"``).
        ncols: images per row (default ``min(K, 8)``).
        suptitle: a title for the whole figure.
        cmap, vmin, vmax: colour map and range (default: the images' own min/max, symmetric
            ``[−1, 1]`` for ±1 patterns).
        size: inches per image (at most :data:`MAX_WIDTH_IN` / ``ncols``, so that the grid fits the
            page column).
        ax: optional array of axes to draw into (then no new figure is made, the layout is
            left to the caller, and the figure (or subfigure) holding the axes is returned).
    """
    a = as_images(images, shape)
    k = len(a)
    if titles is not None and len(titles) != k:
        raise ValueError(f"got {len(titles)} titles for {k} images.")
    if vmin is None and vmax is None and np.isin(a, (-1.0, 1.0)).all():
        vmin, vmax = -1.0, 1.0
    rows, cols = _grid(k, ncols)
    size = min(size, MAX_WIDTH_IN / cols)
    if ax is None:
        fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.35 if suptitle else 0)),
                                 squeeze=False)
    else:
        axes = np.asarray(ax).reshape(rows, cols)
        fig = axes.flat[0].figure
    for j, axj in enumerate(axes.flat):
        axj.set_xticks([])
        axj.set_yticks([])
        if j >= k:
            axj.axis("off")
            continue
        axj.imshow(a[j], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None:
            axj.set_title(titles[j], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    if ax is None:  # a figure we made: lay it out; given axes belong to the caller's layout
        fig.tight_layout()
    return fig


def animate(update: Callable[[int], object], n_frames: int, fig, *, alt: str, interval: int = 200,
            default_mode: str = "once", dpi: float | None = 100):
    """A JavaScript animation player (``FuncAnimation(...).to_jshtml()``) for the static book.

    Args:
        update: ``update(i)`` redraws ``fig`` for frame ``i`` (``0 <= i < n_frames``).
        n_frames: number of frames.
        fig: the matplotlib figure that ``update`` draws into; it is closed afterwards so the
            notebook shows only the player.
        alt: the player's text alternative: what the animation shows (see :func:`player`).
        interval: milliseconds between frames.
        default_mode: ``"once"``, ``"loop"`` or ``"reflect"``.
        dpi: resolution of the embedded frames; ``None`` keeps the figure's own. 100 dpi puts a
            :data:`MAX_WIDTH_IN`-inch figure at the column's own scale (8 pt = 11 CSS px); lower
            makes the page smaller but the text too small to read.
    Returns:
        ``IPython.display.HTML``: the player; display it (last expression of a cell).
    """
    from matplotlib import animation

    try:
        if n_frames < 1:
            raise ValueError(f"n_frames must be ≥ 1, got {n_frames}.")
        _check_alt(alt)
    except ValueError:
        plt.close(fig)
        raise
    if dpi is not None:
        fig.set_dpi(dpi)
    anim = animation.FuncAnimation(fig, update, frames=n_frames, interval=interval, blit=False)
    return player(anim, alt, default_mode=default_mode)


def animate_images(
    frames,
    *,
    alt: str,
    shape: tuple[int, int] | None = None,
    titles: Sequence[str] | None = None,
    frame_titles: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = "gray_r",
    vmin: float | None = None,
    vmax: float | None = None,
    size: float = 1.6,
    interval: int = 200,
    default_mode: str = "once",
    dpi: float | None = 100,
):
    """A player over a sequence of image grids.

    Args:
        frames: ``(T, K, H, W)`` or flat ``(T, K, H*W)`` with ``shape`` (``K`` images per frame;
            ``(T, H, W)`` is one image per frame). Tensors or arrays.
        titles: a title per image position (``K``), fixed across frames.
        frame_titles: a figure title per frame (``T``), e.g. ``"after 64 updates, E = −41.3"``.
        alt: the player's text alternative (see :func:`player`).
        Other arguments as in :func:`pattern_grid` and :func:`animate`.
    Returns:
        ``IPython.display.HTML``.
    """
    _check_alt(alt)
    if hasattr(frames, "detach"):
        frames = frames.detach().float().cpu().numpy()
    f = np.asarray(frames, dtype=float)
    if shape is not None:
        f = f.reshape(f.shape[0], -1, shape[0] * shape[1]).reshape(f.shape[0], -1, *shape)
    elif f.ndim == 3:
        f = f[:, None]
    if f.ndim != 4:
        raise ValueError(f"frames must be (T, K, H, W) or (T, K, H*W) with shape=(H, W); got {f.shape}.")
    t, k = f.shape[:2]
    if frame_titles is not None and len(frame_titles) != t:
        raise ValueError(f"got {len(frame_titles)} frame titles for {t} frames.")
    if vmin is None and vmax is None:
        vmin, vmax = (-1.0, 1.0) if np.isin(f, (-1.0, 1.0)).all() else (float(f.min()), float(f.max()))
    fig = pattern_grid(f[0], titles=titles, ncols=ncols, cmap=cmap, vmin=vmin, vmax=vmax, size=size,
                       suptitle=frame_titles[0] if frame_titles else None)
    ims = [ax.images[0] for ax in fig.axes if ax.images]

    def update(i):
        for j, im in enumerate(ims):
            im.set_data(f[i, j])
        if frame_titles:
            fig._suptitle.set_text(frame_titles[i])
        return ims

    return animate(update, t, fig, alt=alt, interval=interval, default_mode=default_mode, dpi=dpi)


def connect(box, controls: dict, update: Callable[..., object]):
    """Wire an ipywidgets demo: re-run ``update`` whenever a control's value changes, expose it
    as ``box.update`` (so tests can drive the demo without a browser), draw once, return ``box``."""
    for c in controls.values():
        c.observe(update, names="value")
    box.update = update
    update()
    return box


def show_widget(widget, twin: str = "the animation below") -> None:
    """Display an interactive widget; on the book's static pages, a pointer to its static twin.

    A widget needs a running kernel: on the rendered HTML page (built with
    :func:`hopfield_lab.runtime.static_build` true) its output would be an empty box, so the page
    says instead where the same sweep is shown statically (``twin``) and how to run it live.
    """
    from IPython.display import Markdown, display

    from ..runtime import static_build

    if static_build():
        display(Markdown(
            f"*Interactive demo:* run this notebook (the Colab badge at the top, or Jupyter) to move "
            f"the sliders. On this static page, {twin} shows the same sweep."))
    else:
        display(widget)



def figure_problems(fig) -> list[str]:
    """What keeps ``fig`` from reading well in the book's column, one line per problem (empty:
    fine): wider than :data:`MAX_WIDTH_IN` inches, a visible text (title, label, tick label,
    legend, annotation) smaller than :data:`MIN_FONT_PT` points, or raw TeX-style ``_``/``^``
    outside ``$...$`` (write ``r"$\\tau_v$"``, not ``"τ_v"``). The figure is drawn first, so that
    tick labels exist."""
    from matplotlib.text import Text

    out = []
    w, _ = fig.get_size_inches()
    if w > MAX_WIDTH_IN + 1e-6:
        out.append(f"figure is {w:.2f} in wide (at most {MAX_WIDTH_IN} in: the page column)")
    fig.canvas.draw()
    seen = set()
    for t in fig.findobj(Text):
        s = t.get_text()
        if not s.strip() or not t.get_visible() or id(t) in seen:
            continue
        seen.add(id(t))
        if t.get_fontsize() < MIN_FONT_PT - 1e-6:
            out.append(f"text {s!r} is {t.get_fontsize():.1f} pt (at least {MIN_FONT_PT:g} pt)")
        if re.search(r"[_^]", _MATH.sub("", s)):
            out.append(f"text {s!r} has raw TeX-style _ or ^ outside $...$ (use mathtext, r\"$x_i$\")")
    return out


def _check_alt(alt) -> None:
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("alt is empty: say in a sentence what the animation shows (it is the text "
                         "alternative of the player, read out to readers who cannot see it).")


def player(anim, alt: str, *, default_mode: str = "once"):
    """A matplotlib ``FuncAnimation`` as an HTML player (``to_jshtml``) with a text alternative.

    Args:
        anim: the animation (its figure is closed afterwards).
        alt: what the animation shows, in a sentence or two (what moves, along which axis,
            what to notice). It becomes the ``alt`` of the player's frame image and the
            ``aria-label`` of the player, for readers who cannot see it.
        default_mode: ``"once"``, ``"loop"`` or ``"reflect"``.
    Returns:
        ``IPython.display.HTML``.
    """
    from IPython.display import HTML

    _check_alt(alt)
    try:
        html = anim.to_jshtml(default_mode=default_mode)
    finally:
        plt.close(anim._fig)
    return HTML(player_html(html, alt))


def player_html(jshtml: str, alt: str) -> str:
    """Give a ``to_jshtml`` player a text alternative: ``alt`` on its frame image and an
    ``aria-label`` (``role="figure"``) on a ``<div class="hl-player">`` around it."""
    _check_alt(alt)
    if '<img id="_anim_img' not in jshtml:
        raise ValueError("not a matplotlib to_jshtml player: no <img id=\"_anim_img...\"> frame in the HTML.")
    a = _html.escape(" ".join(alt.split()), quote=True)
    jshtml = jshtml.replace('<img id="_anim_img', f'<img alt="{a}" id="_anim_img', 1)
    return f'<div class="hl-player" role="figure" aria-label="{a}">\n{jshtml}\n</div>'
