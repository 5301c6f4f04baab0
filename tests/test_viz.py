"""hopfield_lab.viz: what a chapter shows for a widget, live and on the static pages."""
import ipywidgets as widgets
import pytest

from hopfield_lab import viz


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
