"""Tests of the chapter 1-2 demos (their widget callbacks) and of hopfield_lab.viz."""
import string

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import viz  # noqa: E402
from hopfield_lab.demos import dense_memory as dm  # noqa: E402
from hopfield_lab.demos import hopfield as hd  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ viz
def test_pattern_grid_and_players():
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, -1.0]])
    fig = viz.pattern_grid(x, shape=(2, 2), titles=["a", "b", "c"], suptitle="three")
    imgs = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(imgs) == 3 and np.array_equal(imgs[1], x[1].reshape(2, 2).numpy())
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="needs 9"):
        viz.pattern_grid(x, shape=(3, 3))
    n_open = len(plt.get_fignums())
    html = viz.animate_images(torch.randn(3, 2, 16), shape=(4, 4), frame_titles=["0", "1", "2"])
    assert "<script" in html.data and html.data.count("data:image/png") >= 3
    assert len(plt.get_fignums()) == n_open  # the player's figure is closed


# ------------------------------------------------------------------ chapter 2
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
