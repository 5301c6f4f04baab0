"""Tests of the chapter 1 demos (hopfield_lab.demos.hopfield): the widget's callback, the static
twins, the capacity study behind the chapter's live and full-size figures, and the check of the
auto-checked coding exercise."""
import math
import string

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import results  # noqa: E402
from hopfield_lab.classical import capacity_curve  # noqa: E402
from hopfield_lab.demos import hopfield as hd  # noqa: E402
from hopfield_lab.exercises import CORRECT, WRONG  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_default_letters_are_the_greedy_choice():
    g = hd.glyph_patterns(string.ascii_uppercase)
    assert g.shape == (26, 256) and set(g.unique().tolist()) == {-1.0, 1.0}
    picked = "".join(string.ascii_uppercase[i] for i in hd.pick_uncorrelated(g, 8, first=7))
    assert picked == hd.DEFAULT_LETTERS


# The ±1 letters A–Z as int8 bytes: pinned, because chapter 1's checked outputs and its text
# are computed from them. Rewriting hopfield_lab/book/demos/letters16.txt (tools/make_letters.py)
# changes this on purpose only: then rerun chapter 1 and update the hash.
LETTERS_SHA256 = "9f50efaff1fa436d24e2a88168d3b7e5d7471f8181a9e583433251a30290cb0e"


def test_letters_are_the_committed_data_not_rendered(monkeypatch):
    import hashlib

    import matplotlib.backends.backend_agg as agg
    import matplotlib.text

    def no_rendering(*args, **kwargs):
        raise AssertionError("glyph_patterns rendered text with matplotlib")

    monkeypatch.setattr(agg.FigureCanvasAgg, "draw", no_rendering)
    monkeypatch.setattr(matplotlib.text.Text, "draw", no_rendering)
    hd.read_letters.cache_clear()
    g = hd.glyph_patterns(string.ascii_uppercase)
    shipped = hd.read_letters()
    assert list(shipped) == list(string.ascii_uppercase)
    want = np.stack([np.where(shipped[c].ravel(), 1.0, -1.0) for c in string.ascii_uppercase])
    assert np.array_equal(g.numpy(), want)
    assert hashlib.sha256(g.numpy().astype(np.int8).tobytes()).hexdigest() == LETTERS_SHA256


def test_letters_file_reads_without_matplotlib(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from hopfield_lab.demos.letters import read_letters\n"
            "L = read_letters(); print(len(L), sum(int(a.sum()) for a in L.values()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    ink = sum(int(a.sum()) for a in hd.read_letters().values())
    assert out.stdout.split() == ["26", str(ink)]


def test_letters_file_errors():
    from hopfield_lab.demos import letters

    good = letters.format_letters({"A": np.eye(16, dtype=bool)}, "test")
    assert letters._parse(good, "t")["A"].sum() == 16
    with pytest.raises(ValueError, match="not 16 characters"):
        letters._parse(good.replace("#.", "x.", 1), "t")
    with pytest.raises(ValueError, match="blocks of 1 \\+ 16"):
        letters._parse(good + "\nB\n", "t")
    with pytest.raises(ValueError, match="shipped letters are the capitals"):
        hd.glyph_patterns("Hé")
    with pytest.raises(ValueError, match="16×16 bitmaps only"):
        hd.glyph_patterns("H", size=32)


def test_chapter_picks_are_stable():
    """What chapter 1 computes from the letters: the picks and the recall grid it asserts on."""
    assert hd.DEFAULT_LETTERS == "HTWCAMVK"
    wins = np.array([[hd.recall_demo(noise, k, seed=0)["overlap_final"] for noise in (0.1, 0.2, 0.3, 0.4)]
                     for k in (2, 4, 6, 8)])
    assert (wins[:2] == 1.0).all() and (wins[2, :2] == 1.0).all() and (wins[2, 2:] < 1).all() and (wins[3] < 1).all()


def test_hopfield_widget_callback():
    w = hd.make_widget()
    sliders = {c.description: c for c in w.children if hasattr(c, "description")}
    # few letters, little noise: the stored letter comes back exactly, energy went down
    sliders["noise"].value, sliders["letters"].value = 0.2, 3
    r = w.result
    assert r["success"] and r["overlap_final"] == 1.0
    assert r["overlap_cue"] == pytest.approx(1 - 2 * round(0.2 * 256) / 256)
    e = np.array(r["energy"])
    assert np.all(np.diff(e) <= 1e-6) and e[-1] < e[0]
    # the callback computes what recall_demo computes
    direct = hd.recall_demo(0.2, 3, 0)
    assert torch.equal(direct["recalled"], r["recalled"])
    # more than half of the pixels flipped: the network falls into the reversed letter
    sliders["noise"].value = 0.5
    sliders["seed"].value = 1
    r2 = w.result
    assert r2["overlap_cue"] == 0.0
    assert r2["converged"] and np.all(np.diff(r2["energy"]) <= 1e-6)


def test_hopfield_player():
    html = hd.recall_player(0.2, 3, 0, record_every=64)
    assert html.data.count("data:image/png") >= 4


def test_recall_grid_is_the_widget_swept():
    fig, m = hd.recall_grid(noise_levels=(0.1, 0.4), numbers=(2, 8))
    assert m.shape == (2, 2) and len(fig.axes) == 4
    assert m[0, 0] == 1.0  # two letters, 10 % noise: exact recall
    assert m[1, 0] == hd.recall_demo(0.1, 8, seed=0)["overlap_final"]


def test_hopfield_errors():
    with pytest.raises(ValueError, match="n_patterns"):
        hd.recall_demo(0.1, 0)
    with pytest.raises(ValueError, match="k must"):
        hd.pick_uncorrelated(torch.ones(3, 4), 5)


# ------------------------------------------------------------------ capacity study
def test_capacity_study_matches_capacity_curve():
    loads = (0.05, 0.15, 0.25)
    study = hd.capacity_study([40, 80], trials=3, loads=loads, seed=1)
    assert study["trials"] == 3 and study["loads"] == list(loads)
    c = study["curves"][1]
    r = capacity_curve(80, [4, 12, 20], trials=3, seed=1)
    assert c["n_neurons"] == 80 and c["n_patterns"] == [4, 12, 20]
    assert c["overlap"] == r.overlap.tolist() and c["perfect"] == r.perfect.tolist()
    sd = r.trial_overlap.std(1)
    assert c["trial_sd"] == sd.tolist()
    assert c["overlap_se"] == pytest.approx((sd / math.sqrt(3)).tolist())
    assert c["overlap"][0] == 1.0 and c["overlap_se"][0] == 0.0  # far below capacity: exact recall


def test_capacity_study_rejects_bad_sizes():
    with pytest.raises(ValueError, match="at least 2"):
        hd.capacity_study([100], trials=1)
    with pytest.raises(ValueError, match="too small"):
        hd.capacity_study([10], trials=2, loads=(0.02, 0.04))


def test_steepness_and_its_error():
    curve = {"load": [0.1, 0.14, 0.2], "overlap": [1.0, 0.95, 0.65], "overlap_se": [0.0, 0.03, 0.04]}
    s, se = hd.steepness(curve)
    assert s == pytest.approx(0.30 / 0.06) and se == pytest.approx(0.05 / 0.06)
    with pytest.raises(ValueError, match="no points"):
        hd.steepness(curve, lo=0.12)


def test_plot_capacity_draws_mean_band_and_perfect():
    study = hd.capacity_study([40], trials=2, loads=(0.05, 0.25))
    a0, a1 = hd.plot_capacity(study, title=" (test)")
    (line,) = [ln for ln in a0.get_lines() if ln.get_label() == "N = 40"]
    assert np.allclose(line.get_ydata(), study["curves"][0]["overlap"])
    assert len(a0.collections) == 1  # the ±1 s.e. band
    assert a1.get_title() == "perfect recall (test)"


def test_t4_estimate_grows_with_the_work():
    small = hd.estimated_t4_minutes([100, 200], 3)
    assert 0 < small < hd.estimated_t4_minutes([100, 200, 400, 800], 3) < hd.estimated_t4_minutes([100, 200, 400, 800], 50)
    # launch latency alone: 15 loads x 10 sweeps x N steps
    assert hd.estimated_t4_minutes([100], 1, loads=(0.1,), sweeps=1) * 60 >= 100 * hd.GPU_STEP_SECONDS


def test_full_size_capacity_tiny():
    data, settings = hd.full_size_capacity(tiny=True)
    assert [c["n_neurons"] for c in data["curves"]] == settings["neurons"]
    assert data["trials"] == settings["trials"] == 2


# ------------------------------------------------------------------ auto-checked exercise
def _reference(p):
    w = p.T @ p / p.shape[1]
    return w.fill_diagonal_(0)


def _not_implemented(p):
    raise NotImplementedError


@pytest.mark.parametrize("fn, ok, says", [
    (_reference, True, "correct"),
    (lambda p: p.T @ p / p.shape[1], False, "diagonal"),
    (lambda p: (p.T @ p).fill_diagonal_(0), False, "divide by the number of neurons"),
    (lambda p: p @ p.T / p.shape[1], False, "shape (K, K)"),
    (lambda p: -_reference(p), False, "entries differ"),
    (_not_implemented, False, "not implemented"),
])
def test_check_hebbian(fn, ok, says, verdict):
    out = verdict(hd.check_hebbian, fn)
    assert out.startswith(CORRECT if ok else WRONG), out
    assert says in out
