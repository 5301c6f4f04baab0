"""Tests of hopfield_lab.viz (the chapter demos have their own files: tests/test_demos_<module>.py)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import viz  # noqa: E402


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
