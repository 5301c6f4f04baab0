"""The run-time switches: quick mode, device choice, seeding."""
import sys

import pytest
import torch

import hopfield_lab as hl
from hopfield_lab import runtime


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("quick", True),
                                            ("0", False), ("off", False), ("full", False)])
def test_quick_reads_environment(monkeypatch, value, expected):
    monkeypatch.setenv("HOPFIELD_LAB_QUICK", value)
    assert hl.quick() is expected


def test_quick_defaults_on_in_ci(monkeypatch):
    monkeypatch.delenv("HOPFIELD_LAB_QUICK", raising=False)
    monkeypatch.setenv("CI", "true")
    assert hl.quick() is True
    monkeypatch.delenv("CI")
    assert hl.quick() is (not torch.cuda.is_available())


def test_quick_rejects_unknown_value(monkeypatch):
    monkeypatch.setenv("HOPFIELD_LAB_QUICK", "maybe")
    with pytest.raises(ValueError, match="HOPFIELD_LAB_QUICK"):
        hl.quick()


def test_device_choice(monkeypatch):
    monkeypatch.delenv("HOPFIELD_LAB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert hl.get_device().type == expected
    assert hl.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("HOPFIELD_LAB_DEVICE", "cpu")
    assert hl.get_device().type == "cpu"
    assert hl.device_name("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_request_without_gpu_explains():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        hl.get_device("cuda")


def test_seed_everything_is_reproducible():
    hl.seed_everything(123)
    a = torch.rand(5)
    hl.seed_everything(123)
    assert torch.equal(a, torch.rand(5))


def test_setup_prints_device_and_mode(capsys, monkeypatch):
    monkeypatch.setenv("HOPFIELD_LAB_QUICK", "1")
    dev = runtime.setup(seed=0)
    out = capsys.readouterr().out
    assert "quick mode on cpu" in out and "HOPFIELD_LAB_QUICK=0" in out and "<" not in out
    assert isinstance(dev, torch.device)


def test_mode_admonition_says_mode_device_and_how_to_switch(monkeypatch):
    monkeypatch.setenv("HOPFIELD_LAB_QUICK", "0")
    title, text = runtime.mode_summary(torch.device("cpu"))
    assert title == "Live cells: full mode on cpu"
    assert "HOPFIELD_LAB_QUICK=1" in text and hl.__version__ in text


def test_setup_displays_an_admonition_in_a_notebook(monkeypatch):
    shown = []
    monkeypatch.setattr(runtime, "_in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setenv("HOPFIELD_LAB_QUICK", "1")
    runtime.setup(seed=0)
    html = shown[0].data
    assert 'class="admonition note"' in html and "quick mode" in html


@pytest.mark.parametrize("value,expected", [("1", True), ("", False), ("0", False)])
def test_static_build_switch(monkeypatch, value, expected):
    monkeypatch.setenv("HOPFIELD_LAB_STATIC", value)
    assert runtime.static_build() is expected


def test_version_is_exposed():
    assert isinstance(hl.__version__, str) and hl.__version__.count(".") >= 2


def test_unknown_top_level_attribute():
    with pytest.raises(AttributeError):
        hl.no_such_thing  # noqa: B018


@pytest.mark.parametrize("env, enabled, off", [
    ({}, True, False),
    ({}, False, True),
    ({"TQDM_DISABLE": "1"}, True, True),          # an explicit enabled=True must not override it
    ({"HOPFIELD_LAB_STATIC": "1"}, True, True),   # no stale widget on the static pages
])
def test_progress_bar_obeys_the_build_switches(monkeypatch, env, enabled, off):
    for name in ("TQDM_DISABLE", "HOPFIELD_LAB_STATIC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bar = runtime.progress_bar(range(3), enabled=enabled, file=sys.stderr)
    assert bar.disable is off   # (tqdm sets disable once the bar has closed: look before)
    assert list(bar) == [0, 1, 2]


def test_library_makes_no_tqdm_bar_of_its_own():
    """Every bar goes through runtime.progress_bar (a direct tqdm(..., disable=not progress)
    overrides TQDM_DISABLE and left a widget on chapter 5's page)."""
    from pathlib import Path

    root = Path(hl.__file__).parent
    direct = [p.name for p in root.rglob("*.py") if p.name != "runtime.py" and "from tqdm" in p.read_text()]
    assert direct == []
