"""Mathematical facts about every Lagrangian in hopfield_lab.lagrangians (float64).

The subclasses are discovered from the module, so a new Lagrangian is covered automatically as
long as ``cls()`` constructs it.
"""
import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield_lab import lagrangians as lg



@pytest.fixture(autouse=True, scope="module")
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


ALL = sorted(
    (
        obj
        for _, obj in inspect.getmembers(lg, inspect.isclass)
        if issubclass(obj, lg.Lagrangian) and obj is not lg.Lagrangian and not obj.__name__.startswith("_")
    ),
    key=lambda c: c.__name__,
)

SETTINGS = settings(max_examples=25, deadline=None)


def test_discovery_finds_the_documented_lagrangians():
    names = {c.__name__ for c in ALL}
    assert {"Identity", "RePU", "ReLU", "Softmax", "Tanh", "GELU", "LayerNorm", "Spherical"} <= names


@st.composite
def shapes_and_dims(draw):
    """A random shape (1 to 4 dims) and a set of trailing neuron dims inside it."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    k = draw(st.integers(1, ndim))
    trailing = list(range(-k, 0))
    # keep -k (so the span is k) and any non-empty subset of the rest
    chosen = [-k] + [d for d in trailing[1:] if draw(st.booleans())]
    dim = chosen[0] if len(chosen) == 1 and draw(st.booleans()) else tuple(chosen)
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    return shape, dim, seed, scale


def _x(shape, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, generator=gen)


def _make(cls, dim):
    obj = cls()
    obj.dim = lg._normalise_dim(dim)
    return obj


def _reduced_shape(shape, dim):
    dims = {len(shape) + d for d in lg._normalise_dim(dim)}
    return tuple(n for i, n in enumerate(shape) if i not in dims)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_default_constructible(cls):
    obj = cls()
    assert isinstance(obj, torch.nn.Module)
    assert obj.dim == (-1,)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@SETTINGS
@given(case=shapes_and_dims())
def test_autograd_of_L_equals_activation(cls, case):
    shape, dim, seed, scale = case
    lag = _make(cls, dim)
    x = _x(shape, seed, scale).requires_grad_(True)
    L = lag(x)
    assert L.shape == _reduced_shape(shape, dim)
    (grad,) = torch.autograd.grad(L.sum(), x)
    g = lag.activation(x.detach())
    assert g.shape == x.shape
    torch.testing.assert_close(g, grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@SETTINGS
@given(case=shapes_and_dims())
def test_legendre_identity(cls, case):
    shape, dim, seed, scale = case
    lag = _make(cls, dim)
    x = _x(shape, seed, scale)
    g = lag.activation(x)
    expected = (x * g).sum(dim=lag.dim) - lag(x)
    got = lag.legendre(x)
    assert got.shape == _reduced_shape(shape, dim)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 5))
def test_hessian_psd_where_convex(cls, seed, n):
    """A symmetric Hessian (g is a gradient) that is PSD exactly for the convex Lagrangians."""
    lag = cls()
    x = _x((n,), seed, 1.5)
    H = torch.autograd.functional.jacobian(lag.activation, x)
    torch.testing.assert_close(H, H.T, rtol=1e-9, atol=1e-10)
    if cls.convex:
        assert torch.linalg.eigvalsh(H).min() >= -1e-10


def test_gelu_phi_not_convex_below_minus_075():
    x = torch.linspace(-4, 4, 8001)
    second = torch.autograd.functional.jacobian(lambda t: torch.nn.functional.gelu(t).sum(), x)
    # GELU'(x) = Phi_N(x) + x phi(x): its only zero is at x* ~ -0.7518
    neg = x[second < 0]
    assert neg.max().item() == pytest.approx(-0.7518, abs=2e-3)
    assert neg.min().item() == pytest.approx(-4.0)
    # chord test: Phi lies above a chord somewhere below -0.75
    a, b = torch.tensor(-3.0), torch.tensor(-1.0)
    assert lg.phi_gelu((a + b) / 2) > (lg.phi_gelu(a) + lg.phi_gelu(b)) / 2
    assert not lg.GELU.convex


def test_phi_gelu_values_and_stability():
    assert lg.phi_gelu(torch.tensor(0.0)).item() == 0.0
    # Phi(-inf) = 1/4 and Phi(x) ~ x^2/2 - 1/4 for large x, without cancellation
    assert lg.phi_gelu(torch.tensor(-1e4)).item() == pytest.approx(0.25, rel=1e-12)
    big = torch.tensor(50.0)
    assert lg.phi_gelu(big).item() == pytest.approx(50.0**2 / 2 - 0.25, rel=1e-12)
    # float32 far in the negative tail stays finite and near 1/4
    assert lg.phi_gelu(torch.tensor(-1e3, dtype=torch.float32)).item() == pytest.approx(0.25, rel=1e-6)
    # numerical integration of GELU from 0 to x
    xs = torch.linspace(0, 2, 20001)
    integral = torch.trapezoid(torch.nn.functional.gelu(xs), xs)
    assert lg.phi_gelu(torch.tensor(2.0)).item() == pytest.approx(integral.item(), abs=1e-8)


@pytest.mark.parametrize("cls", [lg.LayerNorm, lg.Spherical])
@SETTINGS
@given(case=shapes_and_dims())
def test_norm_lagrangians_legendre_vanishes_at_eps0(cls, case):
    shape, dim, seed, scale = case
    lag = cls(gamma=1.7, eps=0.0, dim=dim)
    x = _x(shape, seed, scale)
    if lag.neuron_count(x) < 2:
        return  # a single neuron has zero variance: LayerNorm undefined at eps = 0
    g = lag.activation(x)
    explicit = (x * g).sum(dim=lag.dim) - lag(x)
    assert lag.legendre(x).abs().max() == 0.0
    assert explicit.abs().max() <= 1e-9 * (1 + lag(x).abs().max())


def test_norm_lagrangians_are_one_homogeneous_at_eps0():
    x = _x((3, 4, 5), 0, 1.0)
    for lag in (lg.LayerNorm(eps=0.0, dim=(-2, -1)), lg.Spherical(eps=0.0, dim=(-2, -1))):
        torch.testing.assert_close(lag(3.0 * x), 3.0 * lag(x))
        torch.testing.assert_close(lag.activation(3.0 * x), lag.activation(x))


def test_layernorm_hessian_zero_modes():
    """Shift (and at eps = 0 also scale) are zero modes of the LayerNorm Hessian."""
    x = _x((6,), 3, 1.0)
    ones = torch.ones(6)
    for eps in (1e-3, 0.0):
        lag = lg.LayerNorm(gamma=2.0, eps=eps)
        H = torch.autograd.functional.jacobian(lag.activation, x)
        torch.testing.assert_close(H @ ones, torch.zeros(6), atol=1e-12, rtol=0)
        ev = torch.linalg.eigvalsh(H)
        assert ev.min() > -1e-12
        if eps == 0.0:
            torch.testing.assert_close(H @ x, torch.zeros(6), atol=1e-12, rtol=0)
            assert (ev.abs() < 1e-10).sum() == 2


@pytest.mark.parametrize("dim", [-1, (-2, -1), (-3, -1)])
def test_layernorm_hvp_is_the_jacobian_of_the_activation(dim):
    """hvp(x, v) = (dg/dx) v = (Hessian of L) v, for any neuron dims, gamma and delta."""
    x, v = _x((2, 3, 4, 5), 7, 1.5), _x((2, 3, 4, 5), 8, 1.0)
    lag = lg.LayerNorm(gamma=1.7, delta=0.3, eps=1e-3, dim=dim)
    _, jv = torch.autograd.functional.jvp(lag.activation, x, v)
    torch.testing.assert_close(lag.hvp(x, v), jv, rtol=1e-10, atol=1e-12)
    w = _x((2, 3, 4, 5), 9, 1.0)  # symmetric: <w, H v> = <v, H w>
    torch.testing.assert_close((w * lag.hvp(x, v)).sum(), (v * lag.hvp(x, w)).sum())


def test_layernorm_over_tokens_by_channels_matrix():
    """dim=(-2,-1) normalises the whole S x C matrix jointly, like nn.LayerNorm((S, C))."""
    S, C = 4, 6
    x = _x((5, S, C), 1, 2.0)
    gamma = 1.3
    delta = _x((S, C), 2, 0.5)
    lag = lg.LayerNorm(gamma=gamma, delta=delta, eps=1e-6, dim=(-2, -1))
    ref = torch.nn.functional.layer_norm(x, (S, C), eps=1e-6) * gamma + delta
    torch.testing.assert_close(lag.activation(x), ref)
    mean = ref - delta
    assert mean.mean(dim=(-2, -1)).abs().max() < 1e-12  # jointly centred
    D = S * C
    var = x.var(dim=(-2, -1), unbiased=False)
    torch.testing.assert_close(lag(x), D * gamma * torch.sqrt(var + 1e-6) + (delta * x).sum(dim=(-2, -1)))
    # per-token normalisation differs
    per_token = lg.LayerNorm(gamma=gamma, eps=1e-6, dim=-1)
    assert per_token(x).shape == (5, S)
    assert not torch.allclose(per_token.activation(x), lag.activation(x) - delta)


def test_delta_on_a_non_trailing_neuron_dim():
    """dim=-2 alone: tokens are neurons, channels a batch dim; delta has the token shape."""
    x = _x((2, 3, 4), 5, 1.0)
    delta = torch.arange(3.0)
    lag = lg.Spherical(delta=delta, dim=-2)
    g = lag.activation(x)
    ref = x / torch.sqrt((x * x).sum(-2, keepdim=True) + 1e-5) + delta[:, None]
    torch.testing.assert_close(g, ref)
    assert lag(x).shape == (2, 4)


def test_softmax_matches_torch_and_sums_to_one():
    x = _x((3, 2, 5), 7, 4.0)
    lag = lg.Softmax(beta=2.5, dim=(-2, -1))
    g = lag.activation(x)
    ref = torch.softmax(2.5 * x.reshape(3, 10), -1).reshape(3, 2, 5)
    torch.testing.assert_close(g, ref)
    torch.testing.assert_close(g.sum(dim=(-2, -1)), torch.ones(3))
    # huge values do not overflow
    assert torch.isfinite(lag(1e4 * x)).all() and torch.isfinite(lag.activation(1e4 * x)).all()


def test_tanh_stable_for_large_inputs():
    x = torch.tensor([-800.0, 0.0, 800.0])
    L = lg.Tanh(dim=-1)(x[:, None])
    torch.testing.assert_close(L, torch.tensor([800 - math.log(2), 0.0, 800 - math.log(2)]))


def test_relu_is_repu2_and_repu_powers():
    x = _x((4, 7), 11, 1.0)
    torch.testing.assert_close(lg.ReLU().activation(x), torch.relu(x))
    torch.testing.assert_close(lg.RePU(n=3).activation(x), torch.relu(x) ** 2)
    torch.testing.assert_close(lg.RePU(n=3)(x), (torch.relu(x) ** 3).sum(-1) / 3)


def test_non_scalar_gamma_is_rejected_with_reason():
    for cls in (lg.LayerNorm, lg.Spherical):
        with pytest.raises(ValueError, match="not the gradient of any scalar Lagrangian"):
            cls(gamma=torch.ones(5))
        with pytest.raises(ValueError, match="gamma must be > 0"):
            cls(gamma=-1.0)
    assert float(lg.LayerNorm(gamma=torch.tensor([2.0])).gamma) == 2.0  # one element is fine


def test_learnable_parameters_receive_gradients():
    lag = lg.LayerNorm(gamma=1.5, delta=torch.zeros(4), learnable=True)
    assert {n for n, _ in lag.named_parameters()} == {"gamma", "delta"}
    x = _x((3, 4), 0, 1.0)
    lag.activation(x).pow(2).sum().backward()
    assert lag.gamma.grad is not None and lag.delta.grad is not None
    fixed = lg.LayerNorm(gamma=1.5)
    assert list(fixed.parameters()) == [] and "gamma" in dict(fixed.named_buffers())


def test_dtype_and_module_to():
    lag = lg.LayerNorm(delta=torch.ones(3, dtype=torch.float64))
    x = torch.randn(2, 3, dtype=torch.float32)
    assert lag.activation(x).dtype == torch.float32 and lag(x).dtype == torch.float32


def test_bad_arguments():
    with pytest.raises(ValueError, match="negative"):
        lg.Tanh(dim=1)
    with pytest.raises(ValueError, match="twice"):
        lg.Tanh(dim=(-1, -1))
    with pytest.raises(ValueError, match="n > 1"):
        lg.RePU(n=1)
    with pytest.raises(ValueError, match="beta > 0"):
        lg.Softmax(beta=0.0)
    with pytest.raises(ValueError, match="at least 2 dims"):
        lg.Tanh(dim=(-2, -1))(torch.zeros(3))
    with pytest.raises(ValueError, match="does not broadcast"):
        lg.LayerNorm(delta=torch.zeros(5)).activation(torch.zeros(2, 4))


def test_get_lagrangian():
    assert isinstance(lg.get_lagrangian("ReLU"), lg.ReLU)
    sm = lg.get_lagrangian("softmax", beta=3.0, dim=(-2, -1))
    assert sm.beta == 3.0 and sm.dim == (-2, -1)
    assert isinstance(lg.get_lagrangian("layer_norm"), lg.LayerNorm)
    t = lg.Tanh()
    assert lg.get_lagrangian(t) is t
    with pytest.raises(ValueError, match="Valid names: .*gelu.*layernorm"):
        lg.get_lagrangian("sigmoid")
    for cls in ALL:
        assert isinstance(lg.get_lagrangian(cls.name), cls)
