"""The training loop: one function does a whole run.

    from hopfield_lab.train import TrainConfig, train
    result = train(TrainConfig(model="symmixer_cifar_small", dataset="cifar10", epochs=30,
                               out_dir="runs/sym"))
    result.test_acc           # final test accuracy, a fraction (a hopfield_lab.results.RunResult)

The parts live by job: :mod:`hopfield_lab.config` (:class:`TrainConfig`, what defines a run),
:mod:`hopfield_lab.checkpoint` (atomic files, checkpoints, random states),
:mod:`hopfield_lab.results` (the typed :class:`~hopfield_lab.results.RunResult`),
:mod:`hopfield_lab.bench` (throughput); this module holds the step, the optimiser and schedule,
the loaders and the loop. What a run does:

* data: :func:`hopfield_lab.data.load_splits` + :class:`~hopfield_lab.data.DeviceLoader` (whole
  split on the device, augmentation there), a recipe's streaming loaders, or any loaders you pass
  (see :func:`train`);
* optimisation: AdamW (fused on CUDA), no weight decay on 1-D parameters (norms, biases),
  warm-up + cosine or one-cycle schedule stepped every batch, label smoothing, bf16 autocast on
  CUDA, ``torch.compile`` on CUDA (falls back to eager); the model's ``symmetry_penalty()`` (AsymMixer:
  ``lam * sum ||V||^2``) is added to the loss;
* every epoch: evaluation, history (plain numbers), symmetry metrics of the weights
  (:func:`hopfield_lab.symmetry.symmetry_report`), an atomic checkpoint (temp file + ``os.replace``);
  a non-finite loss or weight stops the run (:class:`TrainingDiverged`);
* exact resume from the checkpoint in ``out_dir`` (model, optimizer, scheduler, RNG states, the
  loader's epoch, history); on CPU a resumed run ends with the same numbers as an uninterrupted one;
* under ``torchrun`` (see :mod:`hopfield_lab.distributed`): each rank trains on its shard of
  every epoch with its own random streams (drop-path masks, mixup; :func:`seed_rank`), metrics
  are summed across ranks, only rank 0 writes files;
* a result file (``out_dir/result.json``): the :class:`~hopfield_lab.results.RunResult` as JSON.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ck
from . import data as hd
from . import distributed as D
from . import perf
from . import recipes
from .config import RESUME_FREE, TrainConfig, quick_config  # noqa: F401  (quick_config: re-exported)
from .mixer import Mixer, create_model, family_of
from .results import RESULT_NAME, RunResult, versions
from .runtime import seed_everything
from .symmetry import symmetry_report

CHECKPOINT_NAME = ck.CHECKPOINT_NAME
load_checkpoint = ck.load_checkpoint


def __getattr__(name: str):
    if name == "benchmark":  # lives in hopfield_lab.bench (which imports this module)
        from .bench import benchmark

        return benchmark
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def breaking_weights(model: nn.Module) -> tuple[float, list[torch.Tensor]] | None:
    """``(lam, [V, ...])`` when ``model`` is a hopfield_lab Mixer (penalty ``lam * sum ||V||^2``), else None.

    The trainer then adds the penalty's gradient ``2 lam V`` to ``V.grad`` in one fused
    ``_foreach_add_`` after backward instead of back-propagating through ``2 x depth`` small
    norms (which costs ~4 ms per step on a GPU in eager mode); the update is the same.
    """
    base = D.unwrap(model)
    if not isinstance(base, Mixer) or type(base).symmetry_penalty is not Mixer.symmetry_penalty:
        return None
    return float(base.lam), base.breaking_weights()


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
    kw = dict(cfg.model_overrides)
    kw.setdefault("num_classes", num_classes)
    kw.setdefault("in_chans", in_chans)
    kw.setdefault("img_size", img_size)
    if cfg.lam is not None and family_of(cfg.model).has_breaking:
        kw.setdefault("lam", cfg.lam)
    return create_model(cfg.model, **kw)


def _symmetry(model: nn.Module) -> list[dict] | None:
    """The symmetry report of a Mixer-like model (one with ``blocks``), else None."""
    base = D.unwrap(model)
    return ck.plain(symmetry_report(base)) if hasattr(base, "blocks") else None


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def make_loaders(cfg: TrainConfig, info: D.DistInfo):
    """The default loaders: whole splits (:func:`hopfield_lab.data.load_splits`) on ``info.device``
    (:class:`~hopfield_lab.data.DeviceLoader`).

    Returns ``(train_loader, test_loader, meta)`` with ``meta = {"num_classes", "in_chans",
    "img_size", "n_train", "n_test"}``.
    """
    data = hd.load_splits(cfg)
    aug = hd.Augment(crop_padding=cfg.crop_padding, pad_mode=cfg.pad_mode, flip=cfg.flip)
    local_bs = D.local_batch_size(cfg.batch_size, info)
    train_loader = hd.DeviceLoader(
        data.x_train, data.y_train, local_bs, device=info.device, train=True, mean=data.mean, std=data.std,
        augment=aug, img_size=cfg.img_size, seed=cfg.seed,
        shard=(lambda idx: D.shard(idx, info)) if info.enabled else None)
    test_loader = hd.DeviceLoader(
        data.x_test, data.y_test, local_bs, device=info.device, train=False, mean=data.mean, std=data.std,
        img_size=cfg.img_size,
        shard=(lambda idx: idx[info.rank:: info.world_size]) if info.enabled else None)
    return train_loader, test_loader, data.meta(cfg.img_size)


def recipe_loaders(cfg: TrainConfig) -> Callable:
    """The ``loaders`` callable of a run with a recipe: :func:`hopfield_lab.recipes.paper_loaders` of
    the recipe the config was made from (:func:`hopfield_lab.recipes.recipe_of`: named recipe,
    ``recipe_overrides``, ``img_size``) with ``cfg.workers`` loader processes per rank.

    Raises ImportError (saying what to install) when torchvision cannot be imported.
    """
    if cfg.recipe == "none":
        raise ValueError("recipe_loaders needs a recipe (e.g. recipe='paper'), got 'none'.")
    recipes.require_torchvision()
    return recipes.paper_loaders(recipes.recipe_of(cfg), num_workers=cfg.workers)


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


class ResumeMismatch(ValueError):
    """The checkpoint in ``out_dir`` was written with another configuration. ``str()`` names the
    Python option (``resume=False``), :attr:`cli_message` the command-line flag (``--no-resume``)."""

    def __init__(self, out_dir, diff: dict):
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())

        def text(out, fresh):
            return (f"The checkpoint in {out_dir} belongs to another configuration ({lines}). Use another "
                    f"{out}, delete the checkpoint, or pass {fresh} to start afresh.")

        super().__init__(text("out_dir", "resume=False"))
        self.diff = diff
        self.cli_message = text("--out-dir", "--no-resume")


def _check_resumable(saved: dict, cfg: TrainConfig) -> None:
    now = cfg.to_dict()
    diff = {k: (saved.get(k), now[k]) for k in now
            if k not in RESUME_FREE and k in saved and saved.get(k) != now[k]}
    if diff:
        raise ResumeMismatch(cfg.out_dir, diff)


def _prepare_outputs(cfg: TrainConfig) -> None:
    """Before any work: ``out_dir`` (and the result file's folder) must be writable folders;
    temp files left by killed writes of earlier runs are removed."""
    folders = [(Path(cfg.out_dir), "out_dir", "out_dir (--out-dir)")] if cfg.out_dir else []
    if cfg.result_path:
        folders.append((Path(cfg.result_path).parent, "the folder of result_path", "result_path (--result-path)"))
    for folder, option, fix in folders:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{option} {folder} is a file, not a folder: choose another {fix}.")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ValueError(f"cannot write to {option} {folder} ({type(exc).__name__}: {exc.strerror or exc}): "
                             f"choose a writable {fix}.") from None
        for name in (CHECKPOINT_NAME, RESULT_NAME, Path(cfg.result_path or RESULT_NAME).name):
            ck.remove_stale_temp_files(folder / name)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or weights. ``result`` is the run's :class:`RunResult`
    (``status`` "diverged", ``diverged`` = ``{"epoch", "what"}``), also written to the result file."""

    def __init__(self, message: str, result: RunResult):
        super().__init__(message)
        self.result = result


def _divergence(loss_sum: float, penalty_sum: float, model: nn.Module) -> str | None:
    """None when the epoch's summed loss and penalty and all weights are finite, else what is not."""
    for name, v in (("loss", loss_sum), ("penalty", penalty_sum)):
        if not math.isfinite(v):
            return f"{name} {'NaN' if math.isnan(v) else 'inf'}"
    params = [p.detach() for p in model.parameters()]
    if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
        return "weights NaN or inf"
    return None


def train(config: TrainConfig | dict, *, model: nn.Module | None = None,
          loaders: tuple | Callable | None = None) -> RunResult:
    """Train (or resume) one run and return its :class:`~hopfield_lab.results.RunResult` (also
    written as JSON when ``out_dir`` or ``result_path`` is set).

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

    With a recipe (``config.recipe == "paper"``) and no ``loaders``, the data come from
    :func:`recipe_loaders` (the paper's streaming pipeline; needs torchvision).

    The result's ``status`` is "stopped" when ``stop_after_epochs`` ended the run early; such a
    result is returned but not written as the result file. A run whose loss or weights stop being
    finite ends at that epoch: the checkpoint of the last good epoch stays, the result file is
    written with ``status`` "diverged", and :class:`TrainingDiverged` is raised (carrying the result).
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


def _train(cfg: TrainConfig, model: nn.Module | None, loaders) -> RunResult:
    t_start = time.perf_counter()
    if D.is_main_process():  # before the process group: a failure here ends every rank's wait
        _prepare_outputs(cfg)
    info = D.init_distributed(cfg.device)
    device = info.device
    if device.type == "cpu":  # keep activations' memory in the process between steps
        perf.tune_cpu_allocator()
    cfg = dataclasses.replace(cfg, compile=perf.should_compile(cfg.compile, device))  # None: CUDA only
    seed_everything(cfg.seed)

    if loaders is None and cfg.recipe != "none":
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
    outputs = getattr(base, "num_classes", None)
    if isinstance(outputs, int) and outputs < meta["num_classes"]:
        raise ValueError(
            f"the model has {outputs} outputs but the data have {meta['num_classes']} classes (labels 0.."
            f"{meta['num_classes'] - 1}): drop model_overrides num_classes={outputs} (the model then takes the "
            "data's count) or set it to at least the number of classes.")
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
        saved = ck.load_checkpoint(ckpt_path, map_location=device)
        _check_resumable(saved["config"], cfg)
        base.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        history, sym_history = saved["history"], saved.get("symmetry_history", [])
        start_epoch, train_time_prev, wall_prev = saved["epoch"], saved["train_time_s"], saved["wall_time_s"]
        if hasattr(train_loader, "load_state_dict") and "loader" in saved:
            train_loader.load_state_dict(saved["loader"])
        ck.set_rng_state(saved["rng"])
        if info.is_main:
            print(f"hopfield_lab.train: resumed {cfg.model} from {ckpt_path} after epoch {start_epoch}.", flush=True)

    train_model = D.wrap_model(base, info)
    eval_model = base
    if cfg.compile:
        _raise_recompile_limit()
        train_model, eval_model = perf.compile_module(train_model), perf.compile_module(base)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    from .runtime import progress_bar

    last = cfg.epochs if cfg.stop_after_epochs is None else min(cfg.epochs, cfg.stop_after_epochs)
    bar = progress_bar(total=(last - start_epoch) * steps_per_epoch, enabled=cfg.progress and info.is_main,
               desc=f"{cfg.model}" + (f" lam={cfg.lam:g}" if cfg.lam is not None else ""),
               unit="batch", dynamic_ncols=True)
    train_time = train_time_prev
    t_run = time.perf_counter()
    diverged = None
    saved_epoch = start_epoch if ckpt_path is not None and ckpt_path.is_file() else None
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
        broken = _divergence(loss_sum, pen_sum, base)
        if broken is not None:  # stop before anything (eval, metrics, checkpoint) reads bad weights
            row["time_s"] = wall_prev + time.perf_counter() - t_run
            history.append(row)
            diverged = {"epoch": epoch + 1, "what": broken}
            break
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
                ck.atomic_save({
                    "format": 1, "epoch": epoch + 1, "model": base.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "loader": train_loader.state_dict() if hasattr(train_loader, "state_dict") else None,
                    "rng": ck.rng_state(), "history": history, "symmetry_history": sym_history,
                    "config": cfg.to_dict(), "train_time_s": train_time,
                    "wall_time_s": wall_prev + time.perf_counter() - t_run,
                }, ckpt_path)
            saved_epoch = epoch + 1
            D.barrier(info)
    bar.close()

    status = "diverged" if diverged else "finished" if last == cfg.epochs else "stopped"
    final = history[-1] if history else {}
    timed = history[1:] if len(history) > 1 else history  # epoch 1 holds compilation / warm-up
    img_s = (sum(r["img_per_s"] * r["epoch_time_s"] for r in timed) / sum(r["epoch_time_s"] for r in timed)
             if timed else None)
    evals = [r["test_acc"] for r in history if "test_acc" in r]
    result = RunResult(**ck.plain(dict(
        model=cfg.model, family=base.family.name if getattr(base, "family", None) else None,
        n_iter=base.blocks[0].n_iter if len(getattr(base, "blocks", ())) else 1,
        init=getattr(base, "init", "random"), dataset=cfg.dataset, epochs=cfg.epochs, epochs_done=len(history), seed=cfg.seed,
        lam=cfg.lam if cfg.lam is not None or not getattr(base, "has_breaking", False) else getattr(base, "lam", None),
        recipe=cfg.recipe, status=status, diverged=diverged,
        test_acc=final.get("test_acc"), test_loss=final.get("test_loss"),
        train_acc=final.get("train_acc"), train_loss=final.get("train_loss"),
        best_test_acc=max(evals) if evals else None,
        params=n_params, num_classes=meta.get("num_classes"), n_train=meta.get("n_train"),
        n_test=meta.get("n_test"), img_size=meta.get("img_size"),
        history=history, symmetry=sym_history[-1]["report"] if sym_history else None, symmetry_history=sym_history,
        wall_time_s=wall_prev + time.perf_counter() - t_run, process_time_s=time.perf_counter() - t_start,
        train_time_s=train_time, img_per_s=img_s,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        world_size=info.world_size, amp="bf16" if amp_dtype is not None else None,
        compiled=perf.compile_status(train_model), config=cfg.to_dict(), finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **versions())))
    target = cfg.result_path or (Path(cfg.out_dir) / RESULT_NAME if cfg.out_dir else None)
    if info.is_main and status != "stopped" and target is not None:
        ck.atomic_write_json(result.to_dict(), target)
    if diverged:
        D.barrier(info)
        kept = (f"the last good checkpoint (epoch {saved_epoch}) is kept in {ckpt_path}" if saved_epoch
                else "no checkpoint was written before it")
        raise TrainingDiverged(
            f"training diverged at epoch {diverged['epoch']} ({diverged['what']}); {kept}"
            + (f", and {target} says so" if target is not None else "")
            + f". Lower the learning rate (lr={cfg.lr:g})" + (f" or lam={cfg.lam:g}" if cfg.lam else "")
            + ", or clip gradients (grad_clip), and start afresh.", result)
    if info.is_main and result.finished:
        if ckpt_path is not None and not cfg.keep_checkpoint and ckpt_path.exists():
            ckpt_path.unlink()
            try:
                ckpt_path.parent.rmdir()  # only if nothing else is in it
            except OSError:
                pass
    D.barrier(info)
    return result
