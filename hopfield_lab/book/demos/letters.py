"""Chapter 1's letters as data: A–Z as 16×16 bitmaps in ``letters16.txt`` (package data).

The file is plain text, one block per letter: a line with the letter, then 16 rows of 16
characters, ``#`` for ink and ``.`` for paper; lines starting with ``#`` followed by a space are
comments. It was written once by ``tools/make_letters.py`` (which says how the letters were drawn)
and is only read here, so the patterns, and every number a chapter computes from them, are the
same with every matplotlib, FreeType and font on every machine.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["LETTERS_FILE", "SIZE", "INK", "PAPER", "read_letters", "format_letters"]

LETTERS_FILE = Path(__file__).with_name("letters16.txt")
SIZE = 16
INK, PAPER = "#", "."


def _parse(text: str, source: str) -> dict[str, np.ndarray]:
    lines = [line.rstrip("\n") for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("# ")]
    if len(lines) % (SIZE + 1):
        raise ValueError(f"{source}: expected blocks of 1 + {SIZE} lines (a letter, then its rows), "
                         f"got {len(lines)} non-comment lines; rewrite it with tools/make_letters.py.")
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(lines), SIZE + 1):
        name, rows = lines[start], lines[start + 1: start + 1 + SIZE]
        if len(name) != 1 or name in out:
            raise ValueError(f"{source}: line {name!r} should name one new character; "
                             "rewrite the file with tools/make_letters.py.")
        bad = [r for r in rows if len(r) != SIZE or set(r) - {INK, PAPER}]
        if bad:
            raise ValueError(f"{source}: letter {name!r} has a row {bad[0]!r} that is not {SIZE} "
                             f"characters of {INK!r} and {PAPER!r}; rewrite it with tools/make_letters.py.")
        out[name] = np.array([[ch == INK for ch in r] for r in rows], dtype=bool)
    return out


@lru_cache(maxsize=1)
def read_letters() -> dict[str, np.ndarray]:
    """The shipped letters: ``{character: (16, 16) bool array}``, True = ink."""
    return _parse(LETTERS_FILE.read_text(encoding="utf-8"), str(LETTERS_FILE.name))


def format_letters(letters: dict[str, np.ndarray], note: str) -> str:
    """The text of ``letters16.txt`` for ``{character: (16, 16) bool array}``; ``note`` says how
    they were made (one comment line)."""
    head = [f"# Chapter 1's letters: {SIZE}x{SIZE} bitmaps, '{INK}' = ink (+1), '{PAPER}' = paper (-1).",
            f"# {note}.",
            "# Do not edit by hand: tools/make_letters.py writes this file (see its docstring).", ""]
    body = []
    for name, a in letters.items():
        if a.shape != (SIZE, SIZE):
            raise ValueError(f"letter {name!r} has shape {a.shape}, expected ({SIZE}, {SIZE}).")
        body += [name, *("".join(INK if v else PAPER for v in row) for row in a), ""]
    text = "\n".join(head + body)
    _parse(text, "format_letters")  # what we write must read back
    return text
