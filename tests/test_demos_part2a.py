"""Tests of the demos of chapter 5 (Energy MetaFormer); chapter 6's are in test_demos_paramixer.py.

They drive the widgets' callbacks the way Jupyter does (by setting control values) and check
mathematical facts of what the callbacks computed, not just that they ran.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from hopfield_lab import metaformer as mf  # noqa: E402
from hopfield_lab.demos import metaformer as dm  # noqa: E402


# --- chapter 5 -----------------------------------------------------------------------------------

def _mf_model_and_images():
    gen = torch.Generator().manual_seed(0)
    imgs = (torch.rand(8, 1, 5, 5, generator=gen) * 255).to(torch.uint8)
    X = mf.prepare_images(imgs)
    m = mf.EnergyMetaFormer(25, 12, 10, init_mean=0.0, init_std=0.3, generator=gen)
    return m, X


def test_correlation_is_pearson():
    a = torch.randn(4, 30, dtype=torch.float64)
    assert torch.allclose(dm.correlation(a, 3 * a + 2), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(dm.correlation(a, -a), -torch.ones(4, dtype=torch.float64))


def test_denoise_trajectory_shapes_and_energy_descent():
    m, X = _mf_model_and_images()
    t = dm.denoise_trajectory(m, X, sigma=0.2, steps=15, alpha=0.05, seed=3)
    assert t["frames"].shape == (16, 8, 25) and t["energy"].shape == (16, 8)
    assert (t["energy"].diff(dim=0) <= 1e-6 * t["energy"].abs().max()).all()
    # frame 0 is the LayerNorm of the noisy cue, so it correlates with the cue perfectly
    assert torch.allclose(dm.correlation(t["frames"][0], t["noisy"]), torch.ones(8), atol=1e-4)
    # sigma = 0: the noisy cue is the clean image
    t0 = dm.denoise_trajectory(m, X, sigma=0.0, steps=0)
    assert torch.allclose(t0["corr_noisy"], torch.ones(8), atol=1e-5)


def test_widget_callback_follows_the_sliders():
    m, X = _mf_model_and_images()
    box = dm.make_widget(m, X, (5, 5), n_show=4)
    assert box.last["steps"] == 10 and box.last["frames"].shape == (11, 4, 25)
    box.controls["steps"].value = 3
    box.controls["alpha"].value = 0.05
    box.controls["sigma"].value = 0.0
    last = box.last
    assert (last["sigma"], last["steps"], last["alpha"]) == (0.0, 3, 0.05)
    assert last["frames"].shape == (4, 4, 25) and last["energy"].shape == (4, 4)
    assert torch.allclose(last["noisy"], X[:4])  # no noise
    # the frames are the model's own descent
    x = m.init_state(X[:4])
    for _ in range(3):
        x = m.step(x, 0.05)
    assert torch.allclose(last["frames"][-1], m.L_v.activation(x.v).detach(), atol=1e-6)
    assert (last["energy"].diff(dim=0) <= 1e-6).all()


def test_descent_player_and_receptive_fields():
    import matplotlib.pyplot as plt

    m, X = _mf_model_and_images()
    html, traj = dm.descent_player(m, X, (5, 5), steps=4, n_show=3)
    assert "<script" in html.data and traj["frames"].shape == (5, 3, 25)
    fig, ax = plt.subplots()
    im = dm.plot_receptive_fields(m, (5, 5), layer="c", n=9, ax=ax)
    assert im.get_array().shape == (3 * 6 - 1, 3 * 6 - 1)
    plt.close(fig)
