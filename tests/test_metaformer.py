"""Energy MetaFormer: closed-form gradient, energy descent, denoising training, shapes."""
import pytest
import torch

from hopfield_lab import metaformer as mf
from hopfield_lab.demos import metaformer as dm  # the book side: loading the chapter's images


def _model(nv=12, ns=7, nc=9, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    # zero-mean weights of size ~1 make the test dynamics non-trivial (the official notebook's init,
    # 0.02 N(0, 1), is too small for that; this library's default adds an invisible offset 0.2)
    return mf.EnergyMetaFormer(nv, ns, nc, init_mean=0.0, init_std=0.5, generator=gen).to(dtype)


def test_shapes_and_dtypes():
    m = _model(dtype=torch.float32)
    v = torch.randn(5, 12)
    x = m.init_state(v)
    assert [t.shape for t in x] == [(5, 7), (5, 12), (5, 9)]
    assert torch.equal(x.s, torch.zeros(5, 7)) and torch.equal(x.c, torch.zeros(5, 9))
    g = m.activations(x)
    assert [t.shape for t in g] == [(5, 7), (5, 12), (5, 9)]
    assert m.energy(x).shape == (5,) and m.energy(x).dtype == torch.float32
    d = m.dEdg(x)
    assert [t.shape for t in d] == [(5, 7), (5, 12), (5, 9)]
    out = m.denoise(v, steps=3, alpha=0.1)
    assert out.shape == (5, 12) and out.dtype == torch.float32
    # LayerNorm activation of the visible layer: zero mean, unit variance per image
    assert torch.allclose(out.mean(-1), torch.zeros(5), atol=1e-5)
    assert m.receptive_fields("c").shape == (9, 12)
    assert torch.allclose(m.receptive_fields("s").norm(dim=1), torch.ones(7), atol=1e-5)
    with pytest.raises(ValueError, match="n_visible"):
        m.init_state(torch.randn(5, 11))
    with pytest.raises(ValueError, match="layer"):
        m.receptive_fields("v")


def test_prepare_images_and_mosaic():
    imgs = torch.randint(0, 256, (6, 1, 4, 5), dtype=torch.uint8)
    imgs[0] = 0
    x = mf.prepare_images(imgs)
    assert x.shape == (6, 20) and x.dtype == torch.float32
    assert torch.allclose(x[1:].norm(dim=1), torch.ones(5), atol=1e-6)
    assert torch.equal(x[0], torch.zeros(20))  # black image stays zero, no NaN
    tiles = mf.mosaic(x, (4, 5), ncols=3)
    assert tiles.shape == (2 * 5 - 1, 3 * 6 - 1)
    assert torch.allclose(tiles[5:9, 6:11], x[4].reshape(4, 5))


def test_closed_form_gradient_matches_autograd():
    """dE/dx (autograd) = J_g(x)^T dE/dg (closed form), for each of the three layers."""
    m = _model()
    gen = torch.Generator().manual_seed(1)
    x = m.random_state(4, scale=1.5, generator=gen)
    xs = [t.clone().requires_grad_(True) for t in x]
    E = m.energy(mf.State(*xs)).sum()
    auto = torch.autograd.grad(E, xs)
    d = m.dEdg(x)
    acts = (m.L_s.activation, m.L_v.activation, m.L_c.activation)
    for act, xi, di, ai in zip(acts, x, d, auto):
        _, chain = torch.autograd.functional.vjp(act, xi, di)
        assert torch.allclose(chain, ai, atol=1e-10, rtol=1e-8)
    # and the identity dE/dg = x - (input to the layer) on the ReLU layers, where g = x for x > 0
    gs = m.activations(x)
    assert torch.allclose(d.s, x.s - gs.v @ m.xi_s.T)


def test_energy_and_dEdg_agree_with_separate_calls():
    m = _model()
    x = m.random_state(3, generator=torch.Generator().manual_seed(2))
    E, d = m.energy_and_dEdg(x)
    assert torch.allclose(E, m.energy(x))
    for a, b in zip(d, m.dEdg(x)):
        assert torch.allclose(a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_energy_is_monotone_along_descent(seed):
    m = _model(seed=seed)
    x = m.random_state(8, scale=3.0, generator=torch.Generator().manual_seed(seed))
    _, E = m.descend(x, steps=60, alpha=0.02, record_energy=True)
    assert E.shape == (61, 8)
    dE = E.diff(dim=0)
    assert (dE <= 1e-9 * E.abs().max()).all(), dE.max()
    assert (E[-1] < E[0]).all()
    # energy_descent wraps the same thing from random states
    Ed = mf.energy_descent(m, n_states=4, steps=20, alpha=0.02, scale=2.0, seed=seed)
    assert Ed.shape == (21, 4) and (Ed.diff(dim=0) <= 1e-9 * Ed.abs().max()).all()


def test_a_few_training_steps_reduce_denoising_loss():
    torch.manual_seed(0)
    protos = torch.rand(4, 1, 4, 4)
    imgs = (protos.repeat(16, 1, 1, 1) + 0.05 * torch.randn(64, 1, 4, 4)).clamp(0, 1)
    X = mf.prepare_images((imgs * 255).to(torch.uint8))
    m = mf.EnergyMetaFormer(16, 20, 20, generator=torch.Generator().manual_seed(0))

    def loss():
        with torch.no_grad():
            return m.denoising_loss(X, sigma=0.3, generator=torch.Generator().manual_seed(5)).item()

    before = loss()
    cfg = mf.DenoisingConfig.quick().replace(n_s=20, n_c=20, epochs=15, batch_size=16, lr=1e-2)
    hist = mf.fit(m, X, cfg, progress=False)
    after = loss()
    assert len(hist["loss"]) == 15 and len(hist["step_loss"]) == 15 * 4
    assert after < before - 0.01, (before, after)
    assert hist["loss"][-1] < hist["loss"][0]


def test_paper_config():
    c = mf.DenoisingConfig.paper()
    assert (c.n_s, c.n_c, c.epochs, c.batch_size, c.lr, c.sigma, c.steps, c.alpha) == (
        900, 900, 100, 512, 1e-4, 0.3, 10, 0.1)
    assert mf.DenoisingConfig.for_mode(quick=True) == mf.DenoisingConfig.quick()
    assert mf.DenoisingConfig.for_mode(quick=False) == c


def test_load_images_quick_is_offline_and_full_mode_error_is_clear(monkeypatch, tmp_path):
    from hopfield_lab import data as hd

    monkeypatch.setenv("HOPFIELD_LAB_DATA", str(tmp_path))  # no MNIST archive here: digits, unless
    X, shape, desc = dm.load_images(quick=True, verbose=False)  # the default data root has one
    assert shape in ((8, 8), (28, 28)) and X.shape[1] == shape[0] * shape[1]
    assert ("digits" in desc) == (shape == (8, 8))
    assert torch.allclose(X.norm(dim=1), torch.ones(len(X)), atol=1e-5)
    X2, _, _ = dm.load_images(quick=True, split="test", max_images=10, verbose=False)
    assert X2.shape == (10, X.shape[1])

    def no_download(name, split="train", root=None, download=True, **kw):
        raise hd.DataUnavailableError(f"{name} cannot be downloaded here")

    monkeypatch.setattr(hd, "load_dataset", no_download)
    with pytest.raises(RuntimeError, match="quick mode"):
        dm.load_images(quick=False, verbose=False)


def test_the_initial_offset_is_invisible_to_dynamics_and_training():
    """Synapse row means never reach the dynamics and get a gradient with zero row means, so
    training from 0.2 + 0.02 N(0, 1) (the default) and from 0.02 N(0, 1) (the official notebook)
    gives the same losses and the same centred weights."""
    gen = torch.Generator().manual_seed(0)
    X = mf.prepare_images((torch.rand(32, 1, 4, 4, generator=gen) * 255).to(torch.uint8)).double()
    cfg = mf.DenoisingConfig.quick().replace(n_s=6, n_c=5, epochs=3, batch_size=8, lr=1e-2)
    runs = []
    for mean in (0.2, 0.0):
        m = mf.EnergyMetaFormer(16, 6, 5, init_mean=mean, generator=torch.Generator().manual_seed(1)).double()
        runs.append((m, mf.fit(m, X, cfg, progress=False)))
    (a, ha), (b, hb) = runs
    assert ha["step_loss"] == pytest.approx(hb["step_loss"], rel=1e-9, abs=1e-12)
    for W, V in ((a.xi_s, b.xi_s), (a.xi_c, b.xi_c)):
        centred = lambda w: (w - w.mean(1, keepdim=True)).detach()  # noqa: E731
        assert torch.allclose(centred(W), centred(V), atol=1e-6)   # Adam amplifies rounding a little
        assert (W.mean(1) - V.mean(1)).abs().min() > 0.1          # the offsets themselves stayed apart


def test_denoising_flops_and_load_images_by_name():
    assert mf.denoising_flops(784, 900, 900, 10) == 3 * 10 * 4 * 784 * 1800
    with pytest.raises(ValueError, match="steps=-1"):
        mf.denoising_flops(784, 900, 900, -1)
    X, shape, desc = dm.load_images(quick=True, split="test", dataset="digits", max_images=5, verbose=False)
    assert X.shape == (5, 64) and shape == (8, 8) and desc.startswith("digits test split")
    with pytest.raises(ValueError, match="not a named data set"):
        dm.load_images(quick=True, dataset="no-such-set", verbose=False)
    with pytest.raises(ValueError, match="grey-scale"):
        dm.load_images(quick=True, dataset="synthetic", verbose=False)
