"""Tests of the chapter 2 demos (hopfield_lab.demos.dense_memory): the widget's callback and its
static twins, the capacity-versus-size study behind the chapter's live and full-size figures, and
the check of the auto-checked coding exercise."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab.classical import ModernHopfieldNetwork, capacity_curve, random_patterns  # noqa: E402
from hopfield_lab.demos import dense_memory as dm  # noqa: E402
from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_dense_memory_widget_callback():
    w = dm.make_widget()
    sliders = {c.description: c for c in w.children if hasattr(c, "description")}
    sliders["patterns"].value = 30
    sliders["log10 β"].value = -3.0  # β → 0: the global average of all stored patterns
    r = w.result
    x = r["patterns"]
    assert r["effective_patterns"] == pytest.approx(30, rel=0.02)
    torch.testing.assert_close(r["retrieved"], x.mean(0), atol=1e-2, rtol=0)
    sliders["log10 β"].value = 1.0  # large β: the cued pattern itself, in one step
    r = w.result
    assert r["effective_patterns"] < 1.05
    assert r["argmax"] == r["target_index"]
    assert float((r["retrieved"] - x[r["target_index"]]).abs().max()) < 0.05
    # energy went down in the step and the callback's numbers match the library's
    assert r["energy_after"] <= r["energy_before"] + 1e-9
    direct = dm.retrieval_demo(beta=10.0, n_patterns=30, mask=sliders["mask"].value, seed=0)
    torch.testing.assert_close(direct["retrieved"], r["retrieved"])


def test_dense_memory_metastable_between_limits():
    """Effective number of patterns falls monotonically from P to 1 as β grows."""
    eff = [dm.retrieval_demo(beta=b, n_patterns=30, mask=0.5, seed=0)["effective_patterns"]
           for b in (1e-3, 0.1, 0.3, 1.0, 10.0)]
    assert all(a >= b - 1e-6 for a, b in zip(eff, eff[1:])), eff
    assert eff[0] > 29 and eff[-1] < 1.05 and 1.5 < max(e for e in eff if e < 29)


def test_dense_memory_player():
    html = dm.beta_player(betas=[0.01, 1.0, 10.0], n_patterns=20)
    assert html.data.count("data:image/png") >= 3


def test_beta_sweep_class_weight():
    sw = dm.beta_sweep([1e-3, 0.4, 30.0])
    out = dm.retrieval_demo(0.4)
    same = out["labels"] == out["labels"][0]
    assert sw["class_weight"][1] == pytest.approx(float(out["weights"][same].sum()))
    # β → 0: uniform weights, so the class gets its share of the digits; β large: all on the cued digit
    assert sw["class_weight"][0] == pytest.approx(sw["n_class"] / 30, abs=1e-3)
    assert sw["target_weight"][2] > 0.999 and sw["class_weight"][2] >= sw["target_weight"][2]
    fig = dm.plot_beta_sweep(sw)
    assert len(fig.axes) == 3


# ------------------------------------------------------------------ capacity versus size
def test_modern_overlap_is_one_step_retrieval():
    # few patterns: the cued pattern dominates, overlap ~1; many: averaging lowers it
    assert dm.modern_overlap(32, 4, trials=2) > 0.999
    assert dm.modern_overlap(8, 200, trials=2) < 0.9
    # the same numbers as the library's update, written out
    g = torch.Generator().manual_seed(0)
    x = random_patterns(10, 16, generator=g, dtype=torch.float64)
    new = ModernHopfieldNetwork(x, beta=1.0).update(x)
    assert dm.modern_overlap(16, 10, trials=1, cues_per_trial=10) == pytest.approx(float((new * x).sum()) / 160)


def test_largest_k_brackets_the_threshold():
    k = dm.largest_k("z^3", 24, trials=2, cues=10)
    ok = lambda kk: capacity_curve(24, [kk], model="dense", F="poly", n=3, trials=2, cues_per_trial=10,
                                   seed=0).overlap[0] >= 0.99
    assert k >= 2 and ok(k)
    # the failure above it lies within 5 % (or the next integer)
    above = max(k + 1, math.ceil(k * 1.05))
    assert not all(ok(kk) for kk in range(k + 1, above + 1))
    with pytest.raises(ValueError, match="unknown memory"):
        dm.largest_k("z^5", 16)
    with pytest.raises(ValueError, match="raise k_max"):
        dm.largest_k("modern", 24, k_max=64)


def test_scaling_study_slopes_and_plot():
    st = dm.scaling_study({"z^3": [16, 24, 32], "modern": [6, 8, 10]}, trials=2, cues=10)
    poly, expo = st["curves"]
    assert poly["slope"] == pytest.approx(np.polyfit(np.log([16, 24, 32]), np.log(poly["kmax"]), 1)[0])
    assert expo["slope"] == pytest.approx(np.polyfit([6, 8, 10], np.log(expo["kmax"]), 1)[0])
    assert poly["kmax"] == sorted(poly["kmax"]) and expo["kmax"] == sorted(expo["kmax"])
    a0, a1 = dm.plot_scaling(st, title=" (test)")
    assert [ln.get_label() for ln in a0.get_lines()][0].startswith("$F = z^3$: slope")
    assert a1.get_lines()[0].get_label().startswith("modern, one update")


def test_scaling_study_same_for_one_and_two_threads():
    """The chapter prints the fitted slopes in a checked cell: the K found must not depend on the
    thread count (dense memories decide from exact integers; the modern network's overlaps are
    float sums, and this checks that their rounding does not move K)."""
    sizes = {"z^3": [24, 32], "exp": [8, 10, 12], "modern": [8, 12, 16]}
    before = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            runs.append(dm.scaling_study(sizes, trials=2, cues=10))
    finally:
        torch.set_num_threads(before)
    assert runs[0] == runs[1]


def test_full_size_capacity_tiny():
    data, settings = dm.full_size_capacity(tiny=True)
    assert [c["label"] for c in data["curves"]] == list(settings["sizes"])
    assert all(len(c["kmax"]) == len(c["neurons"]) for c in data["curves"])


def test_figures_of_the_binary_models():
    g = torch.Generator().manual_seed(0)
    from hopfield_lab.classical import DenseAssociativeMemory
    pats = random_patterns(10, 20, generator=g)
    runs = {("poly", 3): DenseAssociativeMemory(pats, F="poly", n=3).run(pats[:4], generator=g, record_every=5)}
    assert len(dm.plot_descent(runs).axes[0].get_lines()) == 1
    cur = {("exp", 1): capacity_curve(16, [2, 8], model="dense", F="exp", trials=1)}
    ax = dm.plot_recall_vs_load(cur, 16, 0.1).axes[0]
    assert np.allclose(ax.get_lines()[0].get_ydata(), cur[("exp", 1)].overlap)
    angles = torch.tensor([0.0, 45.0, 200.0], dtype=torch.float64).deg2rad()
    P2 = torch.stack([angles.cos(), angles.sin()], -1)  # the chapter's three patterns
    _, n_min = dm.plot_landscapes(P2, (0.5, 4.0, 20.0))
    assert n_min == {0.5: 1, 4.0: 2, 20.0: 3}


# ------------------------------------------------------------------ auto-checked exercise
def _reference(X, xi, beta):
    return torch.softmax(beta * xi @ X.T, dim=-1) @ X


def _not_implemented(X, xi, beta):
    raise NotImplementedError


@pytest.mark.parametrize("fn, ok, says", [
    (_reference, True, "correct"),
    (lambda X, xi, beta: torch.softmax(beta * xi @ X.T, dim=0) @ X, False, "over the stored patterns"),
    (lambda X, xi, beta: torch.softmax(xi @ X.T, dim=-1) @ X, False, "β is missing"),
    (lambda X, xi, beta: torch.softmax(beta * xi @ X.T, dim=-1), False, "softmax weights"),
    (lambda X, xi, beta: torch.softmax(-beta * xi @ X.T, dim=-1) @ X, False, "entries differ"),
    (_not_implemented, False, "not implemented"),
])
def test_check_update(fn, ok, says, verdict):
    out = verdict(dm.check_update, fn)
    assert out.startswith(CORRECT if ok else WRONG), out
    assert says in out


def test_committed_full_size_capacity_shows_what_the_chapter_says():
    from hopfield_lab import results

    rec = results.load("full_size/ch02_capacity.json")
    assert rec["settings"]["tiny"] is False and rec["settings"]["sizes"] == dm.FULL_SIZES
    curves = {c["label"]: c for c in rec["data"]["curves"]}
    # power laws: slopes near n - 1 over the full range
    assert abs(curves["z^2"]["slope"] - 1) < 0.1
    assert abs(curves["z^3"]["slope"] - 2) < 0.15 and abs(curves["z^4"]["slope"] - 3) < 0.15
    # exponential growth: log K is close to linear in N, over several decades
    for label in ("exp", "modern"):
        n, logk = np.array(curves[label]["neurons"], float), np.log(curves[label]["kmax"])
        fit = np.polyval(np.polyfit(n, logk, 1), n)
        r2 = 1 - ((logk - fit) ** 2).sum() / ((logk - logk.mean()) ** 2).sum()
        assert r2 > 0.97 and logk[-1] - logk[0] > 3 * math.log(10), (label, r2)
    assert curves["modern"]["kmax"][-1] > 10_000 * curves["modern"]["neurons"][-1]
    assert 0.5 < curves["modern"]["slope"] < math.log(2)
