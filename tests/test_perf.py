"""Speed switches (hopfield_lab.perf) and the fast forms of the Mixer's MLPs: same function as the
reference forms, same training, clean fallbacks. Facts only, never timings."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import hopfield_lab as hl
from hopfield_lab import distributed as D
from hopfield_lab import perf
from hopfield_lab.mixer import AsymMlp, Mlp, SymMlp

FAMILIES = ("vanillamixer", "paramixer", "symmixer", "asymmixer")
TINY = dict(img_size=8, patch_size=2, embed_dim=12, num_blocks=2, num_classes=5)  # S = 16, C = 12


# ------------------------------------------------------------------ fused forms = reference forms
def reference_mlp(mlp, x):
    """The official code's formulas (github.com/Toshihiro-Ota/paramixer, models/layers.py): vMlp
    fc2(act(fc1 x)), sMlp A^T act(A x), aMlp A^T act(A x) + fc2(act(A x)); (..., in) -> (..., in)."""
    if isinstance(mlp, Mlp):
        return F.linear(F.gelu(F.linear(x, mlp.fc1.weight)), mlp.fc2.weight)
    if isinstance(mlp, SymMlp):
        A = mlp.fc2.weight
        return F.linear(F.gelu(F.linear(x, A)), A.T)
    A, V = mlp.fc1.weight, mlp.fc2.weight
    h = F.gelu(F.linear(x, A))
    return F.linear(h, A.T) + F.linear(h, V)


def reference_tokens(mlp, x):
    """Token mixing as the official blocks do it: the MLP on the (b, C, S) transpose, (b, S, C) -> (b, S, C)."""
    return reference_mlp(mlp, x.transpose(1, 2)).transpose(1, 2)


def _grads(fn, params, x):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype)
    grads = torch.autograd.grad((out * g).sum(), [x, *params])
    return out.detach(), grads


@pytest.mark.parametrize("cls", [Mlp, SymMlp, AsymMlp])
@pytest.mark.parametrize("mode", ["bmm", "matmul", "transpose"])
def test_mlp_forms_equal_the_official_formulas_with_gradients(cls, mode):
    torch.manual_seed(0)
    mlp = cls(16, 24).double()
    with torch.no_grad():
        for p in mlp.parameters():
            p.normal_(0, 0.3)  # AsymMlp's V nonzero, everything off the init
    params = list(mlp.parameters())
    x = torch.randn(3, 16, 10, dtype=torch.float64)  # (b, S, C) for token mixing
    mlp.token_mixing = mode
    out, grads = _grads(mlp.mix_tokens, params, x)
    ref, ref_grads = _grads(lambda z: reference_tokens(mlp, z), params, x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
    # channel mixing (the MLP on the last axis)
    xc = torch.randn(3, 5, 16, dtype=torch.float64)
    out, grads = _grads(mlp, params, xc)
    ref, ref_grads = _grads(lambda z: reference_mlp(mlp, z), params, xc)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


def test_default_token_mixing_is_the_batched_gemm_form():
    m = hl.create_model("paramixer_cifar_tiny")
    assert {mlp.token_mixing for mlp in m.modules() if isinstance(mlp, Mlp)} == {"bmm"}
    with pytest.raises(ValueError, match="'bmm', 'matmul' or 'transpose'"):
        mlp = Mlp(4, 6)
        mlp.token_mixing = "sideways"
        mlp.mix_tokens(torch.zeros(1, 4, 3))


@pytest.mark.parametrize("family", FAMILIES)
def test_whole_model_same_logits_and_gradients_in_every_token_mixing_form(family):
    torch.manual_seed(0)
    model = hl.create_model(f"{family}_cifar_tiny", **TINY).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # the zero head would hide differences
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    results = {}
    for mode in ("bmm", "matmul", "transpose"):
        for mlp in model.modules():
            if hasattr(mlp, "token_mixing"):
                mlp.token_mixing = mode
        model.zero_grad()
        logits = model(x)
        logits.square().sum().backward()
        results[mode] = (logits.detach(), [p.grad.clone() for p in model.parameters()])
    ref_logits, ref_grads = results["transpose"]
    for mode in ("bmm", "matmul"):
        torch.testing.assert_close(results[mode][0], ref_logits, rtol=1e-12, atol=1e-12)
        for a, b in zip(results[mode][1], ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_float32_forms_agree_to_rounding():
    torch.manual_seed(0)
    mlp = AsymMlp(64, 32)
    with torch.no_grad():
        mlp.fc2.weight.normal_(0, 0.05)
    x = torch.randn(8, 64, 48)
    outs = {}
    for mode in ("bmm", "matmul", "transpose"):
        mlp.token_mixing = mode
        outs[mode] = mlp.mix_tokens(x)
    for mode in ("bmm", "matmul"):
        torch.testing.assert_close(outs[mode], outs["transpose"], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ optimizer
def test_adamw_is_fused_where_supported_and_updates_like_the_plain_one():
    torch.manual_seed(0)
    w = torch.randn(5, 3)
    g = torch.randn(5, 3)
    results = []
    for fused in (True, False):
        p = torch.nn.Parameter(w.clone())
        opt = perf.adamw([p], lr=1e-2, device="cpu", weight_decay=0.05) if fused else \
            torch.optim.AdamW([p], lr=1e-2, weight_decay=0.05, foreach=False)
        for _ in range(3):
            p.grad = g.clone()
            opt.step()
        results.append((p.detach().clone(), opt))
    (a, opt_a), (b, _) = results
    assert bool(opt_a.defaults.get("fused")) == perf.fused_adamw_supported("cpu")
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # explicit choices are kept
    assert not perf.adamw([torch.nn.Parameter(w.clone())], lr=1e-3, device="cpu", foreach=False).defaults["fused"]


def test_fused_adamw_supported_on_cpu_with_this_torch():
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        assert perf.fused_adamw_supported("cpu")


# ------------------------------------------------------------------ precision
def test_amp_dtype(monkeypatch):
    monkeypatch.delenv(perf.CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(perf, "cuda_bf16_native", lambda device="cuda": True)   # an A100/H100
    assert perf.amp_dtype("cuda") is torch.bfloat16
    monkeypatch.setattr(perf, "cuda_bf16_native", lambda device="cuda": False)  # a T4: no bf16 units
    assert perf.amp_dtype("cuda") is None
    monkeypatch.setattr(perf, "cuda_bf16_native", lambda device="cuda": True)
    assert perf.amp_dtype("cuda", enabled=False) is None
    assert perf.amp_dtype("cpu") is None                      # fp32 on every CPU by default
    monkeypatch.setenv(perf.CPU_BF16_ENV, "1")
    monkeypatch.setattr(perf, "cpu_bf16_supported", lambda: True)
    assert perf.amp_dtype("cpu") is torch.bfloat16
    monkeypatch.setattr(perf, "cpu_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="no bf16 units"):
        assert perf.amp_dtype("cpu") is None
    monkeypatch.setenv(perf.CPU_BF16_ENV, "maybe")
    with pytest.raises(ValueError, match=perf.CPU_BF16_ENV):
        perf.amp_dtype("cpu")


# ------------------------------------------------------------------ allocator
def test_tune_cpu_allocator_respects_the_switches(monkeypatch):
    calls, real = [], perf.set_cpu_allocator
    monkeypatch.setattr(perf, "set_cpu_allocator", lambda mode: calls.append(mode) or True)
    monkeypatch.setitem(perf._allocator, "mode", None)
    for k in perf._USER_MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(perf.MALLOC_ENV, "default")
    perf.tune_cpu_allocator()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")   # the user's own glibc settings win
    monkeypatch.delenv(perf.MALLOC_ENV)
    perf.tune_cpu_allocator()
    assert calls == []
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    perf.tune_cpu_allocator()
    assert calls == ["tuned"]
    monkeypatch.setenv(perf.MALLOC_ENV, "fast")
    with pytest.raises(ValueError, match="'tuned'"):
        perf.tune_cpu_allocator()
    with pytest.raises(ValueError, match="allocator mode"):
        real("fast")


@pytest.mark.skipif(perf._libc() is None, reason="glibc's allocator only")
def test_tuned_allocator_keeps_large_blocks_in_the_process():
    assert perf.set_cpu_allocator("tuned") and perf.allocator_mode() == "tuned"

    def touch():  # 64 MiB, above glibc's largest mmap threshold: mmapped and unmapped by default
        before = perf.page_faults()
        t = torch.empty(16 << 20, dtype=torch.float32)
        t.fill_(1.0)
        del t
        return perf.page_faults() - before

    # the heap settles on the pattern within a few rounds (the interpreter's small blocks interleave);
    # then the block is reused: no new pages (16384 faults per round if it went back to the OS)
    faults = [touch() for _ in range(10)]
    assert max(faults[-3:]) < 2000, faults


# ------------------------------------------------------------------ torch.compile with a fallback
def test_should_compile_and_options(monkeypatch):
    assert perf.should_compile(None, "cuda") and not perf.should_compile(None, "cpu")
    assert perf.should_compile(True, "cpu") and not perf.should_compile(False, "cuda")
    monkeypatch.delenv(perf.COMPILE_MODE_ENV, raising=False)
    monkeypatch.delenv(perf.COMPILE_BACKEND_ENV, raising=False)
    assert perf.compile_options() == {}
    monkeypatch.setenv(perf.COMPILE_MODE_ENV, "reduce-overhead")
    monkeypatch.setenv(perf.COMPILE_BACKEND_ENV, "eager")
    assert perf.compile_options() == {"mode": "reduce-overhead", "backend": "eager"}
    assert perf.compile_options(mode="default") == {"backend": "eager"}
    monkeypatch.setenv(perf.COMPILE_MODE_ENV, "fastest")
    with pytest.raises(ValueError, match=perf.COMPILE_MODE_ENV):
        perf.compile_options()


def _tiny_model():
    torch.manual_seed(0)
    model = hl.create_model("asymmixer_cifar_tiny", **TINY, lam=1e-2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no code generator on this machine")


def test_compile_failure_falls_back_to_eager_once(monkeypatch):
    torch._dynamo.reset()
    model = _tiny_model()
    wrapped = perf.CompileFallback(model, backend=_failing_backend)
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*running Mixer eagerly"):
        out = wrapped(x)
    torch.testing.assert_close(out, model(x))
    assert "no code generator" in wrapped.failure
    assert perf.compile_status(wrapped).startswith("eager (compile failed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        torch.testing.assert_close(wrapped(x), model(x))
    assert D.unwrap(wrapped) is model  # the trainer still finds the plain model


def test_compile_failure_in_the_backward_pass_falls_back_too():
    from torch._dynamo.backends.common import aot_autograd

    torch._dynamo.reset()
    model = _tiny_model()
    backend = aot_autograd(fw_compiler=lambda gm, ex: gm, bw_compiler=_failing_backend)
    wrapped = perf.CompileFallback(model, backend=backend)
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        out = wrapped(x)
    out.sum().backward()  # the eager graph: works
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_model_errors_are_not_mistaken_for_compile_errors():
    torch._dynamo.reset()
    wrapped = perf.CompileFallback(_tiny_model(), backend="eager")
    with pytest.raises(ValueError, match="expected images of shape"):
        wrapped(torch.randn(2, 3, 9, 9))


def test_compiled_module_trains_like_the_eager_one():
    torch._dynamo.reset()
    x = torch.randn(4, 3, 8, 8)
    grads = []
    for compiled in (False, True):
        model = _tiny_model()
        run = perf.CompileFallback(model, backend="eager") if compiled else model
        out = run(x)
        out.square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        if compiled:
            assert perf.compile_status(run) == "compiled" and run.failure is None
    for a, b in zip(*grads):  # the probe of the backward pass adds nothing to .grad
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_compile_status_of_plain_and_wrapped_modules():
    m = torch.nn.Linear(2, 2)
    assert perf.compile_status(m) == "eager"
    holder = torch.nn.Module()
    holder._orig_mod = m  # what torch.compile returns
    assert perf.compile_status(holder) == "compiled"


def test_describe_device_records_cpu_and_threads():
    rec = perf.describe_device("cpu")
    assert rec["device"] == "cpu" and rec["threads"] == torch.get_num_threads() >= 1
    assert isinstance(rec["cpu"], str) and rec["cpu"] and rec["torch_version"] == torch.__version__
    assert isinstance(rec["cpu_bf16_units"], bool)
