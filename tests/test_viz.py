"""hopfield_lab.viz: what a chapter shows for a widget, live and on the static pages; pattern
grids and image players."""
import ipywidgets as widgets
import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import viz  # noqa: E402


@pytest.fixture
def shown(monkeypatch):
    out = []
    monkeypatch.setattr("IPython.display.display", lambda obj: out.append(obj))
    return out


def test_show_widget_displays_the_widget_live(shown, monkeypatch):
    monkeypatch.delenv("HOPFIELD_LAB_STATIC", raising=False)
    w = widgets.IntSlider()
    viz.show_widget(w)
    assert shown == [w]


def test_show_widget_points_to_the_twin_on_static_pages(shown, monkeypatch):
    monkeypatch.setenv("HOPFIELD_LAB_STATIC", "1")
    viz.show_widget(widgets.IntSlider(), twin="the grid of recalls below")
    (note,) = shown
    assert "the grid of recalls below" in note.data and "Colab" in note.data


def test_widget_stack_is_the_expected_ipywidgets():
    """tools/test.sh reruns the widget tests under Colab's ipywidgets 7.7.1
    (HOPFIELD_LAB_EXPECT_IPYWIDGETS=7): make sure that run really imports it."""
    import os

    expected = os.environ.get("HOPFIELD_LAB_EXPECT_IPYWIDGETS")
    if expected:
        assert widgets.__version__.split(".")[0] == expected, widgets.__version__
    assert int(widgets.__version__.split(".")[0]) in (7, 8)


def test_pattern_grid_and_players():
    plt.close("all")
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
    plt.close("all")
