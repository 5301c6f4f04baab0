"""Write the chapter 1 letters, ``hopfield_lab/book/demos/letters16.txt``: A–Z as 16×16 bitmaps.

    python tools/make_letters.py            # (re)write the file
    python tools/make_letters.py --diff     # only say how many pixels a fresh rendering changes

Run once; the file is committed and ships with the library (package data), and
:func:`hopfield_lab.demos.hopfield.glyph_patterns` only reads it. Rendering at run time made the
bitmaps depend on the FreeType build bundled with matplotlib (0–33 of 256 pixels per letter
differ between matplotlib 3.10 and 3.11), so the letters a chapter picked, and every number
computed from them, changed with the reader's matplotlib. Rewriting the file changes chapter 1's
checked outputs and its text: rerun the chapter (``tools/nb.py refresh``) and read it again.

How the letters are drawn: DejaVu Sans Bold (shipped with matplotlib) at 4× the resolution, then
averaged down in 4×4 blocks; a pixel is ink (``#``, +1) when the average is darker than half.
"""
from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hopfield_lab.demos.letters import LETTERS_FILE, SIZE, format_letters, read_letters  # noqa: E402


def render(char: str, size: int = SIZE) -> np.ndarray:
    """``char`` drawn with matplotlib as a ``(size, size)`` bool array (True = ink)."""
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
    return a < 0.5


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--diff", action="store_true", help="compare a fresh rendering with the file, write nothing")
    args = ap.parse_args(argv)
    import matplotlib
    from matplotlib import ft2font

    fresh = {c: render(c) for c in string.ascii_uppercase}
    if args.diff:
        old = read_letters()
        changed = {c: int((old[c] != fresh[c]).sum()) for c in fresh}
        listed = ", ".join(f"{c} {n}" for c, n in changed.items() if n)
        print(f"pixels that differ from the committed letters: {listed or 'none'}")
        return 0
    note = (f"drawn by tools/make_letters.py with matplotlib {matplotlib.__version__} "
            f"(FreeType {ft2font.__freetype_version__}), DejaVu Sans Bold")
    LETTERS_FILE.write_text(format_letters(fresh, note))
    print(f"wrote {LETTERS_FILE.relative_to(ROOT)}: {len(fresh)} letters of {SIZE}×{SIZE} pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
