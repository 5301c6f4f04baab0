"""Audit every figure a chapter draws, where its text is made, and record the result in the PNG.

Installed in the kernels of a book build (``tools/build_book.sh`` and the tests' render set
``IPYTHONDIR`` to a folder made by :func:`ipython_dir`, whose start-up file calls :func:`install`),
it wraps ``FigureCanvasBase.print_figure``, the one call through which every PNG of a figure is
written: the inline backend's ``display(fig)``, ``fig.savefig`` and each frame of a ``to_jshtml``
animation player. Before the PNG is written the figure is drawn once without rendering, and every
Text artist that draws (titles, axis labels, tick labels, legend entries, annotations, suptitles,
``fig.text``) is read:

* its font size in points: the smallest goes into the record;
* its string: TeX-style ``_`` or ``^`` outside matplotlib mathtext (``$...$``) is raw markup that
  the reader sees as such ("tau_s", "z^2"); every such string goes into the record.

The record is a PNG text chunk (key :data:`KEY`, JSON): ``min_font_pt``, ``dpi`` (pixels per inch
of this PNG), ``width_in`` (the figure's width), ``raw_tex`` (list of strings), ``smallest`` (the
text of the smallest size). ``tools/browser_check.py`` reads it back from the image a page shows
and turns points into CSS pixels at the page's real scale::

    css_px = min_font_pt * dpi / 72 * displayed_width_css / png_width_px

which holds whatever the figure size, dpi, ``bbox_inches="tight"`` cropping or retina doubling were.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

KEY = "hopfield_lab:figure"
_STATE = {"drawn": None, "busy": False}


def outside_mathtext(s: str) -> str:
    """The part of ``s`` that matplotlib shows as plain text: mathtext is the text between pairs of
    unescaped ``$`` (with an odd number of ``$`` the whole string is plain text)."""
    parts = re.split(r"(?<!\\)\$", s)
    if len(parts) < 3 or len(parts) % 2 == 0:
        return s
    return "".join(parts[0::2])


def raw_tex(s: str) -> bool:
    """True if ``s`` shows a TeX-style ``_`` or ``^`` as a plain character (outside ``$...$``)."""
    plain = outside_mathtext(s)
    return "_" in plain or "^" in plain


def audit_texts(texts) -> dict:
    """The record of a figure from the Text artists it drew: smallest size and raw TeX strings."""
    seen, raw, sizes = set(), [], []
    for t in texts:
        if id(t) in seen:
            continue
        seen.add(id(t))
        s = t.get_text()
        if not s.strip() or not t.get_visible():
            continue
        sizes.append((float(t.get_fontsize()), s))
        if not t.get_usetex() and raw_tex(s) and s not in raw:
            raw.append(s)
    rec = {"n_texts": len(sizes), "raw_tex": raw}
    if sizes:
        size, text = min(sizes, key=lambda p: p[0])
        rec.update(min_font_pt=round(size, 2), smallest=text[:60])
    return rec


def audit(fig) -> dict:
    """Draw ``fig`` without rendering and audit the Text artists that drew (tick labels of ticks
    outside the view, hidden texts and empty strings do not count)."""
    import matplotlib.text as mtext
    _patch_text_draw(mtext)
    drawn, _STATE["drawn"] = [], []
    try:
        fig.draw_without_rendering()
        drawn = _STATE["drawn"]
    finally:
        _STATE["drawn"] = None
    rec = audit_texts(drawn)
    rec["width_in"] = round(float(fig.get_figwidth()), 3)
    return rec


def _patch_text_draw(mtext) -> None:
    if getattr(mtext.Text.draw, "_hopfield_audit", False):
        return
    original = mtext.Text.draw

    def draw(self, renderer, *args, **kwargs):
        if _STATE["drawn"] is not None:
            _STATE["drawn"].append(self)
        return original(self, renderer, *args, **kwargs)

    draw._hopfield_audit = True
    mtext.Text.draw = draw


def _format(canvas, filename, kwargs) -> str:
    import matplotlib as mpl
    fmt = kwargs.get("format")
    if not fmt and isinstance(filename, (str, os.PathLike)):
        fmt = Path(filename).suffix[1:]
    return (fmt or mpl.rcParams["savefig.format"] or canvas.get_default_filetype()).lower()


def install() -> None:
    """Wrap ``FigureCanvasBase.print_figure`` so that every PNG carries its figure's record."""
    import matplotlib as mpl
    from matplotlib.backend_bases import FigureCanvasBase
    if getattr(FigureCanvasBase.print_figure, "_hopfield_audit", False):
        return
    original = FigureCanvasBase.print_figure

    def print_figure(self, filename, *args, **kwargs):
        if _STATE["busy"] or _format(self, filename, kwargs) != "png":
            return original(self, filename, *args, **kwargs)
        _STATE["busy"] = True
        try:
            fig = self.figure
            dpi = args[0] if args else kwargs.get("dpi")
            if dpi in (None, "figure"):
                dpi = mpl.rcParams["savefig.dpi"]
            if dpi == "figure":
                dpi = fig.dpi
            rec = audit(fig)
            rec["dpi"] = round(float(dpi), 3)
            metadata = dict(kwargs.get("metadata") or {})
            metadata[KEY] = json.dumps(rec, ensure_ascii=True)
            kwargs["metadata"] = metadata
        finally:
            _STATE["busy"] = False
        return original(self, filename, *args, **kwargs)

    print_figure._hopfield_audit = True
    FigureCanvasBase.print_figure = print_figure


def read_record(png: bytes) -> dict | None:
    """The record stored in a PNG by :func:`install`, or None (not a PNG, or drawn without it)."""
    import io
    if not png.startswith(b"\x89PNG"):
        return None
    from PIL import Image
    try:
        with Image.open(io.BytesIO(png)) as im:
            text = getattr(im, "text", {}) or {}
            raw = text.get(KEY)
            rec = json.loads(raw) if raw else None
            if rec is not None:
                rec["png_width_px"] = im.width
            return rec
    except (OSError, ValueError):
        return None


STARTUP = '''# made by tools/figure_audit.py: audit every figure this kernel draws (see its docstring)
import sys as _sys
_sys.path.insert(0, {tools!r})
import figure_audit as _figure_audit
_figure_audit.install()
del _sys, _figure_audit
'''


def ipython_dir(dest: Path) -> Path:
    """Write an IPython directory whose kernels install the audit at start-up; returns it (use it as
    ``IPYTHONDIR``)."""
    dest = Path(dest)
    startup = dest / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-hopfield-lab-figure-audit.py").write_text(STARTUP.format(tools=str(Path(__file__).resolve().parent)))
    return dest


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != "--ipython-dir":
        print("usage: python tools/figure_audit.py --ipython-dir DIR   (then export IPYTHONDIR=DIR)")
        sys.exit(2)
    print(ipython_dir(Path(sys.argv[2])))
