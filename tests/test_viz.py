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
    html = viz.animate_images(torch.randn(3, 2, 16), shape=(4, 4), frame_titles=["0", "1", "2"],
                              alt="three frames of random noise")
    assert "<script" in html.data and html.data.count("data:image/png") >= 3
    assert len(plt.get_fignums()) == n_open  # the player's figure is closed
    plt.close("all")


def test_players_carry_their_text_alternative():
    plt.close("all")
    html = viz.animate_images(torch.randn(2, 1, 16), shape=(4, 4), alt='noise "flickers" & <changes>').data
    assert 'role="figure" aria-label="noise &quot;flickers&quot; &amp; &lt;changes&gt;"' in html
    assert '<img alt="noise &quot;flickers&quot; &amp; &lt;changes&gt;" id="_anim_img' in html
    for alt in ("", "   ", None):
        with pytest.raises(ValueError, match="alt is empty"):
            viz.animate_images(torch.randn(2, 1, 16), shape=(4, 4), alt=alt)
    with pytest.raises(TypeError):   # no player without one
        viz.animate_images(torch.randn(2, 1, 16), shape=(4, 4))
    assert plt.get_fignums() == []   # refused players leave no figure open
    with pytest.raises(ValueError, match="not a matplotlib to_jshtml player"):
        viz.player_html("<div>no frame</div>", alt="x")


def test_figure_problems_names_what_does_not_fit_the_column():
    fig, ax = plt.subplots(figsize=(7.5, 3))
    ax.plot([0, 1], [0, 1], label=r"$\tau_s = \tau_c$")
    ax.set(xlabel=r"time t (units of $\tau_v$)", ylabel="energy E (dimensionless)", title="fits")
    ax.legend(fontsize=8)
    assert viz.figure_problems(fig) == []
    ax.set_ylabel("max |X_HAM − X_flow|")
    ax.text(0.5, 0.5, "z^2", fontsize=6)
    fig.set_size_inches(14, 4)
    problems = viz.figure_problems(fig)
    assert len(problems) == 4, problems
    assert "14.00 in wide" in problems[0]
    assert any("'z^2' is 6.0 pt" in p for p in problems)
    assert sum("raw TeX-style" in p for p in problems) == 2
    plt.close("all")


def test_panels_fit_the_column_two_per_row():
    fig, axes = viz.panels(3)
    assert fig.get_size_inches()[0] == viz.MAX_WIDTH_IN and len(axes) == 3
    (x0, _), (x1, _), (x2, _) = (ax.get_position().p0 for ax in axes)
    assert x0 < x1 and x2 == pytest.approx(x0, abs=0.02)            # two side by side, one below
    assert axes[2].get_position().width > 1.8 * axes[0].get_position().width  # it spans the row
    with pytest.raises(ValueError, match="wider than the page column"):
        viz.panels(2, width=12)
    plt.close("all")
    big = viz.pattern_grid(np.ones((8, 4, 4)), ncols=8, size=2.0)   # 8 × 2 in asked: capped
    assert big.get_size_inches()[0] <= viz.MAX_WIDTH_IN + 1e-9
    plt.close("all")
