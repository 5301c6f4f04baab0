"""Group runs that differ only in their seed, and summarise each group: the one home of this for
the book (chapter 8's tables and figures) and the GPU suite (its ``summary.json``).

:func:`summarize_runs` reads the fields a :class:`~hopfield_lab.results.RunResult` says about
itself (``family``, ``lam``, ``n_iter``, ``init``, ``epochs``, ``model``, ``seed``, ...) from
``RunResult`` objects or their dicts alike, and gives per group the number of seeds, the mean, the
sample standard deviation and the Student-t interval of :mod:`hopfield_lab.stats`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from .. import stats

__all__ = ["DEFAULT_BY", "field_of", "summarize_runs", "find_group", "compare_groups", "group_name", "format_summary"]

DEFAULT_BY = ("family", "lam", "n_iter", "init")
"""What makes a configuration: runs equal in these fields are seeds of one configuration."""


def field_of(run: Any, name: str):
    """``run.name`` of a RunResult or ``run[name]`` of a result dict (None when absent); λ as a float."""
    v = run.get(name) if isinstance(run, dict) else getattr(run, name, None)
    if name == "lam" and v is not None:
        v = float(v)
    return v


def summarize_runs(results: Iterable, by: Sequence[str] = DEFAULT_BY, value: str = "test_acc",
                   confidence: float = stats.CONFIDENCE) -> list[dict]:
    """One dict per configuration (the runs equal in every field of ``by``), in order of first
    appearance:

    ``key`` (tuple of the ``by`` values) and each ``by`` field by name; ``n`` (runs), ``seeds``,
    ``values`` (``value`` of each run, same order), ``by_seed`` ({seed: value}, for paired
    comparisons), ``mean``, ``sd`` (sample, n − 1; NaN for one run), ``interval`` (a
    :class:`hopfield_lab.stats.Interval` of the mean, None for one run: one seed has no spread)
    and ``runs`` (the inputs).

    ``results``: RunResult objects or result dicts. Two runs of one configuration with the same
    seed are an error (two studies mixed: group them apart, e.g. add ``"epochs"`` to ``by``); so
    is a run without ``value`` (an unfinished run).
    """
    by = tuple(by)
    if not by:
        raise ValueError("by names at least one field, e.g. ('family', 'lam', 'n_iter', 'init')")
    groups: dict[tuple, dict] = {}
    for r in results:
        key = tuple(field_of(r, f) for f in by)
        v = field_of(r, value)
        seed = field_of(r, "seed")
        if v is None:
            raise ValueError(f"run {field_of(r, 'model')} seed {seed} has no {value!r} (did it finish?); "
                             "summarise finished runs only")
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"key": key, **dict(zip(by, key)), "seeds": [], "values": [], "by_seed": {}, "runs": []}
        if seed in g["by_seed"]:
            raise ValueError(f"two runs of {dict(zip(by, key))} with seed {seed}: they come from different "
                             "studies; group by more fields (e.g. 'epochs') or summarise one study at a time")
        g["seeds"].append(seed)
        g["values"].append(float(v))
        g["by_seed"][seed] = float(v)
        g["runs"].append(r)
    out = []
    for g in groups.values():
        vals = np.asarray(g["values"])
        g["n"] = int(vals.size)
        g["mean"] = float(vals.mean())
        g["sd"] = float(vals.std(ddof=1)) if vals.size > 1 else math.nan
        g["interval"] = stats.mean_interval(vals, confidence) if vals.size > 1 else None
        out.append(g)
    return out


def find_group(groups: Sequence[dict], **fields) -> dict:
    """The one group of :func:`summarize_runs` whose fields equal ``fields`` (λ compared as float);
    a ValueError says which fields matched none or several."""
    def match(g):
        return all((float(g.get(k)) if k == "lam" and g.get(k) is not None else g.get(k))
                   == (float(v) if k == "lam" and v is not None else v) for k, v in fields.items())

    found = [g for g in groups if match(g)]
    if len(found) != 1:
        raise ValueError(f"{len(found)} groups match {fields} (of {len(groups)}); name the configuration exactly")
    return found[0]


def compare_groups(a: dict, b: dict, paired: bool = True, confidence: float = stats.CONFIDENCE) -> stats.Interval:
    """``mean(a) − mean(b)`` of two groups of :func:`summarize_runs`: paired over their shared
    seeds (:func:`hopfield_lab.stats.paired_interval`) when ``paired`` and they share at least two,
    else Welch's interval for independent groups (:func:`hopfield_lab.stats.welch_interval`)."""
    if paired and len(set(a["by_seed"]) & set(b["by_seed"])) >= 2:
        return stats.paired_interval(a["by_seed"], b["by_seed"], confidence)
    return stats.welch_interval(a["values"], b["values"], confidence)


def group_name(g: dict) -> str:
    """A short name of a group: ``"asymmixer lam=0.01"``, ``"paramixer n_iter=2"``, ``"vanillamixer init=tied"``."""
    parts = [str(g.get("family") or g.get("model") or "?")]
    if g.get("lam") is not None:
        parts.append(f"lam={g['lam']:g}")
    if g.get("n_iter") not in (None, 1):
        parts.append(f"n_iter={g['n_iter']}")
    if g.get("init") not in (None, "random"):
        parts.append(f"init={g['init']}")
    return " ".join(parts)


def format_summary(groups: Sequence[dict], scale: float = 100.0, unit: str = "%") -> str:
    """A text table of :func:`summarize_runs` groups: name, n, mean, sd and the interval (values
    times ``scale``: percent by default)."""
    lines = [f"{'configuration':<34} {'n':>2} {'mean':>8} {'sd':>6}  95 % interval of the mean"]
    for g in groups:
        sd = "-" if math.isnan(g["sd"]) else f"{scale * g['sd']:.2f}"
        iv = g["interval"]
        ci = "- (one seed)" if iv is None else f"{scale * iv.low:.2f} to {scale * iv.high:.2f}{unit}"
        lines.append(f"{group_name(g):<34} {g['n']:>2} {scale * g['mean']:>7.2f}{unit} {sd:>6}  {ci}")
    return "\n".join(lines)
