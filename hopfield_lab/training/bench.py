"""Training throughput: images per second of the trainer's full step (``python -m hopfield_lab bench``)."""
from __future__ import annotations

import time

import torch
from torch import nn

from . import data as hd
from . import distributed as D
from . import perf
from .config import TrainConfig
from ..runtime import get_device, provenance, seed_everything
from .train import build_model, make_optimizer, param_groups, train_step

__all__ = ["benchmark"]


def benchmark(model: str | nn.Module, *, batch_size: int = 512, steps: int = 20, warmup: int = 5,
              compile: bool | str = False, amp: bool = True, device: str | None = None, img_size: int = 32,
              in_chans: int = 3, num_classes: int = 10, lam: float | None = None,
              model_overrides: dict | None = None, label_smoothing: float = 0.1,
              optimizer: str = "trainer") -> dict:
    """Training throughput of a model: img/s of full :func:`train_step` s after ``warmup`` untimed steps.

    Each step draws a batch from a :class:`~hopfield_lab.data.DeviceLoader` over random uint8
    images on the device (normalisation, reflect-pad crop and flip included), then runs forward,
    backward and an AdamW step: ``optimizer="trainer"`` is :func:`make_optimizer`'s (fused where
    torch has the kernel), ``"torch-default"`` a plain ``torch.optim.AdamW`` (what other
    training scripts, e.g. timm's, build). ``compile``: True (``torch.compile`` with
    :mod:`hopfield_lab.perf`'s fallback and mode switch) or a compile mode name. On CPU the
    allocator is tuned as in :func:`hopfield_lab.train.train` (:func:`hopfield_lab.perf.tune_cpu_allocator`).
    Returns ``{"model", "compile", "compile_mode", "compiled", "batch_size", "img_per_s",
    "ms_per_step", "params", "optimizer", "amp", "device", "torch_version"}`` and on CPU also
    ``"allocator"`` and ``"page_faults_per_step"``.
    """
    for name_, value, lo in (("batch_size", batch_size, 1), ("steps", steps, 1), ("warmup", warmup, 0),
                             ("img_size", img_size, 1), ("in_chans", in_chans, 1), ("num_classes", num_classes, 1)):
        if not isinstance(value, int) or value < lo:
            raise ValueError(f"benchmark: {name_} must be an integer >= {lo}, got {value!r}.")
    if device is not None:
        D.parse_device(device)
    dev = get_device(device)
    seed_everything(0)
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        cfg = TrainConfig(model=model, lam=lam, model_overrides=dict(model_overrides or {}))
        net = build_model(cfg, num_classes, in_chans, img_size)
    else:
        net = model
    net = net.to(dev)
    n_params = sum(p.numel() for p in net.parameters())
    if dev.type == "cpu":
        perf.tune_cpu_allocator()
    if optimizer == "trainer":
        opt = make_optimizer(net, TrainConfig(model=name), dev)
    elif optimizer == "torch-default":
        opt = torch.optim.AdamW(param_groups(net, TrainConfig.weight_decay), lr=TrainConfig.lr)
    else:
        raise ValueError(f"optimizer must be 'trainer' or 'torch-default', got {optimizer!r}")
    mode = compile if isinstance(compile, str) else None
    fwd = perf.compile_module(net, mode=mode) if compile else net
    n = batch_size * 4
    g = torch.Generator().manual_seed(0)
    loader = hd.DeviceLoader(torch.randint(0, 256, (n, in_chans, img_size, img_size), dtype=torch.uint8, generator=g),
                          torch.randint(0, num_classes, (n,), generator=g), batch_size, device=dev,
                          train=True, augment=hd.Augment(crop_padding=min(4, img_size // 4), flip=True))
    amp_dtype = perf.amp_dtype(dev, amp)

    def batches():
        e = 0
        while True:
            loader.set_epoch(e)
            yield from loader
            e += 1

    it = batches()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        x, y = next(it)
        train_step(fwd, x, y, opt, label_smoothing=label_smoothing, amp_dtype=amp_dtype)
    sync()
    faults, t0 = perf.page_faults(), time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        out = train_step(fwd, x, y, opt, label_smoothing=label_smoothing, amp_dtype=amp_dtype)
    out.loss.item()
    sync()
    dt = time.perf_counter() - t0
    prov = provenance(dev)
    rec = {"model": name, "compile": bool(compile), "compile_mode": (mode or "default") if compile else None,
           "compiled": perf.compile_status(fwd), "batch_size": batch_size, "steps": steps,
           "img_per_s": steps * batch_size / dt, "ms_per_step": 1000 * dt / steps, "params": n_params,
           "optimizer": "AdamW (fused)" if opt.defaults.get("fused") else "AdamW (torch default)",
           "amp": "bf16" if amp_dtype is not None else None,
           **{k: prov[k] for k in ("device", "torch_version")}}
    if dev.type == "cpu":
        rec.update(allocator=perf.allocator_mode() or "glibc (untouched)",
                   page_faults_per_step=(perf.page_faults() - faults) / steps)
    return rec
