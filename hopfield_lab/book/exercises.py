"""Auto-checked coding exercises: a chapter's check cell runs the reader's function against known
answers and says, in one line, whether it is right and what is wrong.

A chapter defines the exercise as a code cell whose body sits between nbgrader's markers
(``### BEGIN SOLUTION`` / ``### END SOLUTION``: the book runs the reference solution, the student
notebook gets ``raise NotImplementedError`` instead), followed by a check cell such as
``demo.check_hebbian(hebbian)``. Each chapter's checks live in its demos module and are built
from the two helpers here::

    def check_hebbian(fn) -> None:
        def test(f):
            pats = ...
            assert_close(f(pats), hebbian_weights(pats), "W for 3 patterns of 8 neurons")
        return check("Hebbian weights", test, fn)

:func:`check` prints ``✔ <title>: correct.`` or ``✘ <title>: <what is wrong>`` and returns
None, so that the check cell shows that one line and nothing else (a returned bool would be
displayed as ``True`` under it). Tests read the printed line.

An autograder (nbgrader, see ``tools/nbgrader_export.py``) needs a test that *raises* on a wrong
answer: :func:`graded` runs a chapter's check so that, after printing the same line, a wrong
verdict raises :class:`ExerciseFailed` with that line as its message (so the feedback names the
mistake). The book's check cells keep the print-only protocol.
"""
from __future__ import annotations

import contextvars
from typing import Callable

import torch

__all__ = ["check", "graded", "ExerciseFailed", "assert_close", "name_mistake", "CORRECT", "WRONG"]

CORRECT = "✔"
WRONG = "✘"

# set by graded(): a list that check() appends its verdicts to (None: the book's print-only mode)
_GRADED: contextvars.ContextVar[list | None] = contextvars.ContextVar("hopfield_lab_graded", default=None)


class ExerciseFailed(AssertionError):
    """A graded check's verdict was not "correct"; the message is the verdict line."""


def check(title: str, test: Callable[[Callable], None], fn: Callable) -> None:
    """Run ``test(fn)`` and print one line: correct, not implemented yet, or what went wrong.

    ``test`` raises :class:`AssertionError` with a helpful message when ``fn`` is wrong. Any other
    exception raised by ``fn`` is reported with its type and message (never a traceback: the
    reader's code is what failed, and the line says where to look).
    """
    if not callable(fn):
        return _verdict(False, f"{WRONG} {title}: expected a function, got {type(fn).__name__}; "
                               "define it in the cell above.")
    try:
        test(fn)
    except NotImplementedError:
        line = (f"{WRONG} {title}: not implemented yet. Fill in the code cell above (replace the "
                "`raise NotImplementedError` line), run it, then run this cell again.")
    except AssertionError as err:
        line = f"{WRONG} {title}: not yet. {err}"
    except Exception as err:  # the reader's function crashed
        line = f"{WRONG} {title}: your function raised {type(err).__name__}: {err}"
    else:
        line = f"{CORRECT} {title}: correct."
    return _verdict(line.startswith(CORRECT), line)


def _verdict(ok: bool, line: str) -> None:
    """Print the verdict line; under :func:`graded`, record it and raise when it is not correct."""
    print(line)
    record = _GRADED.get()
    if record is not None:
        record.append(line)
        if not ok:
            raise ExerciseFailed(line)


def graded(check_fn: Callable[[Callable], None], fn: Callable) -> None:
    """Run a chapter's check, ``check_fn(fn)`` (e.g. ``demo.check_hebbian``), as an autograder test.

    Prints the check's verdict line as the book's check cell does, then raises
    :class:`ExerciseFailed` (an :class:`AssertionError`, whose message is that line: "✘ title:
    not yet. <the typical mistake>") unless the verdict is "correct". Raises :class:`RuntimeError`
    if ``check_fn`` gave no verdict, i.e. is not built on :func:`check`.
    """
    record: list[str] = []
    token = _GRADED.set(record)
    try:
        check_fn(fn)
    finally:
        _GRADED.reset(token)
    if not record:
        raise RuntimeError(f"{getattr(check_fn, '__name__', check_fn)!r} gave no verdict: graded() needs a "
                           "check built on hopfield_lab.exercises.check.")


def assert_close(got, want: torch.Tensor, what: str, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Raise an :class:`AssertionError` that says what differs: type, shape, or the largest error."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}.")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    g, w = got.detach().to("cpu", torch.float64), want.detach().to("cpu", torch.float64)
    if not torch.isfinite(g).all():
        raise AssertionError(f"{what}: the result contains NaN or inf.")
    err = (g - w).abs()
    bad = err > atol + rtol * w.abs()
    if bool(bad.any()):
        idx = tuple(int(i) for i in (bad.nonzero()[0]))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.numel()} entries differ, e.g. at index {idx}: "
            f"got {float(g[idx]):.6g}, expected {float(w[idx]):.6g}.")


def name_mistake(got, want: torch.Tensor, variants, what: str, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Raise an :class:`AssertionError` naming a typical mistake when ``got`` is not ``want`` but
    matches one of ``variants``, a list of ``(what a typical wrong answer returns, message)``.

    Does nothing when ``got`` is right, is not a finite tensor of ``want``'s shape, or matches no
    variant (then :func:`assert_close` says what differs). Use it before :func:`assert_close`.
    """
    if not (isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(want.shape)):
        return
    g, w = got.detach().to("cpu", torch.float64), want.detach().to("cpu", torch.float64)
    if not torch.isfinite(g).all() or torch.allclose(g, w, rtol=rtol, atol=atol):
        return
    for value, message in variants:
        if torch.allclose(g, value.detach().to("cpu", torch.float64), rtol=rtol, atol=atol):
            raise AssertionError(f"{what}: {message}")
