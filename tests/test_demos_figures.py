"""The plotting functions that the other demos tests do not draw, drawn once with small inputs so
that the ``figures_fit_the_column`` fixture (conftest.py) checks them too: at most 7.5 in wide,
no text under 8 pt, no raw TeX-style ``_``/``^`` outside mathtext."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hopfield_lab import odes  # noqa: E402
from hopfield_lab.classical import HopfieldNetwork  # noqa: E402
from hopfield_lab.demos import dense_memory as dm  # noqa: E402
from hopfield_lab.demos import hopfield as hd  # noqa: E402
from hopfield_lab.demos import lagrangians as dl  # noqa: E402
from hopfield_lab.demos import metaformer as dmf  # noqa: E402
from hopfield_lab.demos import symmetry_breaking as sb  # noqa: E402


def test_chapter_1_and_2_figures(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda: None)
    pats = torch.sign(torch.randn(4, 256, generator=torch.Generator().manual_seed(0)))
    hd.plot_letters(pats, "ABCD")
    net = HopfieldNetwork(pats)
    run = net.run(pats[:1] * torch.where(torch.rand(1, 256) < 0.2, -1.0, 1.0), record_every=64)
    hd.plot_recall_run(run, pats[0], pats[0], float(net.energy(pats[:1])), title="one recall")
    hd.show_recall(0.2, 2)
    dm.show_retrieval(0.0, n_patterns=10)


def test_chapter_3_5_and_7_figures():
    dl.plot_gain_sweep([0.0, 0.5, 1.0], [0.0, 0.1, 0.2], [0.0, 0.01, 0.02])
    _, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    dmf.plot_sigma_sweep({"sigmas": [0.1, 0.3], "r_cue": [0.9, 0.5], "r_recall": [0.95, 0.8]}, 0.4, ax, "live")
    sym = odes.small_system(asymmetric=False, seed=0)
    x0 = odes.initial_states(sym, batch=3, mean=0.5, std=0.5, seed=1)
    t, xs = odes.integrate(sym, x0, t_end=1.0, dt=1e-2, method="rk4")
    sb.plot_small_tied(t, xs, sym.energy(xs))
    asym = odes.small_system(asymmetric=True, seed=1)
    t, xs = odes.integrate(asym, x0, t_end=1.0, dt=1e-2, method="rk4")
    sb.plot_small_broken(t, asym.energy(xs), asym.pseudo_energy(xs), asym, x0)
    sb.plot_ensemble({"strengths": [0.0, 1.0], "frac_runs": [0.0, 0.5], "frac_visible": [0.0, 0.25],
                      "frac_steps": [0.0, 0.1], "n_runs": 16, "t_end": 10.0})
    assert len(plt.get_fignums()) == 5 and all(np.isfinite(plt.figure(n).get_size_inches()).all()
                                               for n in plt.get_fignums())
