"""Speed switches of the training path, all in one visible place.

What the trainer (:func:`hopfield_lab.train.train`) and the benchmarks take from here:

==============================  ===============================================================
switch                          what it does
==============================  ===============================================================
:func:`tune_cpu_allocator`      CPU training: stop glibc from handing large blocks back to the OS
                                after every step (``HOPFIELD_LAB_CPU_MALLOC``; default ``tuned``)
:func:`adamw`                   AdamW, fused (one kernel for all parameters) wherever this torch
                                has the fused kernel for the device: CUDA, and CPU since torch 2.4
:func:`amp_dtype`               bf16 autocast on CUDA; on CPU only when asked for
                                (``HOPFIELD_LAB_CPU_BF16=1``) and the CPU has bf16 units
:func:`should_compile`          ``torch.compile`` by default on CUDA, off on CPU
:func:`compile_module`          ``torch.compile`` with a clean fallback: any compile error warns
                                once and the module runs eagerly (``HOPFIELD_LAB_COMPILE_MODE``,
                                ``HOPFIELD_LAB_COMPILE_BACKEND``)
==============================  ===============================================================

Why the allocator matters on CPU: a training step of a CIFAR-size Mixer allocates activations of
several MiB each. glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh
``mmap`` calls and trims the heap top when more than twice that is free, so every step returns
the activations to the kernel and faults them in again page by page (about 1e5 page faults and
a fifth of the step in system time at batch 64, C = 256 on a 2-core machine). With the tuned
setting the memory stays in the process and is reused: the process keeps its peak resident
memory, and a pattern of large blocks that changes can leave the heap a few times the largest
block. ``HOPFIELD_LAB_CPU_MALLOC=default`` (or glibc's own ``MALLOC_*_`` variables) turns it off.

Why bf16 is opt-in on CPU: on CPUs with bf16 matrix units (AMX, AVX512-BF16) bf16 autocast is
several times faster than fp32, on others it is far slower (emulated); and results of CPU runs
would differ between machines. So CPU training stays fp32 unless you ask.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import resource
import sys
import warnings
from typing import Any

import torch
from torch import nn

from ..runtime import provenance

__all__ = [
    "MALLOC_ENV", "CPU_BF16_ENV", "COMPILE_MODE_ENV", "COMPILE_BACKEND_ENV", "COMPILE_MODES",
    "tune_cpu_allocator", "set_cpu_allocator", "allocator_mode", "page_faults",
    "fused_adamw_supported", "adamw", "cpu_bf16_supported", "amp_dtype",
    "should_compile", "compile_options", "compile_module", "CompileFallback", "compile_status",
    "describe_device",
]

MALLOC_ENV = "HOPFIELD_LAB_CPU_MALLOC"
"""``tuned`` (default): :func:`tune_cpu_allocator` at the start of CPU training; ``default``: leave glibc alone."""
CPU_BF16_ENV = "HOPFIELD_LAB_CPU_BF16"
"""``1``: bf16 autocast on CPUs with bf16 units too (default ``0``: fp32 on every CPU)."""
COMPILE_MODE_ENV = "HOPFIELD_LAB_COMPILE_MODE"
"""``torch.compile`` mode: ``default`` | ``reduce-overhead`` (CUDA graphs) | ``max-autotune`` |
``max-autotune-no-cudagraphs``."""
COMPILE_BACKEND_ENV = "HOPFIELD_LAB_COMPILE_BACKEND"
"""``torch.compile`` backend (default ``inductor``; ``eager`` / ``aot_eager`` trace without code generation)."""
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={os.environ[name]!r} is not understood: use 1 (on) or 0 (off).")


# ---------------------------------------------------------------------------------------------
# the CPU allocator (glibc)
# ---------------------------------------------------------------------------------------------
# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
# "tuned": never mmap (large blocks come from the heap and are reused), never trim the heap top,
# grow it 64 MiB at a time. "glibc-default": the values glibc's dynamic thresholds reach on 64-bit
# systems once blocks of 32 MiB or more have been freed (mmap above 32 MiB, trim above 64 MiB);
# glibc cannot be put back into its dynamic mode, so this is the closest restorable state.
_ALLOCATOR_SETTINGS = {
    "tuned": ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1), (_M_TOP_PAD, 64 << 20)),
    "glibc-default": ((_M_MMAP_MAX, 65536), (_M_MMAP_THRESHOLD, 32 << 20),
                      (_M_TRIM_THRESHOLD, 64 << 20), (_M_TOP_PAD, 128 << 10)),
}
_USER_MALLOC_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                    "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", "LD_PRELOAD")
_allocator = {"mode": None}


def _libc():
    """glibc's ``mallopt``, or None (another C library, another OS)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def set_cpu_allocator(mode: str) -> bool:
    """Switch glibc's allocator to ``"tuned"`` or ``"glibc-default"`` (see the module docstring).

    Process-wide and immediate. Returns False (and changes nothing) where glibc is not the C
    library. Used by :func:`tune_cpu_allocator` and by ``benchmarks/bench_mixer.py``, which runs
    the official code's rounds under ``"glibc-default"``.
    """
    if mode not in _ALLOCATOR_SETTINGS:
        raise ValueError(f"allocator mode must be one of {sorted(_ALLOCATOR_SETTINGS)}, got {mode!r}")
    mallopt = _libc()
    if mallopt is None:
        return False
    ok = all(mallopt(param, value) == 1 for param, value in _ALLOCATOR_SETTINGS[mode])
    if ok:
        _allocator["mode"] = mode
    return ok


def allocator_mode() -> str | None:
    """The mode last set by :func:`set_cpu_allocator` in this process, or None (glibc's own)."""
    return _allocator["mode"]


def tune_cpu_allocator() -> str | None:
    """Call once at the start of CPU training: the ``"tuned"`` allocator, unless told otherwise.

    Leaves the allocator alone when ``HOPFIELD_LAB_CPU_MALLOC=default``, when the user set glibc's
    own ``MALLOC_*_`` / ``GLIBC_TUNABLES`` variables or preloads another allocator (``LD_PRELOAD``),
    or where glibc is not the C library. Returns the mode in effect (``"tuned"``) or None.
    Idempotent; the memory of the largest step stays with the process afterwards.
    """
    choice = os.environ.get(MALLOC_ENV, "tuned").strip().lower() or "tuned"
    if choice not in ("tuned", "default"):
        raise ValueError(f"{MALLOC_ENV}={choice!r} is not understood: use 'tuned' (the default) or "
                         "'default' (leave glibc's allocator alone).")
    if choice == "default" or any(os.environ.get(k) for k in _USER_MALLOC_ENV):
        return allocator_mode()
    if allocator_mode() != "tuned":
        set_cpu_allocator("tuned")
    return allocator_mode()


def page_faults() -> int:
    """Minor page faults of this process so far (``getrusage``): take differences around a step."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# ---------------------------------------------------------------------------------------------
# optimizer
# ---------------------------------------------------------------------------------------------
_FUSED: dict[str, bool] = {}


def fused_adamw_supported(device: str | torch.device) -> bool:
    """True when this torch has the fused AdamW kernel for ``device``'s type (CUDA; CPU since 2.4)."""
    kind = torch.device(device).type
    if kind not in _FUSED:
        try:
            p = torch.zeros(1, device=device, requires_grad=True)
            torch.optim.AdamW([p], fused=True)
            _FUSED[kind] = True
        except (RuntimeError, TypeError, ValueError):
            _FUSED[kind] = False
    return _FUSED[kind]


def adamw(params, *, lr: float, device: str | torch.device, **kwargs) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, lr=lr, fused=True, **kwargs)`` where supported, else the default
    (for-each) AdamW. Same update rule; the fused kernel does one pass over all parameters."""
    if "fused" not in kwargs and "foreach" not in kwargs and fused_adamw_supported(device):
        kwargs["fused"] = True
    return torch.optim.AdamW(params, lr=lr, **kwargs)


# ---------------------------------------------------------------------------------------------
# precision
# ---------------------------------------------------------------------------------------------
def cpu_bf16_supported() -> bool:
    """True when oneDNN reports bf16 units on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_bf16_native(device: str | torch.device = "cuda") -> bool:
    """True on a CUDA GPU with bf16 tensor cores (compute capability 8.0 or newer)."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def amp_dtype(device: str | torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype of training on ``device``: bf16 on a CUDA GPU with bf16 tensor cores
    (compute capability 8.0 or newer) when ``enabled``, None (fp32) on older GPUs such as Colab's
    T4 (7.5), which would emulate bf16 slowly; on CPU None (fp32) unless ``HOPFIELD_LAB_CPU_BF16=1``
    and :func:`cpu_bf16_supported` (a warning says so when asked for on a CPU without bf16 units);
    None on other devices."""
    dev = torch.device(device)
    kind = dev.type
    if not enabled:
        return None
    if kind == "cuda":
        return torch.bfloat16 if cuda_bf16_native(dev) else None
    if kind == "cpu" and _flag(CPU_BF16_ENV):
        if cpu_bf16_supported():
            return torch.bfloat16
        warnings.warn(f"{CPU_BF16_ENV}=1 but this CPU has no bf16 units (oneDNN reports none): bf16 "
                      "would be emulated and far slower, so training stays in float32.", stacklevel=2)
    return None


# ---------------------------------------------------------------------------------------------
# torch.compile with a fallback
# ---------------------------------------------------------------------------------------------
def should_compile(flag: bool | None, device: str | torch.device) -> bool:
    """The ``compile`` setting resolved: ``flag`` if given, else True exactly on CUDA."""
    if flag is not None:
        return bool(flag)
    return torch.device(device).type == "cuda"


def compile_options(mode: str | None = None, backend: str | None = None) -> dict:
    """Keyword arguments of ``torch.compile``: ``mode`` / ``backend``, else the environment
    switches (:data:`COMPILE_MODE_ENV`, :data:`COMPILE_BACKEND_ENV`), else torch's defaults."""
    mode = mode or os.environ.get(COMPILE_MODE_ENV, "").strip() or "default"
    if mode not in COMPILE_MODES:
        raise ValueError(f"torch.compile mode {mode!r} is not one of {COMPILE_MODES} "
                         f"(check {COMPILE_MODE_ENV}).")
    backend = backend or os.environ.get(COMPILE_BACKEND_ENV, "").strip() or "inductor"
    kw: dict[str, Any] = {}
    if mode != "default":
        kw["mode"] = mode
    if backend != "inductor":
        kw["backend"] = backend
    return kw


def _short(exc: BaseException) -> str:
    """``Type: message`` of an exception and of its root cause, on one line (at most ~600 characters)."""
    def one(e):
        text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        return f"{type(e).__name__}: {text[:300]}"

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return one(exc) if root is exc else f"{one(exc)} (cause: {one(root)})"


class CompileFallback(nn.Module):
    """A module run through ``torch.compile``, or eagerly once compiling has failed.

    ``CompileFallback(module, **compile_kwargs)`` calls the compiled module. If that raises, the
    same call runs eagerly: when the eager call raises too, that error is the model's own and is
    raised as usual; otherwise compilation was at fault, a warning (once) says why and every later
    call runs eagerly. The first call with gradients also compiles the backward pass at once (a
    throw-away ``autograd.grad`` of the output sum, graph retained), so that a backward compile
    error falls back here too instead of surfacing in ``loss.backward()``.

    The plain module is ``_orig_mod`` (as with ``torch.compile``), so
    :func:`hopfield_lab.distributed.unwrap` finds it. ``failure`` holds the reason of a fallback
    (None while compiled).
    """

    def __init__(self, module: nn.Module, **compile_kwargs):
        super().__init__()
        self._orig_mod = module
        self.failure: str | None = None
        self._backward_checked = False
        try:
            compiled = torch.compile(module, **compile_kwargs)
        except Exception as exc:  # e.g. a Python version torch.compile does not support yet
            compiled = None
            self._fail(exc)
        object.__setattr__(self, "_compiled", compiled)  # not a submodule: no second parameter set

    def _fail(self, exc: BaseException) -> None:
        self.failure = _short(exc)
        warnings.warn(f"torch.compile failed ({self.failure}); running {type(self._orig_mod).__name__} "
                      "eagerly instead (same results, slower).", RuntimeWarning, stacklevel=3)

    def forward(self, *args, **kwargs):
        if self.failure is not None:
            return self._orig_mod(*args, **kwargs)
        try:
            out = self._compiled(*args, **kwargs)
            if not self._backward_checked and torch.is_grad_enabled():
                self._compile_backward(out)
            return out
        except Exception as exc:
            out = self._orig_mod(*args, **kwargs)  # the model's own errors raise here
            self._fail(exc)
            return out

    def _compile_backward(self, out) -> None:
        tensors = [t for t in (out if isinstance(out, (tuple, list)) else [out])
                   if isinstance(t, torch.Tensor) and t.requires_grad]
        params = [p for p in self._orig_mod.parameters() if p.requires_grad]
        if tensors and params:
            total = sum(t.float().sum() for t in tensors)
            torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
        self._backward_checked = True


def compile_module(module: nn.Module, mode: str | None = None, backend: str | None = None) -> CompileFallback:
    """``torch.compile(module)`` with :class:`CompileFallback`'s fallback; options as
    :func:`compile_options`."""
    return CompileFallback(module, **compile_options(mode, backend))


def compile_status(module: nn.Module) -> str:
    """``"compiled"``, ``"eager (compile failed: ...)"`` or ``"eager"`` for a (possibly wrapped) module."""
    m = module
    while m is not None:
        if isinstance(m, CompileFallback):
            return "compiled" if m.failure is None else f"eager (compile failed: {m.failure})"
        if hasattr(m, "_orig_mod") and isinstance(getattr(m, "_orig_mod"), nn.Module):
            return "compiled"
        m = getattr(m, "module", None) if isinstance(getattr(m, "module", None), nn.Module) else None
    return "eager"


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
def describe_device(device: str | torch.device) -> dict:
    """What a throughput or result record should say about the hardware: ``device`` (the GPU's
    name or ``"cpu"``), ``cpu`` (model name), ``threads`` (torch's intra-op threads), ``cores``,
    ``torch_version``, and for CUDA the ``cuda`` version and ``gpu_memory_gib``."""
    dev = torch.device(device)
    prov = provenance(dev)
    rec = {"device": prov["device"], "cpu": prov["cpu"], "threads": prov["cpu_threads"], "cores": os.cpu_count(),
           "torch_version": prov["torch_version"]}
    if dev.type == "cuda":
        rec["cuda"] = torch.version.cuda
        rec["gpu_memory_gib"] = round(torch.cuda.get_device_properties(dev).total_memory / 2**30, 1)
    else:
        rec["cpu_bf16_units"] = cpu_bf16_supported()
    return rec
