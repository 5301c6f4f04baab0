"""The training engine: configuration, loop, checkpoints and the result JSON.

One function does a whole run::

    from hopfield_lab.train import TrainConfig, train
    result = train(TrainConfig(model="symmixer_cifar_small", dataset="cifar10", epochs=30,
                               out_dir="runs/sym"))
    result["test_acc"]        # final test accuracy, a fraction

What a run does:

* data: :func:`hopfield_lab.data.load_dataset` + :class:`~hopfield_lab.data.DeviceLoader` (whole
  split on the device, augmentation there), or any loaders you pass (see :func:`train`);
* optimisation: AdamW (fused on CUDA and CPU), no weight decay on 1-D parameters (norms, biases),
  warm-up + cosine or one-cycle schedule stepped every batch, label smoothing, bf16 autocast on
  CUDA, ``torch.compile`` on CUDA (falls back to eager); the model's ``symmetry_penalty()`` (AsymMixer:
  ``lam * sum ||V||^2``) is added to the loss;
* every epoch: evaluation, history (plain numbers), symmetry metrics of the weights
  (:func:`hopfield_lab.symmetry.symmetry_report`), an atomic checkpoint (temp file + ``os.replace``);
* exact resume from the checkpoint in ``out_dir`` (model, optimizer, scheduler, RNG states, the
  loader's epoch, history); on CPU a resumed run ends with the same numbers as an uninterrupted one;
* under ``torchrun`` (see :mod:`hopfield_lab.distributed`): each rank trains on its shard of
  every epoch with its own random streams (drop-path masks, mixup; :func:`seed_rank`), metrics
  are summed across ranks, only rank 0 writes files;
* a result JSON (``out_dir/result.json``) with the metrics, timing, device, versions and config.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import random
import subprocess
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as D
from . import perf
from .runtime import seed_everything

SCHEDULES = ("cosine", "onecycle")
RECIPES = ("none", "paper")
CHECKPOINT_NAME = "checkpoint.pt"
RESULT_NAME = "result.json"
# Fields that may differ between a checkpoint and the run that resumes it.
_RESUME_FREE = {"out_dir", "resume", "stop_after_epochs", "progress", "result_path", "compile",
                "keep_checkpoint", "eval_every", "symmetry_every", "checkpoint_every", "device",
                "data_root", "download", "workers"}


def _f(default, help: str, **kw):
    """A dataclass field with a help text (used by the CLI)."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything that defines a training run (all plain data: it is stored in the result JSON).

    The defaults are the CIFAR-10 set-up of the book's chapter 8 (science.md section 6).
    """

    model: str = _f("paramixer_cifar_small", "model preset name (see hopfield_lab.list_models())")
    lam: float | None = _f(None, "symmetry-breaking penalty lambda of AsymMixer models "
                                 "(loss += lam * sum ||V||^2); only for asym* models")
    dataset: str = _f("cifar10", "mnist | cifar10 | cifar100 | digits | synthetic | mnist-test10k "
                                 "| path of an ImageFolder directory or .tar.gz")
    data_root: str | None = _f(None, "data root (downloads, offline archives); default "
                                     "$HOPFIELD_LAB_DATA or ~/.cache/hopfield_lab")
    download: bool = _f(True, "let torchvision download missing data")
    recipe: str = _f("none", "none: the fields as given, GPU-resident data (DeviceLoader) | paper: the "
                             "paper's 224-px recipe (hopfield_lab.recipes.PAPER): streaming loaders with "
                             "torchvision transforms and mixup/cutmix (needs torchvision); on the command "
                             "line its hyperparameters become the defaults", choices=RECIPES)
    workers: int | None = _f(None, "loader processes per rank of the streaming loader (recipe paper); "
                                   "default: the CPU cores shared by the local ranks, less one")
    epochs: int = _f(30, "number of training epochs")
    batch_size: int = _f(512, "global batch size (split over ranks under torchrun)")
    lr: float = _f(1e-3, "peak learning rate of AdamW")
    weight_decay: float = _f(0.05, "AdamW weight decay (not applied to 1-D parameters: norms, biases)")
    schedule: str = _f("onecycle", "learning-rate schedule, stepped every batch: onecycle | cosine")
    warmup_epochs: float | None = _f(None, "warm-up length in epochs (may be fractional); default: "
                                           "30%% of the run for onecycle, 0 for cosine")
    label_smoothing: float = _f(0.1, "label smoothing of the training cross-entropy")
    grad_clip: float | None = _f(None, "clip the gradient norm to this value (off by default)")
    crop_padding: int = _f(4, "random-crop augmentation: pad each side by this many pixels (0: off)")
    pad_mode: str = _f("reflect", "padding of the random crop: reflect | zeros")
    flip: bool = _f(True, "random horizontal flips")
    img_size: int | None = _f(None, "resize images on the device to this size and build the model "
                                    "for it (default: the data's size)")
    train_subset: int | None = _f(None, "use only N training images, a fixed random subset (quick runs)")
    test_subset: int | None = _f(None, "use only N test images, a fixed random subset (quick runs)")
    amp: bool = _f(True, "bf16 autocast on CUDA (on CPU only with HOPFIELD_LAB_CPU_BF16=1 on a CPU "
                         "with bf16 units; see hopfield_lab.perf)")
    compile: bool | None = _f(None, "torch.compile the model; default: on CUDA, off on CPU. A compile "
                                    "error warns and falls back to eager (hopfield_lab.perf)")
    device: str | None = _f(None, "cuda | cpu | cuda:1 ... (default: CUDA if present)")
    seed: int = _f(0, "seed of initialisation, shuffling and augmentation")
    deterministic: bool = _f(False, "use deterministic algorithms only (slower on GPU)")
    eval_every: int = _f(1, "evaluate on the test split every N epochs (and always after the last)")
    symmetry_every: int = _f(1, "record symmetry metrics every N epochs (0: only at the end)")
    symmetry_metrics: bool = _f(True, "record the symmetry metrics of the weights")
    out_dir: str | None = _f(None, "folder for the checkpoint and result.json (none: nothing written)")
    resume: bool = _f(True, "continue from out_dir/checkpoint.pt when it exists")
    checkpoint_every: int = _f(1, "write the checkpoint every N epochs (and after the last)")
    keep_checkpoint: bool = _f(True, "keep the checkpoint after the run has finished")
    stop_after_epochs: int | None = _f(None, "stop (as if interrupted) once this many epochs are "
                                             "done; the run can be resumed later")
    result_path: str | None = _f(None, "where to write the result JSON (default out_dir/result.json)")
    progress: bool = _f(True, "show a tqdm progress bar")
    model_overrides: dict = _f({}, "extra keyword arguments for create_model (e.g. depth, n_iter)")
    dataset_options: dict = _f({}, "options of the synthetic data set (n, n_test, size, channels, ...)")

    def validate(self) -> "TrainConfig":
        """Raise a ValueError that says what to change when a field is out of range."""
        def need(cond, msg):
            if not cond:
                raise ValueError(f"Bad TrainConfig: {msg}")
        need(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be an integer >= 1, got {self.epochs!r}.")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        need(self.lr > 0 and math.isfinite(self.lr), f"lr must be positive, got {self.lr!r}.")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        need(self.recipe in RECIPES, f"recipe must be one of {RECIPES}, got {self.recipe!r}.")
        need(self.recipe != "paper" or (self.crop_padding == 0 and not self.flip),
             "recipe 'paper' augments with its own transforms (random-resized crop, flip, RandAugment, "
             f"erasing, mixup/cutmix), so crop_padding={self.crop_padding!r} and flip={self.flip!r} would be "
             "ignored: set crop_padding=0 and flip=False (the recipe's defaults), or use recipe 'none'.")
        need(self.workers is None or (isinstance(self.workers, int) and self.workers >= 0),
             f"workers must be an integer >= 0, got {self.workers!r}.")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        need(self.warmup_epochs is None or 0 <= self.warmup_epochs < self.epochs,
             f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs!r}.")
        need(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}.")
        need(self.lam is None or self.lam >= 0, f"lam must be >= 0, got {self.lam!r}.")
        need(self.pad_mode in ("reflect", "zeros"), f"pad_mode must be 'reflect' or 'zeros', got {self.pad_mode!r}.")
        need(self.crop_padding >= 0, f"crop_padding must be >= 0, got {self.crop_padding!r}.")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every!r}.")
        need(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every!r}.")
        need(self.stop_after_epochs is None or self.stop_after_epochs >= 1,
             f"stop_after_epochs must be >= 1, got {self.stop_after_epochs!r}.")
        need(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be positive, got {self.grad_clip!r}.")
        for name in ("train_subset", "test_subset", "img_size"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 1), f"{name} must be a positive integer, got {v!r}.")
        if self.lam is not None and self.lam != 0 and not is_asym(self.model):
            raise ValueError(
                f"Bad TrainConfig: lam={self.lam} is the penalty of AsymMixer models, but model "
                f"{self.model!r} has no asymmetric part. Use an asymmixer_* model or leave lam unset.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields {unknown}; valid fields: {sorted(names)}.")
        return cls(**d)


def quick_config(model: str = "paramixer_cifar_tiny", dataset: str = "cifar10", **overrides) -> TrainConfig:
    """A run sized for quick mode (well under a minute on 2 CPU cores).

    The data are chosen *explicitly* with :func:`hopfield_lab.data.quick_dataset`, which prints
    its choice (``dataset`` from a local archive if one is found, else an offline stand-in);
    4096 training and 1024 test images, 3 epochs, batch 128, CPU-friendly. ``overrides`` are
    TrainConfig fields.
    """
    from .data import quick_dataset

    kw = dict(model=model, dataset=quick_dataset(dataset, overrides.get("data_root")), epochs=3,
              batch_size=128, train_subset=4096, test_subset=1024, progress=False)
    if kw["dataset"] == "synthetic":
        kw["dataset_options"] = {"n": 4096, "n_test": 1024}
    kw.update(overrides)
    return TrainConfig(**kw)


def is_asym(model_name: str) -> bool:
    """True for the AsymMixer family (the only one with a symmetry-breaking penalty lambda)."""
    return str(model_name).lower().startswith("asym")


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------
class StepOutput(NamedTuple):
    loss: torch.Tensor      # mean cross-entropy of the batch (detached, on the device)
    penalty: torch.Tensor   # the symmetry penalty added to it (0 when the model has none)
    correct: torch.Tensor   # number of correct predictions in the batch (int64, on the device)


def penalty_of(model: nn.Module) -> torch.Tensor | None:
    """``model.symmetry_penalty()`` of the plain module (through DDP / compile wrappers), or None."""
    base = D.unwrap(model)
    fn = getattr(base, "symmetry_penalty", None)
    return fn() if callable(fn) else None


_V_CACHE: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()


def breaking_weights(model: nn.Module) -> tuple[float, list[torch.Tensor]] | None:
    """``(lam, [V, ...])`` when ``model`` is a hopfield_lab Mixer (penalty ``lam * sum ||V||^2``), else None.

    The trainer then adds the penalty's gradient ``2 lam V`` to ``V.grad`` in one fused
    ``_foreach_add_`` after backward instead of back-propagating through ``2 x depth`` small
    norms (which costs ~4 ms per step on a GPU in eager mode); the update is the same.
    """
    base = D.unwrap(model)
    try:
        from .mixer import Mixer, _TwoLayer
    except ImportError:
        return None
    if not isinstance(base, Mixer) or type(base).symmetry_penalty is not Mixer.symmetry_penalty:
        return None
    Vs = _V_CACHE.get(base)
    if Vs is None:
        Vs = [m.breaking for m in base.modules() if isinstance(m, _TwoLayer) and m.breaking is not None]
        _V_CACHE[base] = Vs
    return float(base.lam), Vs


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
               optimizer: torch.optim.Optimizer, *, scheduler=None, label_smoothing: float = 0.0,
               amp_dtype: torch.dtype | None = None, grad_clip: float | None = None) -> StepOutput:
    """One optimisation step on a batch; returns detached device tensors (no host sync).

    ``loss = CE(model(images), labels; label_smoothing) + model.symmetry_penalty()``. The forward
    pass runs under autocast with ``amp_dtype`` (e.g. ``torch.bfloat16``) when given; the
    cross-entropy and the penalty are computed in float32. ``model`` may be wrapped in DDP and/or
    ``torch.compile``; the penalty is taken from the plain module, once per step (under DDP its
    gradient is the same on every rank, so the gradient average keeps it unchanged). For the
    project's Mixers its gradient ``2 lam V`` is added to ``V.grad`` directly after backward
    (:func:`breaking_weights`), which is the same update and much cheaper in eager mode.

    Shapes: images ``(B, C, H, W)``; labels ``(B,)`` int64 class indices, or ``(B, K)`` soft
    targets (probability rows, e.g. from :class:`hopfield_lab.recipes.MixupCutmix`), which the
    cross-entropy takes as they are; ``correct`` then counts predictions equal to each row's
    largest target.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=images.device.type, dtype=amp_dtype or torch.bfloat16,
                        enabled=amp_dtype is not None):
        logits = model(images)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    closed = breaking_weights(model)
    if closed is None:  # any model: back-propagate through its symmetry_penalty()
        pen = penalty_of(model)
        (loss if pen is None else loss + pen).backward()
    else:  # Mixer: d/dV [lam sum ||V||^2] = 2 lam V, added to V.grad in one fused kernel
        loss.backward()
        lam, Vs = closed
        pen = None
        if lam != 0.0 and Vs:
            with torch.no_grad():
                torch._foreach_add_([V.grad for V in Vs], Vs, alpha=2.0 * lam)
                pen = lam * torch.stack(torch._foreach_norm(Vs)).pow(2).sum()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    hard = labels.argmax(-1) if labels.ndim == 2 else labels  # soft (B, K) targets: their top class
    correct = (logits.detach().argmax(-1) == hard).sum()
    pen = torch.zeros((), device=loss.device) if pen is None else pen.detach()
    return StepOutput(loss.detach(), pen, correct)


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, amp_dtype: torch.dtype | None = None,
             info: D.DistInfo | None = None) -> dict:
    """Mean cross-entropy (no smoothing) and accuracy over ``loader``, summed across ranks.

    Returns ``{"loss": float, "acc": float (fraction), "n": int}``.
    """
    model.eval()
    dev = None
    tot = None
    full = None
    for images, labels in loader:
        if tot is None:
            dev = images.device
            tot = torch.zeros(3, dtype=torch.float64, device=dev)
            full = images.shape[0]
        b = images.shape[0]
        if b < full:  # pad the last batch: one static shape, no recompilation under torch.compile
            images = torch.cat([images, images.new_zeros((full - b, *images.shape[1:]))])
        with torch.autocast(device_type=dev.type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            logits = model(images)
        logits = logits[:b].float()
        tot[0] += F.cross_entropy(logits, labels, reduction="sum").double()
        tot[1] += (logits.argmax(-1) == labels).sum()
        tot[2] += labels.numel()
    if tot is None:
        tot = torch.zeros(3, dtype=torch.float64, device=info.device if info else "cpu")
    if info is not None:
        D.all_reduce_(tot, info)
    loss, correct, n = tot.tolist()
    return {"loss": loss / max(n, 1), "acc": correct / max(n, 1), "n": int(n)}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices/kernels, none on 1-D parameters (norms, biases)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel for all parameters) where torch has the kernel: CUDA, and CPU."""
    return perf.adamw(param_groups(model, cfg.weight_decay), lr=cfg.lr, device=device)


class WarmupCosine:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def __init__(self, total: int, warmup: int):
        self.total, self.warmup = int(total), int(warmup)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        t = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The per-batch schedule: ``onecycle`` (torch's OneCycleLR, cosine annealing, peak ``lr``) or
    ``cosine`` (linear warm-up then cosine to 0)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":
        pct = 0.3 if cfg.warmup_epochs is None else max(cfg.warmup_epochs / cfg.epochs, 1.0 / total)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=min(pct, 0.99), anneal_strategy="cos")
    warm = int(round((cfg.warmup_epochs or 0) * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total, warm))


def build_model(cfg: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> nn.Module:
    """``hopfield_lab.create_model(cfg.model, ...)`` for this data (classes, channels, size)."""
    from .mixer import create_model

    kw = dict(cfg.model_overrides)
    kw.setdefault("num_classes", num_classes)
    kw.setdefault("in_chans", in_chans)
    kw.setdefault("img_size", img_size)
    if cfg.lam is not None and is_asym(cfg.model):
        kw.setdefault("lam", cfg.lam)
    return create_model(cfg.model, **kw)


def git_commit() -> str | None:
    """The project's git commit (``$HOPFIELD_LAB_GIT_COMMIT`` overrides), or None."""
    env = os.environ.get("HOPFIELD_LAB_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def _symmetry(model: nn.Module) -> list[dict] | None:
    try:
        from .symmetry import symmetry_report
    except ImportError:
        return None
    return _plain(symmetry_report(D.unwrap(model)))


def _plain(x):
    """Convert tensors / numpy scalars inside nested containers to JSON-able Python values."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.item() if x.numel() == 1 else x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same folder, flush to disk, then ``os.replace``.

    A crash or an exception mid-write leaves the previous file at ``path`` intact (the temp file
    is removed on errors).
    """
    return _atomic_write(path, "wb", lambda fh: torch.save(obj, fh))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON via a temp file + ``os.replace`` (never a half-written result file)."""
    def write(fh):
        json.dump(_plain(obj), fh, indent=1)
        fh.write("\n")

    return _atomic_write(path, "w", write)


def _atomic_write(path: str | os.PathLike, mode: str, write) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``, fsync, then ``os.replace`` it into place.

    A crash or an exception midway leaves the previous file at ``path`` intact (the temp file
    is removed on errors).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _rng_state() -> dict:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`train` (a trusted file of this project)."""
    return torch.load(path, map_location=map_location, weights_only=False)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _subset(x: torch.Tensor, y: torch.Tensor, k: int):
    """A fixed random subset of k samples (archives are stored class by class, so never the first k)."""
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(12345))[:k]
    return x[idx], y[idx]


def make_loaders(cfg: TrainConfig, info: D.DistInfo):
    """The default loaders: whole splits on ``info.device`` (:class:`~hopfield_lab.data.DeviceLoader`).

    Returns ``(train_loader, test_loader, meta)`` with ``meta = {"num_classes", "in_chans",
    "img_size", "n_train", "n_test"}``.
    """
    from . import data as hd

    opts = dict(cfg.dataset_options)
    x_tr, y_tr = hd.load_dataset(cfg.dataset, "train", root=cfg.data_root, download=cfg.download, **opts)
    x_te, y_te = hd.load_dataset(cfg.dataset, "test", root=cfg.data_root, download=cfg.download, **opts)
    if cfg.train_subset:
        x_tr, y_tr = _subset(x_tr, y_tr, cfg.train_subset)
    if cfg.test_subset:
        x_te, y_te = _subset(x_te, y_te, cfg.test_subset)
    if cfg.dataset == "synthetic":
        n_cls = int(opts.get("num_classes", 10))
    else:
        n_cls = hd.num_classes(cfg.dataset, torch.cat([y_tr, y_te]))
    mean, std = hd.normalization(cfg.dataset, x_tr)
    aug = hd.Augment(crop_padding=cfg.crop_padding, pad_mode=cfg.pad_mode, flip=cfg.flip)
    local_bs = D.local_batch_size(cfg.batch_size, info)
    train_loader = hd.DeviceLoader(
        x_tr, y_tr, local_bs, device=info.device, train=True, mean=mean, std=std, augment=aug,
        img_size=cfg.img_size, seed=cfg.seed,
        shard=(lambda idx: D.shard(idx, info)) if info.enabled else None)
    test_loader = hd.DeviceLoader(
        x_te, y_te, local_bs, device=info.device, train=False, mean=mean, std=std,
        img_size=cfg.img_size,
        shard=(lambda idx: idx[info.rank:: info.world_size]) if info.enabled else None)
    meta = {"num_classes": n_cls, "in_chans": int(x_tr.shape[1]),
            "img_size": int(cfg.img_size or x_tr.shape[-1]), "n_train": len(y_tr), "n_test": len(y_te)}
    return train_loader, test_loader, meta


def recipe_loaders(cfg: TrainConfig) -> Callable:
    """The ``loaders`` callable of ``cfg.recipe == "paper"``: :func:`hopfield_lab.recipes.paper_loaders`
    of the paper's recipe at ``cfg.img_size`` with ``cfg.workers`` loader processes per rank.

    Raises ImportError (saying what to install) when torchvision cannot be imported.
    """
    from .recipes import PAPER, paper_loaders, require_torchvision

    if cfg.recipe != "paper":
        raise ValueError(f"recipe_loaders is for recipe='paper', got {cfg.recipe!r}.")
    require_torchvision()
    recipe = PAPER if cfg.img_size in (None, PAPER.img_size) else dataclasses.replace(PAPER, img_size=cfg.img_size)
    return paper_loaders(recipe, num_workers=cfg.workers)


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def _raise_recompile_limit(limit: int = 64) -> None:
    """Let one process compile many models (a sweep): every model family x train/eval mode is a
    separate entry of the same ``forward`` frame, and dynamo's default limit (8) would make the
    ninth silently run eagerly."""
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name) and getattr(cfg, name) < limit:
            try:
                setattr(cfg, name, limit)
            except Exception:
                pass


def rank_seed(seed: int, rank: int, epoch: int) -> int:
    """Seed of the global random streams of DDP rank ``rank > 0`` in ``epoch`` (see :func:`seed_rank`)."""
    return ((int(seed) + int(rank)) * 1_000_003 + int(epoch) + 0x5EED_0000) % (2 ** 63)


def seed_rank(seed: int, info: D.DistInfo, epoch: int) -> None:
    """Give every DDP rank its own global random streams for ``epoch`` (drop-path masks, mixup draws).

    All ranks start from the same ``seed`` (identical initialisation), so without this every rank
    would draw the *same* stochastic-depth masks and mixup coefficients for its different samples.
    Ranks ``> 0`` reseed Python's, NumPy's and torch's generators with :func:`rank_seed` at the
    start of every epoch (after DDP has broadcast rank 0's parameters, which stay identical).
    Rank 0 keeps its own continuous stream, so a single-process run is unchanged, and its state
    is the one saved in checkpoints; reseeding per epoch makes a resumed DDP run exact on every
    rank. No-op on a single process.
    """
    if info.enabled and info.rank > 0:
        seed_everything(rank_seed(seed, info.rank, epoch))


def _check_resumable(saved: dict, cfg: TrainConfig) -> None:
    now = cfg.to_dict()
    diff = {k: (saved.get(k), now[k]) for k in now
            if k not in _RESUME_FREE and k in saved and saved.get(k) != now[k]}
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"The checkpoint in {cfg.out_dir} belongs to another configuration ({lines}). Use "
            "another out_dir, delete the checkpoint, or pass resume=False to start afresh.")


def train(config: TrainConfig | dict, *, model: nn.Module | None = None,
          loaders: tuple | Callable | None = None) -> dict:
    """Train (or resume) one run and return its result dict (also written as JSON when ``out_dir``).

    Parameters
    ----------
    config:
        A :class:`TrainConfig` (or a dict of its fields).
    model:
        Use this module instead of ``create_model(config.model, ...)`` (tests, custom models).
    loaders:
        ``(train_loader, test_loader, meta)`` or a callable ``(config, dist_info) -> (train,
        test, meta)`` replacing :func:`make_loaders` (e.g. a streaming loader). A loader is any
        iterable of ``(images, labels)`` batches on the device with ``set_epoch(e)`` and
        ``len()`` (batches per epoch); ``meta`` needs ``num_classes``, ``in_chans``,
        ``img_size``, ``n_train``.

    With ``config.recipe == "paper"`` and no ``loaders``, the data come from
    :func:`recipe_loaders` (the paper's streaming pipeline; needs torchvision).

    Returns the result dict: ``model, lam, dataset, epochs, seed, recipe, test_acc, test_loss,
    train_loss, train_acc, best_test_acc, history (one dict per epoch), symmetry (final report),
    symmetry_history, params, wall_time_s, train_time_s, img_per_s, device, torch_version,
    git_commit, config, finished`` ... ``finished`` is False when ``stop_after_epochs`` stopped
    the run early; such a result is returned but not written as the result file.
    """
    cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    cfg.validate()
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    try:
        return _train(cfg, model, loaders)
    finally:  # a deterministic run does not change the process for later runs
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


def _train(cfg: TrainConfig, model: nn.Module | None, loaders) -> dict:
    t_start = time.perf_counter()
    info = D.init_distributed(cfg.device)
    device = info.device
    if device.type == "cpu":  # keep activations' memory in the process between steps
        perf.tune_cpu_allocator()
    cfg = dataclasses.replace(cfg, compile=perf.should_compile(cfg.compile, device))  # None: CUDA only
    seed_everything(cfg.seed)

    if loaders is None and cfg.recipe == "paper":
        train_loader, test_loader, meta = recipe_loaders(cfg)(cfg, info)
    elif loaders is None:
        train_loader, test_loader, meta = make_loaders(cfg, info)
    elif callable(loaders):
        train_loader, test_loader, meta = loaders(cfg, info)
    else:
        train_loader, test_loader, meta = loaders
    steps_per_epoch = len(train_loader)
    if steps_per_epoch < 1:
        raise ValueError("The training loader yields no batch per epoch: lower batch_size or use more data.")

    base = model if model is not None else build_model(cfg, meta["num_classes"], meta["in_chans"], meta["img_size"])
    base = base.to(device)
    n_params = sum(p.numel() for p in base.parameters())
    optimizer = make_optimizer(base, cfg, device)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    amp_dtype = perf.amp_dtype(device, cfg.amp)

    history: list[dict] = []
    sym_history: list[dict] = []
    start_epoch, train_time_prev, wall_prev = 0, 0.0, 0.0
    ckpt_path = Path(cfg.out_dir) / CHECKPOINT_NAME if cfg.out_dir else None
    if ckpt_path is not None and cfg.resume and ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path, map_location=device)
        _check_resumable(ck["config"], cfg)
        base.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        history, sym_history = ck["history"], ck.get("symmetry_history", [])
        start_epoch, train_time_prev, wall_prev = ck["epoch"], ck["train_time_s"], ck["wall_time_s"]
        if hasattr(train_loader, "load_state_dict") and "loader" in ck:
            train_loader.load_state_dict(ck["loader"])
        _set_rng_state(ck["rng"])
        if info.is_main and cfg.progress:
            print(f"hopfield_lab.train: resumed {cfg.model} from {ckpt_path} after epoch {start_epoch}.", flush=True)

    train_model = D.wrap_model(base, info)
    eval_model = base
    if cfg.compile:
        _raise_recompile_limit()
        train_model, eval_model = perf.compile_module(train_model), perf.compile_module(base)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    from tqdm.auto import tqdm

    last = cfg.epochs if cfg.stop_after_epochs is None else min(cfg.epochs, cfg.stop_after_epochs)
    bar = tqdm(total=(last - start_epoch) * steps_per_epoch, disable=not (cfg.progress and info.is_main),
               desc=f"{cfg.model}" + (f" lam={cfg.lam:g}" if cfg.lam is not None else ""),
               unit="batch", dynamic_ncols=True)
    train_time = train_time_prev
    t_run = time.perf_counter()
    for epoch in range(start_epoch, last):
        train_loader.set_epoch(epoch)
        seed_rank(cfg.seed, info, epoch)  # ranks > 0: their own drop-path / mixup streams
        loss_acc = torch.zeros((), dtype=torch.float64, device=device)  # sum of loss * B
        pen_acc = torch.zeros((), dtype=torch.float64, device=device)
        correct_acc = torch.zeros((), dtype=torch.float64, device=device)
        n_local = 0
        sync()
        t0 = time.perf_counter()
        for images, labels in train_loader:  # no host sync inside the loop
            out = train_step(train_model, images, labels, optimizer, scheduler=scheduler,
                             label_smoothing=cfg.label_smoothing, amp_dtype=amp_dtype,
                             grad_clip=cfg.grad_clip)
            B = labels.shape[0]
            loss_acc += out.loss * B
            pen_acc += out.penalty
            correct_acc += out.correct
            n_local += B
            bar.update(1)
        sync()
        dt = time.perf_counter() - t0
        train_time += dt
        sums = torch.stack([loss_acc, pen_acc, correct_acc,
                            torch.tensor(float(n_local), dtype=torch.float64, device=device)])
        D.all_reduce_(sums, info)
        loss_sum, pen_sum, correct, n_seen = sums.tolist()
        row = {"epoch": epoch + 1, "train_loss": loss_sum / n_seen, "train_acc": correct / n_seen,
               "penalty": pen_sum / (steps_per_epoch * info.world_size),
               "lr": optimizer.param_groups[0]["lr"], "epoch_time_s": dt, "img_per_s": n_seen / dt}
        is_last = epoch + 1 == cfg.epochs
        if (epoch + 1) % cfg.eval_every == 0 or is_last:
            ev = evaluate(eval_model, test_loader, amp_dtype=amp_dtype, info=info)
            row.update(test_loss=ev["loss"], test_acc=ev["acc"])
        row["time_s"] = wall_prev + time.perf_counter() - t_run
        history.append(row)
        if cfg.symmetry_metrics and info.is_main and (
                is_last or (cfg.symmetry_every and (epoch + 1) % cfg.symmetry_every == 0)):
            rep = _symmetry(base)
            if rep is not None:
                sym_history.append({"epoch": epoch + 1, "report": rep})
        bar.set_postfix({k: round(v, 4) for k, v in row.items()
                         if k in ("train_loss", "train_acc", "test_acc")})
        if ckpt_path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == last):
            if info.is_main:
                atomic_save({
                    "format": 1, "epoch": epoch + 1, "model": base.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "loader": train_loader.state_dict() if hasattr(train_loader, "state_dict") else None,
                    "rng": _rng_state(), "history": history, "symmetry_history": sym_history,
                    "config": cfg.to_dict(), "train_time_s": train_time,
                    "wall_time_s": wall_prev + time.perf_counter() - t_run,
                }, ckpt_path)
            D.barrier(info)
    bar.close()

    finished = last == cfg.epochs
    final = history[-1] if history else {}
    timed = history[1:] if len(history) > 1 else history  # epoch 1 holds compilation / warm-up
    img_s = (sum(r["img_per_s"] * r["epoch_time_s"] for r in timed) / sum(r["epoch_time_s"] for r in timed)
             if timed else None)
    evals = [r["test_acc"] for r in history if "test_acc" in r]
    result = {
        "model": cfg.model, "lam": cfg.lam if cfg.lam is not None or not is_asym(cfg.model)
        else getattr(base, "lam", None), "dataset": cfg.dataset, "epochs": cfg.epochs,
        "epochs_done": len(history), "seed": cfg.seed, "recipe": cfg.recipe, "finished": finished,
        "test_acc": final.get("test_acc"), "test_loss": final.get("test_loss"),
        "train_acc": final.get("train_acc"), "train_loss": final.get("train_loss"),
        "best_test_acc": max(evals) if evals else None,
        "params": n_params, "num_classes": meta.get("num_classes"), "n_train": meta.get("n_train"),
        "n_test": meta.get("n_test"), "img_size": meta.get("img_size"),
        "history": history,
        "symmetry": sym_history[-1]["report"] if sym_history else None,
        "symmetry_history": sym_history,
        "wall_time_s": wall_prev + time.perf_counter() - t_run,
        "process_time_s": time.perf_counter() - t_start,
        "train_time_s": train_time, "img_per_s": img_s,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "world_size": info.world_size, "amp": "bf16" if amp_dtype is not None else None,
        "compiled": perf.compile_status(train_model),
        "torch_version": torch.__version__, "python_version": platform.python_version(),
        "hopfield_lab_version": __import__("hopfield_lab").__version__,
        "git_commit": git_commit(), "config": cfg.to_dict(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result = _plain(result)
    if info.is_main and finished:
        target = cfg.result_path or (Path(cfg.out_dir) / RESULT_NAME if cfg.out_dir else None)
        if target is not None:
            atomic_write_json(result, target)
        if ckpt_path is not None and not cfg.keep_checkpoint and ckpt_path.exists():
            ckpt_path.unlink()
            try:
                ckpt_path.parent.rmdir()  # only if nothing else is in it
            except OSError:
                pass
    D.barrier(info)
    return result


# ---------------------------------------------------------------------------------------------
# throughput
# ---------------------------------------------------------------------------------------------
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
    allocator is tuned as in :func:`train` (:func:`hopfield_lab.perf.tune_cpu_allocator`).
    Returns ``{"model", "compile", "compile_mode", "compiled", "batch_size", "img_per_s",
    "ms_per_step", "params", "optimizer", "amp", "device", "torch_version"}`` and on CPU also
    ``"allocator"`` and ``"page_faults_per_step"``.
    """
    from .data import Augment, DeviceLoader
    from .runtime import get_device

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
    loader = DeviceLoader(torch.randint(0, 256, (n, in_chans, img_size, img_size), dtype=torch.uint8, generator=g),
                          torch.randint(0, num_classes, (n,), generator=g), batch_size, device=dev,
                          train=True, augment=Augment(crop_padding=min(4, img_size // 4), flip=True))
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
    rec = {"model": name, "compile": bool(compile), "compile_mode": (mode or "default") if compile else None,
           "compiled": perf.compile_status(fwd), "batch_size": batch_size, "steps": steps,
           "img_per_s": steps * batch_size / dt, "ms_per_step": 1000 * dt / steps, "params": n_params,
           "optimizer": "AdamW (fused)" if opt.defaults.get("fused") else "AdamW (torch default)",
           "amp": "bf16" if amp_dtype is not None else None,
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch_version": torch.__version__}
    if dev.type == "cpu":
        rec.update(allocator=perf.allocator_mode() or "glibc (untouched)",
                   page_faults_per_step=(perf.page_faults() - faults) / steps)
    return rec
