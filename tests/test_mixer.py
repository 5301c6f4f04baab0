"""The Mixer family: registry, parameter counts, block formulas, n_iter, energy, penalty, errors."""
import math

import pytest
import torch
import torch.nn.functional as F

import hopfield_lab as hl
from hopfield_lab import mixer
from hopfield_lab.mixer import (AsymMlp, LagrangianLayerNorm, Mixer, Mlp, ParallelMixerBlock,
                                SerialMixerBlock, SymMlp, family_of, model_config)

FAMILIES = list(mixer.FAMILIES)

# tiny config for exact checks: 8x8 images, patch 2 -> S = 16 tokens, C = 12, Ns = 6, Nc = 48
TINY = dict(img_size=8, patch_size=2, embed_dim=12, num_blocks=2, num_classes=5)


def tiny(family, **kw):
    torch.manual_seed(0)
    m = hl.create_model(f"{family}_cifar_tiny", **{**TINY, **kw}).double()
    randomize_norms_(m)
    return m


@torch.no_grad()
def randomize_norms_(model):
    """Non-trivial norm parameters and head, so that formulas are tested off the init."""
    for name, p in model.named_parameters():
        if name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "L.gamma")):
            p.copy_(1.0 + 0.3 * torch.rand_like(p))
        elif name.endswith(("norm.bias", "norm1.bias", "norm2.bias", "L.delta")) or name.startswith("head"):
            p.normal_(0, 0.2)


# ------------------------------------------------------------------ registry, sizes, counts
OFFICIAL_NAMES = [f"{f}_{s}" for f in ("vanillamixer", "paramixer", "symmixer")
                  for s in ("s32_224", "s16_224", "b32_224", "b16_224", "l32_224", "l16_224")] + ["asymmixer_s16_224"]


def test_registry_has_official_and_cifar_names():
    names = hl.list_models()
    assert set(OFFICIAL_NAMES) <= set(names)
    for f in FAMILIES:
        assert f"{f}_cifar_small" in names and f"{f}_cifar_tiny" in names
    assert hl.list_models("sym*") == [n for n in names if n.startswith("sym")]


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, expected", [
    ("vanillamixer_s16_224", 21_191_178), ("paramixer_s16_224", 19_585_546),
    ("symmixer_s16_224", 10_795_530), ("asymmixer_s16_224", 19_585_546),
    ("vanillamixer_cifar_small", 4_865_290), ("paramixer_cifar_small", 4_603_146),
    ("symmixer_cifar_small", 2_440_458), ("asymmixer_cifar_small", 4_603_146),
])
def test_parameter_counts(name, expected):
    with torch.device("meta"):  # no memory, no init cost
        model = hl.create_model(name, num_classes=10)
    assert _count(model) == expected


def test_parameter_count_formula_all_official_sizes():
    # closed form for the official layout: stem + blocks (norms, token MLP, channel MLP) + norm + head
    for name in OFFICIAL_NAMES:
        cfg = model_config(name, num_classes=10)
        C, p, D = cfg["embed_dim"], cfg["patch_size"], cfg["num_blocks"]
        S = (224 // p) ** 2
        Ns, Nc = C // 2, 4 * C
        norms = 2 * S * C * (2 if "vanilla" in name else 1)
        mlps = (S * Ns + C * Nc) * (1 if name.startswith("symmixer") else 2)
        expected = 3 * p * p * C + C + D * (norms + mlps) + 2 * C + 10 * C + 10
        with torch.device("meta"):
            assert _count(hl.create_model(name, num_classes=10)) == expected, name


def test_big_model_forward_small_batch():
    torch.manual_seed(0)
    model = hl.create_model("symmixer_s32_224", num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_unknown_name_and_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="valid names.*symmixer_s16_224"):
        hl.create_model("symmixer_s15_224")
    with pytest.raises(ValueError, match=r"not divisible.*patch sizes.*\[1, 2, 4, 8, 16, 32\]"):
        hl.create_model("paramixer_cifar_tiny", patch_size=5)
    with pytest.raises(TypeError, match="valid overrides"):
        hl.create_model("paramixer_cifar_tiny", embed_dims=64)
    with pytest.raises(ValueError, match="only applies to AsymMixer"):
        hl.create_model("paramixer_cifar_tiny", lam=1e-2)
    with pytest.raises(ValueError, match="choose one of"):
        hl.create_model("paramixer_cifar_tiny", norm="batch")
    with pytest.raises(ValueError, match="n_iter"):
        hl.create_model("paramixer_cifar_tiny", n_iter=0)
    with pytest.raises(ValueError, match=">= 0|≥ 0"):
        hl.create_model("asymmixer_cifar_tiny", lam=-1.0)
    model = hl.create_model("paramixer_cifar_tiny")
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 3, 32, 32\)"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match="tokens, channels"):
        model.blocks[0](torch.randn(2, 10, 64))


@pytest.mark.parametrize("lam", [math.nan, math.inf, -math.inf, "1e-2"])
def test_lambda_must_be_a_finite_nonnegative_number(lam):
    with pytest.raises(ValueError, match="finite number ≥ 0"):
        hl.create_model("asymmixer_cifar_tiny", lam=lam)


def test_unknown_override_names_the_option_meant():
    with pytest.raises(TypeError, match=r"'depth' \(did you mean num_blocks\?\).*valid overrides: num_classes"):
        hl.create_model("paramixer_cifar_tiny", depth=4)


def test_mnist_size_and_presets():
    for patch in (4, 7):
        m = hl.create_model("paramixer_cifar_tiny", img_size=28, patch_size=patch, in_chans=1)
        assert m.seq_len == (28 // patch) ** 2
        assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    small = model_config("symmixer_cifar_small")
    assert (small["img_size"], small["patch_size"], small["embed_dim"], small["num_blocks"]) == (32, 4, 256, 8)
    assert model_config("asymmixer_s16_224_l02")["lam"] == 1e-2
    assert model_config("paramixer_s16_224_ni2")["n_iter"] == 2


def test_families_are_one_line_swaps():
    for family, (block, mlp) in {"vanillamixer": (SerialMixerBlock, Mlp), "paramixer": (ParallelMixerBlock, Mlp),
                                 "symmixer": (ParallelMixerBlock, SymMlp),
                                 "asymmixer": (ParallelMixerBlock, AsymMlp)}.items():
        m = hl.create_model(f"{family}_cifar_tiny")
        assert all(type(b) is block and type(b.mlp_tokens) is mlp and type(b.mlp_channels) is mlp for b in m.blocks)
    m = Mixer(**{**TINY, "block_layer": ParallelMixerBlock, "mlp_layer": SymMlp, "norm": "lagrangian"})
    assert isinstance(m.blocks[0].norm, LagrangianLayerNorm)


def test_the_registry_is_the_one_home_of_the_families():
    assert FAMILIES[:4] == ["vanillamixer", "paramixer", "symmixer", "asymmixer"]  # the paper's four, display order
    assert [mixer.FAMILIES[f].label for f in FAMILIES[:4]] == ["vanilla (serial)", "ParaMixer", "SymMixer", "AsymMixer"]
    assert len({f.color for f in mixer.FAMILIES.values()}) == len(FAMILIES) == len({f.label for f in mixer.FAMILIES.values()})
    assert [f for f in FAMILIES[:4] if mixer.FAMILIES[f].has_breaking] == ["asymmixer"]
    assert [f.official for f in list(mixer.FAMILIES.values())[:4]] == [
        ("vMixerBlock", "vMlp"), ("pMixerBlock", "vMlp"), ("pMixerBlock", "sMlp"), ("pMixerBlock", "aMlp")]
    for name in hl.list_models():
        fam = family_of(name)
        assert name.startswith(fam.name + "_") and family_of(fam.name) is fam
        with torch.device("meta"):
            model = hl.create_model(name)
        assert model.family is fam and model.has_breaking == fam.has_breaking
        assert len(model.breaking_weights()) == (2 * len(model.blocks) if fam.has_breaking else 0)
    class OwnMlp(Mlp):  # an MLP of one's own: the model is of no registered family
        pass

    custom = Mixer(**TINY, block_layer=ParallelMixerBlock, mlp_layer=OwnMlp)
    assert custom.family is None and not custom.has_breaking
    with pytest.raises(ValueError, match="neither a model family"):
        family_of("resmixer")


# ------------------------------------------------------------------ shapes, init, state names
def test_shapes_dtypes_and_state_dict_names():
    m = tiny("vanillamixer")
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    feats = m.forward_features(x)
    assert feats.shape == (3, 16, 12) and feats.dtype == torch.float64
    assert m.forward_head(feats, pre_logits=True).shape == (3, 12)
    assert m(x).shape == (3, 5)
    keys = set(hl.create_model("vanillamixer_cifar_tiny").state_dict())
    assert {"stem.proj.weight", "stem.proj.bias", "blocks.0.norm1.weight", "blocks.1.norm2.bias",
            "blocks.0.mlp_tokens.fc1.weight", "blocks.0.mlp_channels.fc2.weight", "norm.weight",
            "head.weight", "head.bias"} <= keys
    sym = hl.create_model("symmixer_cifar_tiny").state_dict()
    assert "blocks.0.mlp_tokens.fc1.weight" not in sym
    assert sym["blocks.0.mlp_tokens.fc2.weight"].shape == (32, 64)      # A: (Ns, S)
    assert sym["blocks.0.mlp_channels.fc2.weight"].shape == (256, 64)   # B: (Nc, C)
    assert sym["blocks.0.norm.weight"].shape == (64, 64)                # LayerNorm over (S, C)
    asym = hl.create_model("asymmixer_cifar_tiny").state_dict()
    assert asym["blocks.0.mlp_tokens.fc2.weight"].shape == (64, 32)     # V: (S, Ns)


def test_official_init():
    torch.manual_seed(0)
    m = hl.create_model("paramixer_cifar_small")
    assert torch.all(m.head.weight == 0) and torch.all(m.head.bias == 0)
    assert torch.all(m.blocks[0].norm.weight == 1) and torch.all(m.blocks[0].norm.bias == 0)
    W = m.blocks[0].mlp_channels.fc1.weight                          # xavier-uniform bound
    assert W.abs().max() <= math.sqrt(6 / sum(W.shape)) + 1e-7
    assert abs(W.std().item() - math.sqrt(2 / sum(W.shape))) < 0.02 * math.sqrt(2 / sum(W.shape))
    w = m.stem.proj.weight                                            # LeCun normal, truncated at 2 sigma
    std = math.sqrt(1 / w[0].numel()) / 0.87962566103423978
    assert w.abs().max() <= 2 * std + 1e-6 and abs(w.std().item() * math.sqrt(w[0].numel()) - 1) < 0.05
    assert torch.all(m.stem.proj.bias == 0)


# ------------------------------------------------------------------ block formulas
def _norm(block, x, which="norm"):
    n = getattr(block, which)
    if isinstance(n, LagrangianLayerNorm):
        mu = x.mean(dim=(1, 2), keepdim=True)
        var = ((x - mu) ** 2).mean(dim=(1, 2), keepdim=True)
        return n.gamma * (x - mu) / torch.sqrt(var + n.eps) + n.delta
    dims = tuple(range(-len(n.normalized_shape), 0))
    mu = x.mean(dim=dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=dims, keepdim=True)
    return n.weight * (x - mu) / torch.sqrt(var + n.eps) + n.bias


def _mlp_weights(mlp):
    if isinstance(mlp, SymMlp):
        A = mlp.fc2.weight
        return A, A.T
    if isinstance(mlp, AsymMlp):
        return mlp.fc1.weight, mlp.fc1.weight.T + mlp.fc2.weight
    return mlp.fc1.weight, mlp.fc2.weight


def _tokens(mlp, G):   # W2 GELU(W1 G) with W1 (Ns, S) acting on the token axis of G (b, S, C)
    W1, W2 = _mlp_weights(mlp)
    return torch.einsum("sh,bhc->bsc", W2, F.gelu(torch.einsum("hs,bsc->bhc", W1, G)))


def _channels(mlp, G):  # GELU(G W1^T) W2^T with W1 (Nc, C)
    W1, W2 = _mlp_weights(mlp)
    return torch.einsum("ch,bsh->bsc", W2, F.gelu(torch.einsum("hc,bsc->bsh", W1, G)))


@pytest.mark.parametrize("family", ["paramixer", "symmixer", "asymmixer"])
@pytest.mark.parametrize("norm", ["tokens_channels", "channels", "lagrangian"])
def test_parallel_block_update_formula(family, norm):
    m = tiny(family, norm=norm)
    blk = m.blocks[0]
    x = torch.randn(4, 16, 12, dtype=torch.float64)
    G = _norm(blk, x)
    expected = _tokens(blk.mlp_tokens, G) + _channels(blk.mlp_channels, G)
    torch.testing.assert_close(blk.update(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blk.step(x), x + expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blk.flow(x), expected - x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", ["tokens_channels", "channels"])
def test_serial_block_update_formula(norm):
    m = tiny("vanillamixer", norm=norm)
    blk = m.blocks[1]
    x = torch.randn(4, 16, 12, dtype=torch.float64)
    x1 = x + _tokens(blk.mlp_tokens, _norm(blk, x, "norm1"))
    x2 = x1 + _channels(blk.mlp_channels, _norm(blk, x1, "norm2"))
    torch.testing.assert_close(blk.step(x), x2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blk.update(x), x2 - x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_n_iter_repeats_the_block_with_shared_weights(family):
    m1 = tiny(family).eval()
    m3 = tiny(family, n_iter=3).eval()
    m3.load_state_dict(m1.state_dict())                     # same parameters: n_iter adds none
    assert _count(m1) == _count(m3)
    img = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        x = m1.stem(img)
        for blk in m1.blocks:
            for _ in range(3):
                x = x + blk.update(x)
        expected = m1.forward_head(m1.norm(x))
        torch.testing.assert_close(m3(img), expected, rtol=1e-10, atol=1e-12)
        assert (m3(img) - m1(img)).abs().max() > 1e-3


def test_drop_path_is_per_sample_and_off_in_eval():
    torch.manual_seed(0)
    m = hl.create_model("paramixer_cifar_tiny", drop_path_rate=0.5, num_blocks=1)
    blk = m.blocks[0]
    x = torch.randn(64, 64, 64)
    blk.train()
    u = blk.update(x)
    tokens, channels = blk.mlp_tokens.mix_tokens(blk.norm(x)), blk.mlp_channels(blk.norm(x))
    # every sample gets 2*(tokens or 0) + 2*(channels or 0), branches drawn independently
    options = torch.stack([torch.zeros_like(tokens), 2 * tokens, 2 * channels, 2 * tokens + 2 * channels])
    err = (u.unsqueeze(0) - options).flatten(2).abs().amax(-1)       # (4, batch)
    chosen = err.argmin(0)
    assert err.min(0).values.max() < 1e-5
    assert len(set(chosen.tolist())) >= 3                             # independent draws per branch
    blk.eval()
    torch.testing.assert_close(blk.update(x), tokens + channels)


# ------------------------------------------------------------------ energy
def _lagrangian_symmixer(seed=0, gamma=1.2):
    m = tiny("symmixer", norm="lagrangian", num_blocks=1)
    with torch.no_grad():
        m.blocks[0].norm.gamma.fill_(gamma)
    return m.blocks[0]


def test_energy_never_increases_along_the_flow():
    blk = _lagrangian_symmixer()
    torch.manual_seed(1)
    x = 2.0 * torch.randn(6, 16, 12, dtype=torch.float64)
    E = [blk.energy(x).detach()]
    with torch.no_grad():
        for _ in range(300):
            x = x + 0.02 * blk.flow(x)
            E.append(blk.energy(x))
    E = torch.stack(E)                                                 # (steps+1, batch)
    dE = E[1:] - E[:-1]
    assert (dE <= 1e-12).all(), f"largest increase {dE.max().item():.3e}"
    assert (E[-1] < E[0] - 1e-3).all()                                 # it does descend
    assert E.shape == (301, 6)


def test_energy_gradient_matches_flow():
    # dE/dt along dx/dt = flow(x) is <grad E, flow> = -<flow, H flow> <= 0 (H: Hessian of L_v)
    blk = _lagrangian_symmixer()
    x = torch.randn(3, 16, 12, dtype=torch.float64, requires_grad=True)
    (gradE,) = torch.autograd.grad(blk.energy(x).sum(), x)
    v = blk.flow(x).detach()
    # closed form: dE/dG = x - M(G) = -flow; gradE = H (x - M) -> J_g^T(-flow); check via a JVP of g
    _, Hv = torch.autograd.functional.jvp(lambda y: blk.norm(y), x.detach(), v)
    torch.testing.assert_close(gradE, -Hv, rtol=1e-9, atol=1e-10)
    assert ((gradE * v).sum(dim=(1, 2)) <= 1e-12).all()


def test_energy_matches_formula():
    from hopfield_lab.lagrangians import phi_gelu
    blk = _lagrangian_symmixer(gamma=0.8)
    x = torch.randn(2, 16, 12, dtype=torch.float64)
    G = _norm(blk, x)
    A, B = blk.mlp_tokens.fc2.weight, blk.mlp_channels.fc2.weight
    mu = x.mean(dim=(1, 2), keepdim=True)
    std = torch.sqrt(((x - mu) ** 2).mean(dim=(1, 2), keepdim=True) + blk.norm.eps)
    L = 16 * 12 * blk.norm.gamma * std.flatten() + (blk.norm.delta * x).sum(dim=(1, 2))
    expected = ((x * G).sum(dim=(1, 2)) - L - phi_gelu(torch.einsum("hs,bsc->bhc", A, G)).sum(dim=(1, 2))
                - phi_gelu(torch.einsum("bsc,hc->bsh", G, B)).sum(dim=(1, 2)))
    torch.testing.assert_close(blk.energy(x), expected, rtol=1e-10, atol=1e-10)


def test_energy_refused_where_none_exists():
    x = torch.randn(2, 16, 12, dtype=torch.float64)
    with pytest.raises(TypeError, match="element-wise gain"):
        tiny("symmixer").blocks[0].energy(x)                          # official nn.LayerNorm
    with pytest.raises(TypeError, match="untied weights"):
        tiny("paramixer", norm="lagrangian").blocks[0].energy(x)
    with pytest.raises(TypeError, match="untied weights"):
        tiny("asymmixer", norm="lagrangian").blocks[0].energy(x)
    with pytest.raises(TypeError, match="serial block"):
        tiny("vanillamixer", norm="lagrangian").blocks[0].energy(x)


def test_asymmetric_flow_breaks_descent():
    # the same flow with an asymmetric part has no Lyapunov function: the SymMixer "energy"
    # evaluated along it increases at some steps (this project measured 9,035 of 20,000 small Euler steps)
    sym = _lagrangian_symmixer()
    asym = tiny("asymmixer", norm="lagrangian", num_blocks=1).blocks[0]
    with torch.no_grad():
        asym.norm.L.gamma.copy_(sym.norm.gamma)
        asym.norm.L.delta.copy_(sym.norm.delta)
        asym.mlp_tokens.fc1.weight.copy_(sym.mlp_tokens.fc2.weight)
        asym.mlp_channels.fc1.weight.copy_(sym.mlp_channels.fc2.weight)
        asym.mlp_tokens.fc2.weight.mul_(4.0)
        asym.mlp_channels.fc2.weight.mul_(4.0)
        torch.manual_seed(2)
        x = torch.randn(8, 16, 12, dtype=torch.float64)
        ups = 0
        for _ in range(200):
            x_new = x + 0.02 * asym.flow(x)
            ups += int((sym.energy(x_new) > sym.energy(x) + 1e-12).sum())
            x = x_new
    assert ups > 0


# ------------------------------------------------------------------ the full three-layer HAM
def test_symmixer_flow_is_the_three_layer_ham_with_fast_hidden_layers():
    """Issue 4 item 6: integrate the full HAM (visible + token and channel GELU hidden layers)
    with small tau_s = tau_c and compare its visible trajectory with the reduced SymMixer flow."""
    blk = _lagrangian_symmixer()
    torch.manual_seed(3)
    x0 = torch.randn(4, 16, 12, dtype=torch.float64)
    T = 0.3
    # reduced flow, Euler with a fine step
    dt_ref = 1e-4
    x = x0.clone()
    with torch.no_grad():
        for _ in range(round(T / dt_ref)):
            x = x + dt_ref * blk.flow(x)
    x_reduced = x
    # the adiabatic limit is exact for the energy and the flow
    ham = blk.to_ham(tau_tokens=1e-2, tau_channels=1e-2)
    reduced = ham.eliminate("hs", "hc")
    with torch.no_grad():
        torch.testing.assert_close(reduced.energy({"x": x0}), blk.energy(x0), rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(reduced.flow({"x": x0})["x"], blk.flow(x0), rtol=1e-12, atol=1e-12)
    errors = {}
    for tau in (3e-2, 3e-3):
        ham = blk.to_ham(tau_tokens=tau, tau_channels=tau)
        states = ham.init_states(batch=4)                              # hidden layers start at 0
        states["x"] = x0.clone()
        traj = ham.run(states, steps=round(T / (tau / 5)), dt=tau / 5, method="euler")
        errors[tau] = ((traj.x["x"] - x_reduced).norm() / x_reduced.norm()).item()
        # the hidden layers are slaved to their inputs: H^s ~ A G, H^c ~ G B^T
        hidden = reduced.hidden_states({"x": traj.x["x"]})
        assert ((traj.x["hs"] - hidden["hs"]).norm() / hidden["hs"].norm()).item() < 20 * tau
    assert errors[3e-3] < 0.2 * errors[3e-2], errors                  # error is O(tau)
    assert errors[3e-3] < 1e-2, errors


# ------------------------------------------------------------------ symmetry penalty
def test_symmetry_penalty_value_and_gradient_reach_only_V():
    m = tiny("asymmixer", lam=0.1)
    V = [p for n, p in m.named_parameters() if n.endswith("fc2.weight")]
    assert len(V) == 2 * len(m.blocks)
    expected = 0.1 * sum((v ** 2).sum() for v in V)
    pen = m.symmetry_penalty()
    torch.testing.assert_close(pen, expected)
    pen.backward()
    for name, p in m.named_parameters():
        if name.endswith("fc2.weight"):
            torch.testing.assert_close(p.grad, 0.2 * p.detach())       # d/dV lam ||V||^2 = 2 lam V
        else:
            assert p.grad is None or torch.all(p.grad == 0), name


def test_penalty_gradient_method_equals_autograd_of_the_penalty():
    m = tiny("asymmixer", lam=0.3)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for V in m.breaking_weights():
            V.copy_(torch.randn(V.shape, generator=g, dtype=V.dtype))
    m.symmetry_penalty().backward()
    auto = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad(set_to_none=False)
    value = m.add_symmetry_penalty_grad_()
    assert not value.requires_grad and torch.equal(value, m.symmetry_penalty().detach())
    assert len(auto) == len(m.breaking_weights()) == 2 * len(m.blocks)
    for n, p in m.named_parameters():
        if n in auto:
            torch.testing.assert_close(p.grad, auto[n])                 # 2 λ V, added in place
        else:
            assert p.grad is None or not p.grad.any(), n
    fresh = tiny("asymmixer", lam=0.3)                                   # no grad yet: it is created
    fresh.add_symmetry_penalty_grad_()
    assert all(torch.equal(V.grad, 0.6 * V.detach()) for V in fresh.breaking_weights())


def test_lam_rules_have_one_home():
    assert mixer.check_lam(0, "symmixer_cifar_tiny") == 0.0 and mixer.check_lam(1e-2, AsymMlp) == 1e-2
    with pytest.raises(ValueError, match="only applies to AsymMixer.*not Mlp"):
        Mixer(**TINY, block_layer=ParallelMixerBlock, mlp_layer=Mlp, lam=0.1)
    with pytest.raises(ValueError, match="finite number ≥ 0"):
        mixer.check_lam(True)
    assert hl.create_model("symmixer_cifar_tiny", lam=0.0).lam == 0.0  # λ = 0: no penalty, any model


@pytest.mark.parametrize("family", ["vanillamixer", "paramixer", "symmixer"])
def test_symmetry_penalty_zero_for_other_models(family):
    m = tiny(family)
    pen = m.symmetry_penalty()
    assert pen.shape == () and pen.item() == 0.0 and pen.dtype == torch.float64
    assert hl.create_model("asymmixer_cifar_tiny").symmetry_penalty().item() == 0.0   # lam = 0


@pytest.mark.gpu
def test_cuda_forward_and_penalty_device():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    m = hl.create_model("asymmixer_cifar_tiny", lam=1e-2).cuda()
    assert m(torch.randn(2, 3, 32, 32, device="cuda")).device.type == "cuda"
    assert m.symmetry_penalty().device.type == "cuda"
    assert hl.create_model("paramixer_cifar_tiny").cuda().symmetry_penalty().device.type == "cuda"


@pytest.mark.parametrize("family", ["paramixer", "symmixer", "asymmixer"])
def test_token_mixing_paths_agree(family):
    blk = tiny(family).blocks[0]
    x = torch.randn(3, 16, 12, dtype=torch.float64)
    ref = blk.update(x)
    for mode in ("matmul", "transpose"):
        blk.mlp_tokens.token_mixing = mode
        torch.testing.assert_close(blk.update(x), ref, rtol=1e-12, atol=1e-12)
    blk.mlp_tokens.token_mixing = "sideways"
    with pytest.raises(ValueError, match="token_mixing"):
        blk.update(x)


# ------------------------------------------------------------------ tied initialisation (init="tied")
@pytest.mark.parametrize("family", list(mixer.FAMILIES))
def test_tied_init_starts_every_mlp_at_w2_equal_w1_transpose(family):
    """Step 0 of the spontaneous-symmetry-breaking experiment: cos∠(W2, W1ᵀ) = 1 in every block and
    branch of every family (SymMixer: by construction, and it accepts the option); AsymMixer: V = 0.
    Only W2 changes: W1 is the random init's, draw for draw."""
    from hopfield_lab.symmetry import mlp_weights, symmetry_report

    torch.manual_seed(0)
    random = mixer.create_model(f"{family}_cifar_tiny")
    torch.manual_seed(0)
    tied = mixer.create_model(f"{family}_cifar_tiny", init="tied")
    assert tied.init == "tied" and random.init == "random"
    mlps = [m for m in tied.modules() if isinstance(m, mixer._TwoLayer)]
    assert len(mlps) == 2 * len(tied.blocks)
    for m, m0 in zip(mlps, [m for m in random.modules() if isinstance(m, mixer._TwoLayer)]):
        W1, W2, V = mlp_weights(m)
        assert torch.equal(W2, W1.t())                                   # exactly tied
        assert torch.equal(W1, mlp_weights(m0)[0])                       # the same random W1
        if family == "asymmixer":
            assert V is not None and not V.any()                          # V = 0
        else:
            assert V is None
    for row in symmetry_report(tied):
        assert row["cosine"] == pytest.approx(1.0, abs=1e-12) and row["rel_distance"] == pytest.approx(0.0, abs=1e-12)
    if family in ("vanillamixer", "paramixer"):                           # the random start is not tied
        assert max(abs(r["cosine"]) for r in symmetry_report(random)) < 0.5


def test_tied_init_is_checked():
    with pytest.raises(ValueError, match="init must be one of random, tied"):
        mixer.create_model("paramixer_cifar_tiny", init="symmetric")


@pytest.mark.parametrize("family", list(mixer.FAMILIES))
def test_the_trainer_builds_the_tied_start_from_the_sweeps_override(family):
    """Step 0 of a run of ``sweep --inits tied`` (model override init=tied): the model the trainer
    builds has cosine 1 in every MLP before the first step, and the live runs' config passes it."""
    from hopfield_lab.demos.training import live_config
    from hopfield_lab.symmetry import symmetry_report
    from hopfield_lab.train import build_model

    cfg = live_config(family, lam=0.0, quick=True, init="tied")
    assert cfg.model_overrides["init"] == "tied"
    model = build_model(cfg, num_classes=10, in_chans=1, img_size=8)
    assert model.init == "tied"
    assert all(r["cosine"] == pytest.approx(1.0, abs=1e-12) for r in symmetry_report(model))
