"""hopfield_lab.stats: Student-t quantiles against tabulated and closed-form values, intervals on
hand-computed cases, the paired/Welch comparisons and the verdict; n = 1 refused."""
import math

import numpy as np
import pytest

from hopfield_lab import stats

# two-sided 95 % critical values t_{0.975, df} (standard tables, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2)
TABLE = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836,
         9: 2.262157163, 10: 2.228138852, 20: 2.085963447, 30: 2.042272456}


@pytest.mark.parametrize("df,q", TABLE.items())
def test_t_quantile_matches_the_table(df, q):
    assert stats.t_quantile(0.975, df) == pytest.approx(q, abs=1e-8)
    assert stats.t_quantile(0.025, df) == pytest.approx(-q, abs=1e-8)


@pytest.mark.parametrize("p", [0.51, 0.6, 0.75, 0.9, 0.99, 0.999])
def test_t_quantile_matches_closed_forms(p):
    # df = 1 is the Cauchy distribution; df = 2 has q = (2p - 1) / sqrt(2 p (1 - p))
    assert stats.t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
    assert stats.t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)
    assert stats.t_quantile(p, 1e7) == pytest.approx(math.sqrt(2) * _erfinv(2 * p - 1), rel=1e-5)


def _erfinv(y):  # bisection on math.erf: the normal limit of t
    lo, hi = -6.0, 6.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


def test_t_cdf_is_symmetric_and_inverts_the_quantile():
    for df in (1, 2.5, 7, 40):
        for t in (0.0, 0.3, 1.7, 5.0):
            assert stats.t_cdf(t, df) + stats.t_cdf(-t, df) == pytest.approx(1.0, abs=1e-13)
        for p in (0.05, 0.5, 0.8):
            assert stats.t_cdf(stats.t_quantile(p, df), df) == pytest.approx(p, abs=1e-12)
    assert stats.t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-14)          # Cauchy: 1/2 + atan(1)/π
    assert stats.t_quantile(0.5, 3) == 0.0


def test_mean_interval_hand_computed():
    # 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); 95 %: 2 ± 4.302653/sqrt(3) = 2 ± 2.484138
    iv = stats.mean_interval([1.0, 2.0, 3.0])
    assert (iv.estimate, iv.df, iv.n) == (2.0, 2.0, 3)
    assert iv.se == pytest.approx(1 / math.sqrt(3))
    assert (iv.low, iv.high) == pytest.approx((2 - 2.4841377, 2 + 2.4841377), abs=1e-6)
    assert not iv.resolved and stats.verdict(iv) == "not resolved"
    # shifted away from 0 by more than the half-width: resolved
    iv = stats.mean_interval([4.0, 5.0, 6.0])
    assert iv.resolved and stats.verdict(iv) == "resolved" and iv.half_width == pytest.approx(2.4841377, abs=1e-6)
    assert "95 % CI" in iv.format()


def test_one_value_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 values"):
        stats.mean_interval([0.5])
    with pytest.raises(ValueError, match="at least 2 values"):
        stats.welch_interval([0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="share 1 seed"):
        stats.paired_interval({0: 0.5, 1: 0.6}, {0: 0.4, 2: 0.3})
    with pytest.raises(ValueError, match="finite"):
        stats.mean_interval([0.5, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        stats.mean_interval([0.5, 0.6], confidence=95)
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.t_quantile(0.9, 0)


def test_welch_interval_hand_computed_and_antisymmetric():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    # s_a²/n_a = 1/3, s_b²/n_b = (5/3)/4 = 5/12; se² = 3/4; df = (3/4)² / ((1/3)²/2 + (5/12)²/3) = 4.959184
    iv = stats.welch_interval(a, b)
    assert iv.estimate == -3.5 and iv.se == pytest.approx(math.sqrt(0.75))
    assert iv.df == pytest.approx(0.5625 / (1 / 18 + 25 / 432), rel=1e-12)
    assert iv.half_width == pytest.approx(stats.t_quantile(0.975, iv.df) * math.sqrt(0.75))
    assert iv.resolved
    rev = stats.welch_interval(b, a)                                  # swapping the groups flips the sign
    assert (rev.estimate, rev.low, rev.high) == pytest.approx((3.5, -iv.high, -iv.low))
    # equal groups: interval symmetric about 0, not resolved
    same = stats.welch_interval([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.estimate == 0 and same.low == pytest.approx(-same.high) and not same.resolved
    # equal sizes and variances: df = 2(n - 1), the pooled t test's
    assert stats.welch_interval([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]).df == pytest.approx(4.0)


def test_paired_interval_uses_shared_seeds_and_beats_welch_when_seeds_correlate():
    a = {0: 0.50, 1: 0.60, 2: 0.70, 9: 0.99}                    # seed 9 has no partner: left out
    b = {0: 0.45, 1: 0.56, 2: 0.64, 5: 0.10}
    iv = stats.paired_interval(a, b)
    d = np.array([0.05, 0.04, 0.06])
    assert iv.n == 3 and iv.df == 2 and iv.estimate == pytest.approx(d.mean())
    assert iv.se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert iv.resolved                                           # the seed effect cancels in the pairs ...
    assert not stats.welch_interval([0.5, 0.6, 0.7], [0.45, 0.56, 0.64]).resolved   # ... but not between groups
    with pytest.raises(ValueError, match="mappings"):
        stats.paired_interval([0.5, 0.6], [0.4, 0.5])
