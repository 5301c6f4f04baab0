"""Statistics of a few seeds, in one place: means with Student-t intervals, two-group and paired
comparisons, and a plain verdict (pure Python + numpy; no SciPy).

A seeded study has a handful of runs per configuration (3 or 5 seeds), so intervals use Student's
t distribution, not the normal one: with 3 seeds the 95 % interval is 4.30 standard errors wide
on either side, not 1.96.

* :func:`t_cdf`, :func:`t_quantile` -- Student's t distribution with any real ``df > 0``
  (through the regularised incomplete beta function; exact to ~1e-12).
* :func:`mean_interval` -- mean of ``n >= 2`` values with its t interval (:class:`Interval`).
* :func:`welch_interval` -- difference of two groups' means, ``mean(a) - mean(b)``, with Welch's
  interval (unequal variances; Welch--Satterthwaite degrees of freedom): for independent groups.
* :func:`paired_interval` -- mean of the per-seed differences ``a[s] - b[s]`` over the seeds the
  two share, with its t interval: for runs that share seeds (same data order and initial draw).
* :func:`verdict` -- ``"resolved"`` when an interval excludes 0, ``"not resolved"`` otherwise.

Every function refuses fewer than two values with a one-line ValueError (one seed has no spread,
so no interval).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["Interval", "t_cdf", "t_quantile", "mean_interval", "welch_interval", "paired_interval", "verdict",
           "CONFIDENCE"]

CONFIDENCE = 0.95
"""Default confidence level of every interval."""


# ------------------------------------------------------------------------------------ Student's t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _check_df(df) -> float:
    df = float(df)
    if not (math.isfinite(df) and df > 0):
        raise ValueError(f"degrees of freedom must be a finite number > 0, got {df!r}")
    return df


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (any real df > 0)."""
    df, t = _check_df(df), float(t)
    if math.isnan(t):
        raise ValueError("t is NaN")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))      # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom: t with t_cdf(t, df) = p.

    E.g. ``t_quantile(0.975, 2) = 4.3027``, ``t_quantile(0.975, 4) = 2.7764``; it tends to the
    normal 1.95996 as df grows. Solved by bisection on :func:`t_cdf` to ~1e-12."""
    df, p = _check_df(df), float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:                                        # bracket the root
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval ``[low, high]``.

    ``estimate`` is a mean (or a difference of means), ``se`` its standard error, ``df`` the t
    distribution's degrees of freedom, ``n`` the number of values (seeds; for a two-group
    comparison ``(n_a, n_b)``), ``confidence`` the level (0.95)."""

    estimate: float
    low: float
    high: float
    se: float
    df: float
    n: int | tuple[int, int]
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        """Half the interval's width (the ``±`` of ``estimate ± half_width``)."""
        return 0.5 * (self.high - self.low)

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0 (:func:`verdict`)."""
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """``"+9.8 ± 1.2 (95 % CI +8.6 to +11.0)"`` with values times ``scale`` (100: points)."""
        e, lo, hi, hw = (scale * v for v in (self.estimate, self.low, self.high, self.half_width))
        f = f"+.{digits}f"
        return (f"{e:{f}}{unit} ± {hw:.{digits}f}{unit} ({100 * self.confidence:g} % CI {lo:{f}} to {hi:{f}}{unit})")


def _values(values, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2:
        raise ValueError(f"{what}: an interval needs at least 2 values (seeds), got {v.size}; "
                         "one run has no spread: add seeds")
    if not np.isfinite(v).all():
        raise ValueError(f"{what}: values must be finite numbers, got {v.tolist()}")
    return v


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return c


def _interval(estimate: float, se: float, df: float, n, confidence: float) -> Interval:
    q = t_quantile(0.5 + confidence / 2.0, df)
    return Interval(float(estimate), float(estimate - q * se), float(estimate + q * se), float(se), float(df), n,
                    confidence)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` (n >= 2) with its Student-t interval: ``mean ± t_{n-1} · sd/√n``
    (``sd`` with n − 1)."""
    c = _check_confidence(confidence)
    v = _values(values, "mean_interval")
    return _interval(v.mean(), v.std(ddof=1) / math.sqrt(v.size), v.size - 1, int(v.size), c)


def welch_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """``mean(a) − mean(b)`` for two independent groups (each n >= 2) with Welch's interval:
    standard error ``sqrt(s_a²/n_a + s_b²/n_b)``, Welch–Satterthwaite degrees of freedom.

    When both groups have no spread at all the interval is the single point of the difference."""
    c = _check_confidence(confidence)
    a, b = _values(a, "welch_interval (first group)"), _values(b, "welch_interval (second group)")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        d = float(a.mean() - b.mean())
        return Interval(d, d, d, 0.0, math.inf, (int(a.size), int(b.size)), c)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return _interval(a.mean() - b.mean(), se, df, (int(a.size), int(b.size)), c)


def paired_interval(a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of the paired differences ``a[s] − b[s]`` over the seeds ``s`` both have, with its
    t interval (n − 1 degrees of freedom, n = shared seeds >= 2).

    ``a`` and ``b`` map seed -> value (e.g. test accuracy per seed). Seeds that only one side has
    are left out; fewer than two shared seeds is an error."""
    c = _check_confidence(confidence)
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        raise ValueError("paired_interval takes two {seed: value} mappings (the pairing is by seed)")
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError(f"paired_interval: the two groups share {len(shared)} seed(s) ({shared}); a paired "
                         "comparison needs at least 2 (use welch_interval for independent groups)")
    d = _values([float(a[s]) - float(b[s]) for s in shared], "paired_interval")
    return _interval(d.mean(), d.std(ddof=1) / math.sqrt(d.size), d.size - 1, int(d.size), c)


def verdict(interval: Interval) -> str:
    """``"resolved"`` when the interval excludes 0 (the data fix the sign of the difference at
    this confidence), ``"not resolved"`` when it contains 0."""
    return "resolved" if interval.resolved else "not resolved"
