"""The training loop: one function does a whole run.

    from hopfield_lab.train import TrainConfig, train
    result = train(TrainConfig(model="symmixer_cifar_small", dataset="cifar10", epochs=30,
                               out_dir="runs/sym"))
    result.test_acc           # final test accuracy, a fraction (a hopfield_lab.results.RunResult)

The parts live by job: :mod:`hopfield_lab.config` (:class:`TrainConfig`, what defines a run),
:mod:`hopfield_lab.checkpoint` (atomic files, checkpoints, random states),
:mod:`hopfield_lab.results` (the typed :class:`~hopfield_lab.results.RunResult`),
:mod:`hopfield_lab.bench` (throughput); this module holds the step, the optimiser and schedule,
the loaders and the loop, in phases (:func:`_train`: :func:`_setup`, :func:`_resume`, then per
epoch :func:`_fit_epoch` and :func:`_end_epoch`, then :func:`_result` and :func:`_finish`). What a
run does:

* data: :func:`hopfield_lab.data.load_splits` + :class:`~hopfield_lab.data.DeviceLoader` (whole
  split on the device, augmentation there), a recipe's streaming loaders, or any loaders you pass
  (see :func:`train`);
* optimisation: AdamW (fused on CUDA), no weight decay on 1-D parameters (norms, biases),
  warm-up + cosine or one-cycle schedule stepped every batch, label smoothing, bf16 autocast on
  CUDA, ``torch.compile`` on CUDA (falls back to eager); the model's ``symmetry_penalty()`` (AsymMixer:
  ``lam * sum ||V||^2``) is added to the loss;
* every epoch: evaluation, history (plain numbers), symmetry metrics of the weights
  (:func:`hopfield_lab.symmetry.symmetry_report`), an atomic checkpoint (temp file + ``os.replace``);
  a non-finite loss or weight, or a loss exploded far above chance (:func:`loss_limit`), stops
  the run (:class:`TrainingDiverged`);
* exact resume from the checkpoint in ``out_dir`` (model, optimizer, scheduler, RNG states, the
  loader's epoch, history); on CPU a resumed run ends with the same numbers as an uninterrupted one;
  the checkpoint records the data (fingerprint, steps per epoch): a resume on other data is refused;
* a live run owns its ``out_dir`` (:class:`hopfield_lab.checkpoint.RunLock`); Ctrl-C raises
  :class:`TrainingInterrupted`, which says where the last checkpoint is;
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
from .config import RESUME_FREE, TrainConfig
from ..mixer import create_model
from .run import RESULT_NAME, RunResult
from ..runtime import provenance, seed_everything
from ..symmetry import symmetry_report

CHECKPOINT_NAME = ck.CHECKPOINT_NAME
load_checkpoint = ck.load_checkpoint


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


def model_lam(model: nn.Module) -> float | None:
    """The λ a run records (:attr:`RunResult.lam`): the model's ``lam`` when its MLPs carry a
    breaking weight V (``has_breaking``), else None."""
    base = D.unwrap(model)
    return float(base.lam) if getattr(base, "has_breaking", False) else None


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
               optimizer: torch.optim.Optimizer, *, scheduler=None, label_smoothing: float = 0.0,
               amp_dtype: torch.dtype | None = None, grad_clip: float | None = None) -> StepOutput:
    """One optimisation step on a batch; returns detached device tensors (no host sync).

    ``loss = CE(model(images), labels; label_smoothing) + model.symmetry_penalty()``. The forward
    pass runs under autocast with ``amp_dtype`` (e.g. ``torch.bfloat16``) when given; the
    cross-entropy and the penalty are computed in float32. ``model`` may be wrapped in DDP and/or
    ``torch.compile``; the penalty is taken from the plain module, once per step (under DDP its
    gradient is the same on every rank, so the gradient average keeps it unchanged). A model with
    ``add_symmetry_penalty_grad_()`` (the project's Mixers: ``2 lam V``, closed form) adds the
    penalty's gradient itself after backward, the same update and much cheaper in eager mode; any
    other model's ``symmetry_penalty()`` is back-propagated.

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
    add_penalty_grad = getattr(D.unwrap(model), "add_symmetry_penalty_grad_", None)
    if callable(add_penalty_grad):  # the model adds its penalty's gradient (Mixer: 2 lam V) itself
        loss.backward()
        pen = add_penalty_grad()
    else:  # any other model: back-propagate through its symmetry_penalty(), if it has one
        pen = penalty_of(model)
        (loss if pen is None else loss + pen).backward()
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
    kw = cfg.model_options()  # model_overrides, and --lam as the model's lam
    kw.setdefault("num_classes", num_classes)
    kw.setdefault("in_chans", in_chans)
    kw.setdefault("img_size", img_size)
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
            return (f"The checkpoint in {out_dir} belongs to another configuration or other data ({lines}). "
                    f"Use another {out}, delete the checkpoint, or pass {fresh} to start afresh.")

        super().__init__(text("out_dir", "resume=False"))
        self.diff = diff
        self.cli_message = text("--out-dir", "--no-resume")


def _check_resumable(saved: dict, cfg: TrainConfig, data: dict | None = None) -> None:
    """Raise :class:`ResumeMismatch` when the checkpoint ``saved`` was written with another
    configuration (``saved["config"]``) or other data (``saved["data"]``: the data's fingerprint,
    ``n_train`` and the steps per epoch, compared with ``data``; older checkpoints lack it)."""
    now = cfg.to_dict()
    conf = saved["config"]
    diff = {k: (conf.get(k), now[k]) for k in now
            if k not in RESUME_FREE and k in conf and conf.get(k) != now[k]}
    before = saved.get("data") or {}
    diff.update({f"data {k}": (before[k], v) for k, v in (data or {}).items()
                 if before.get(k) is not None and v is not None and before[k] != v})
    if diff:
        raise ResumeMismatch(cfg.out_dir, diff)


def _data_record(meta: dict, steps_per_epoch: int) -> dict:
    """What a checkpoint records of the data, so that a resume on other data is refused."""
    return {"fingerprint": (meta.get("data") or {}).get("fingerprint"), "n_train": meta.get("n_train"),
            "steps_per_epoch": steps_per_epoch}


def _prepare_outputs(cfg: TrainConfig) -> None:
    """Before any work: ``out_dir`` (and the result file's folder) must be writable folders;
    temp files left by killed writes of earlier runs are removed."""
    folders = [(Path(cfg.out_dir), "out_dir", "out_dir (--out-dir)")] if cfg.out_dir else []
    if cfg.result_path:
        folders.append((Path(cfg.result_path).parent, "the folder of result_path", "result_path (--result-path)"))
    target = _result_target(cfg)
    if target is not None and target.is_dir():
        raise ValueError(f"the result file {target} is an existing folder: choose another result_path "
                         "(--result-path), or another out_dir (--out-dir).")
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


def _result_target(cfg: TrainConfig) -> Path | None:
    """Where the result file goes: ``result_path``, else ``out_dir/result.json``, else None."""
    return Path(cfg.result_path) if cfg.result_path else Path(cfg.out_dir) / RESULT_NAME if cfg.out_dir else None


def _lock(cfg: TrainConfig) -> ck.RunLock | None:
    """The lock of the run's folder (``out_dir``, else the result file's; None when nothing is
    written), taken: a second live run there gets :class:`~hopfield_lab.checkpoint.FolderInUse`."""
    if cfg.out_dir:
        return ck.RunLock(cfg.out_dir).acquire()
    if cfg.result_path:
        p = Path(cfg.result_path)
        return ck.RunLock(p.parent, f".{p.name}.lock").acquire("result_path (--result-path)")
    return None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (``KeyboardInterrupt``) during :func:`train`; ``str()`` says where the last checkpoint is."""


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or weights. ``result`` is the run's :class:`RunResult`
    (``status`` "diverged", ``diverged`` = ``{"epoch", "what"}``), also written to the result file."""

    def __init__(self, message: str, result: RunResult):
        super().__init__(message)
        self.result = result


#: A finite loss that has exploded: the epoch's mean training loss above ``factor * ln(classes)``
#: (chance level is ``ln(classes)``, where every run starts). The first epoch gets the loose
#: factor (its first steps may overshoot), later ones the tight one. The committed CIFAR-10 runs
#: (hopfield_lab/results/cifar10*/) never exceed 0.96 ln(10) in any epoch; lr 3..100 reaches 20..2e8.
EXPLODED_FACTOR = {"first epoch": 10.0, "later epochs": 3.0}


def loss_limit(num_classes: int | None, epoch: int) -> float:
    """The largest healthy mean training loss of ``epoch`` (1-based) for ``num_classes`` classes
    (see :data:`EXPLODED_FACTOR`; at least 2 classes' ln 2 counts as chance)."""
    factor = EXPLODED_FACTOR["first epoch" if epoch <= 1 else "later epochs"]
    return factor * math.log(max(int(num_classes or 2), 2))


def _divergence(loss_sum: float, penalty_sum: float, model: nn.Module, *, mean_loss: float | None = None,
                limit: float | None = None) -> str | None:
    """None when the epoch's summed loss and penalty and all weights are finite and the mean loss is
    at most ``limit`` (:func:`loss_limit`), else what is wrong."""
    for name, v in (("loss", loss_sum), ("penalty", penalty_sum)):
        if not math.isfinite(v):
            return f"{name} {'NaN' if math.isnan(v) else 'inf'}"
    if mean_loss is not None and limit is not None and mean_loss > limit:
        return f"loss exploded: mean training loss {mean_loss:.3g} > {limit:.3g}, far above chance"
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
    A loss is diverged when it is NaN or inf, or when it has exploded far above chance
    (:func:`loss_limit`). While it runs, the run owns its folder (:class:`~hopfield_lab.checkpoint.RunLock`:
    a second run there is refused with :class:`~hopfield_lab.checkpoint.FolderInUse`); Ctrl-C
    raises :class:`TrainingInterrupted`, whose message says where the last checkpoint is.
    """
    cfg = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    cfg.validate()
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    lock, done = None, {"epoch": None, "saved": None, "finished": False}
    try:
        if D.is_main_process():  # before the process group: a failure here ends every rank's wait
            _prepare_outputs(cfg)
            lock = _lock(cfg)
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        return _train(cfg, model, loaders, done)
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted(cfg, done)) from None
    finally:  # a deterministic run does not change the process for later runs
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
        if lock is not None:
            lock.release()
            if done["finished"] and cfg.out_dir and not cfg.keep_checkpoint:
                try:
                    Path(cfg.out_dir).rmdir()  # only if nothing else is in it
                except OSError:
                    pass


def _interrupted(cfg: TrainConfig, done: dict) -> str:
    """The one line of a run stopped by Ctrl-C: where, and where its last checkpoint is."""
    where = f"{cfg.model} interrupted" + (f" in epoch {done['epoch']}" if done["epoch"] else "")
    if not cfg.out_dir:
        return f"{where}; nothing was saved (no out_dir, --out-dir), so a rerun starts afresh."
    ckpt = Path(cfg.out_dir) / CHECKPOINT_NAME
    if done["saved"] or (done["saved"] is None and ckpt.is_file()):
        at = f" (epoch {done['saved']})" if done["saved"] else ""
        return f"{where}; the last checkpoint{at} is {ckpt}: rerun the same command to resume from it."
    return f"{where} before its first checkpoint ({ckpt}); a rerun starts afresh."


@dataclasses.dataclass
class _Run:
    """What the phases of one run share (:func:`_train`): data, model, optimiser, progress."""

    cfg: TrainConfig
    info: D.DistInfo
    train_loader: object
    test_loader: object
    meta: dict                      # num_classes, in_chans, img_size, n_train, n_test, data
    data: dict                      # what the checkpoint records of the data (_data_record)
    base: nn.Module                 # the plain model (train_model / eval_model wrap it)
    optimizer: torch.optim.Optimizer
    scheduler: object
    amp_dtype: torch.dtype | None
    ckpt_path: Path | None
    n_params: int
    train_model: nn.Module | None = None
    eval_model: nn.Module | None = None
    history: list = dataclasses.field(default_factory=list)
    sym_history: list = dataclasses.field(default_factory=list)
    start_epoch: int = 0
    train_time: float = 0.0         # seconds in training epochs, earlier processes included
    wall_prev: float = 0.0          # wall time of earlier processes (a resumed run)
    t_run: float = 0.0              # perf_counter when this process's epochs began

    @property
    def steps_per_epoch(self) -> int:
        return self.data["steps_per_epoch"]

    def wall(self) -> float:
        """Wall time of the run so far, earlier processes included."""
        return self.wall_prev + time.perf_counter() - self.t_run


def _train(cfg: TrainConfig, model: nn.Module | None, loaders, done: dict) -> RunResult:
    """The run, phase by phase (as d2l's ``fit``): set up, resume, then :func:`_fit_epoch` and
    :func:`_end_epoch` per epoch, then :func:`_result` and :func:`_finish`. ``done`` tells
    :func:`train` the epoch in progress, the last saved epoch and whether the run finished."""
    t_start = time.perf_counter()
    info = D.init_distributed(cfg.device)
    if info.device.type == "cpu":  # keep activations' memory in the process between steps
        perf.tune_cpu_allocator()
    cfg = dataclasses.replace(cfg, compile=perf.should_compile(cfg.compile, info.device))  # None: CUDA only
    seed_everything(cfg.seed)
    run = _setup(cfg, model, loaders, info)
    _resume(run)
    run.train_model, run.eval_model = D.wrap_model(run.base, info), run.base
    if cfg.compile:
        _raise_recompile_limit()
        run.train_model, run.eval_model = perf.compile_module(run.train_model), perf.compile_module(run.base)

    from ..runtime import progress_bar

    last = cfg.epochs if cfg.stop_after_epochs is None else min(cfg.epochs, cfg.stop_after_epochs)
    bar = progress_bar(total=(last - run.start_epoch) * run.steps_per_epoch, enabled=cfg.progress and info.is_main,
               desc=f"{cfg.model}" + (f" lam={cfg.lam:g}" if cfg.lam is not None else ""),
               unit="batch", dynamic_ncols=True)
    run.t_run = time.perf_counter()
    diverged = None
    done["saved"] = run.start_epoch if run.ckpt_path is not None and run.ckpt_path.is_file() else None
    for epoch in range(run.start_epoch, last):
        done["epoch"] = epoch + 1
        row, broken = _fit_epoch(run, epoch, bar)
        if broken is not None:  # stop before anything (eval, metrics, checkpoint) reads bad weights
            row["time_s"] = run.wall()
            run.history.append(row)
            diverged = {"epoch": epoch + 1, "what": broken}
            break
        if _end_epoch(run, row, epoch, last, bar):
            done["saved"] = epoch + 1
    bar.close()
    status = "diverged" if diverged else "finished" if last == cfg.epochs else "stopped"
    result = _result(run, status, diverged, t_start)
    return _finish(run, result, diverged, done)


def _setup(cfg: TrainConfig, model: nn.Module | None, loaders, info: D.DistInfo) -> _Run:
    """Loaders (see :func:`train`), model, optimiser and schedule of a run, checked before any epoch."""
    device = info.device
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
    if meta.get("n_test") == 0 or (hasattr(test_loader, "__len__") and len(test_loader) == 0):
        raise ValueError("The test loader yields no batch, so the run could not be evaluated (its accuracy "
                         "would read 0): give the test split images.")

    base = model if model is not None else build_model(cfg, meta["num_classes"], meta["in_chans"], meta["img_size"])
    outputs = getattr(base, "num_classes", None)
    if isinstance(outputs, int) and outputs < meta["num_classes"]:
        raise ValueError(
            f"the model has {outputs} outputs but the data have {meta['num_classes']} classes (labels 0.."
            f"{meta['num_classes'] - 1}): drop model_overrides num_classes={outputs} (the model then takes the "
            "data's count) or set it to at least the number of classes.")
    base = base.to(device)
    optimizer = make_optimizer(base, cfg, device)
    return _Run(cfg=cfg, info=info, train_loader=train_loader, test_loader=test_loader, meta=meta,
                data=_data_record(meta, steps_per_epoch), base=base, optimizer=optimizer,
                scheduler=make_scheduler(optimizer, cfg, steps_per_epoch), amp_dtype=perf.amp_dtype(device, cfg.amp),
                ckpt_path=Path(cfg.out_dir) / CHECKPOINT_NAME if cfg.out_dir else None,
                n_params=sum(p.numel() for p in base.parameters()))


def _resume(run: _Run) -> None:
    """Continue from the checkpoint in ``out_dir`` when there is one (and ``resume``): model,
    optimiser, schedule, history, loader epoch and random streams; refused on another
    configuration or other data (:func:`_check_resumable`)."""
    cfg, ckpt_path = run.cfg, run.ckpt_path
    if ckpt_path is None or not cfg.resume or not ckpt_path.is_file():
        return
    saved = ck.load_checkpoint(ckpt_path, map_location=run.info.device)
    _check_resumable(saved, cfg, run.data)
    run.base.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    run.history, run.sym_history = saved["history"], saved.get("symmetry_history", [])
    run.start_epoch, run.train_time, run.wall_prev = saved["epoch"], saved["train_time_s"], saved["wall_time_s"]
    if hasattr(run.train_loader, "load_state_dict") and "loader" in saved:
        run.train_loader.load_state_dict(saved["loader"])
    ck.set_rng_state(saved["rng"])
    if run.info.is_main:
        print(f"hopfield_lab.train: resumed {cfg.model} from {ckpt_path} after epoch {run.start_epoch}.", flush=True)


def _fit_epoch(run: _Run, epoch: int, bar) -> tuple[dict, str | None]:
    """Train one epoch (0-based ``epoch``); returns its history row and None, or what diverged
    (:func:`_divergence`). Sums stay on the device (no host sync inside the loop)."""
    cfg, info, device = run.cfg, run.info, run.info.device
    run.train_loader.set_epoch(epoch)
    seed_rank(cfg.seed, info, epoch)  # ranks > 0: their own drop-path / mixup streams
    loss_acc = torch.zeros((), dtype=torch.float64, device=device)  # sum of loss * B
    pen_acc = torch.zeros((), dtype=torch.float64, device=device)
    correct_acc = torch.zeros((), dtype=torch.float64, device=device)
    n_local = 0
    _sync(device)
    t0 = time.perf_counter()
    for images, labels in run.train_loader:
        out = train_step(run.train_model, images, labels, run.optimizer, scheduler=run.scheduler,
                         label_smoothing=cfg.label_smoothing, amp_dtype=run.amp_dtype,
                         grad_clip=cfg.grad_clip)
        B = labels.shape[0]
        loss_acc += out.loss * B
        pen_acc += out.penalty
        correct_acc += out.correct
        n_local += B
        bar.update(1)
    _sync(device)
    dt = time.perf_counter() - t0
    run.train_time += dt
    sums = torch.stack([loss_acc, pen_acc, correct_acc,
                        torch.tensor(float(n_local), dtype=torch.float64, device=device)])
    D.all_reduce_(sums, info)
    loss_sum, pen_sum, correct, n_seen = sums.tolist()
    row = {"epoch": epoch + 1, "train_loss": loss_sum / n_seen, "train_acc": correct / n_seen,
           "penalty": pen_sum / (run.steps_per_epoch * info.world_size),
           "lr": run.optimizer.param_groups[0]["lr"], "epoch_time_s": dt, "img_per_s": n_seen / dt}
    broken = _divergence(loss_sum, pen_sum, run.base, mean_loss=row["train_loss"],
                         limit=loss_limit(run.meta.get("num_classes"), epoch + 1))
    return row, broken


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _end_epoch(run: _Run, row: dict, epoch: int, last: int, bar) -> bool:
    """After a good epoch: evaluation (every ``eval_every`` epochs and after the last), the history
    row, symmetry metrics, the checkpoint. Returns True when a checkpoint was written."""
    cfg, info = run.cfg, run.info
    is_last = epoch + 1 == cfg.epochs
    if (epoch + 1) % cfg.eval_every == 0 or is_last:
        ev = evaluate(run.eval_model, run.test_loader, amp_dtype=run.amp_dtype, info=info)
        row.update(test_loss=ev["loss"], test_acc=ev["acc"])
    row["time_s"] = run.wall()
    run.history.append(row)
    if cfg.symmetry_metrics and info.is_main and (
            is_last or (cfg.symmetry_every and (epoch + 1) % cfg.symmetry_every == 0)):
        rep = _symmetry(run.base)
        if rep is not None:
            run.sym_history.append({"epoch": epoch + 1, "report": rep})
    bar.set_postfix({k: round(v, 4) for k, v in row.items()
                     if k in ("train_loss", "train_acc", "test_acc")})
    if run.ckpt_path is None or not ((epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == last):
        return False
    if info.is_main:
        ck.atomic_save({
            "format": 1, "epoch": epoch + 1, "model": run.base.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "loader": run.train_loader.state_dict() if hasattr(run.train_loader, "state_dict") else None,
            "rng": ck.rng_state(), "history": run.history, "symmetry_history": run.sym_history,
            "config": cfg.to_dict(), "data": run.data, "train_time_s": run.train_time,
            "wall_time_s": run.wall(),
        }, run.ckpt_path)
    D.barrier(info)
    return True


def _result(run: _Run, status: str, diverged: dict | None, t_start: float) -> RunResult:
    """The run's :class:`~hopfield_lab.results.RunResult` (``t_start``: when this process began)."""
    cfg, base, meta, history, sym_history = run.cfg, run.base, run.meta, run.history, run.sym_history
    device, info, amp_dtype = run.info.device, run.info, run.amp_dtype
    final = history[-1] if history else {}
    timed = history[1:] if len(history) > 1 else history  # epoch 1 holds compilation / warm-up
    img_s = (sum(r["img_per_s"] * r["epoch_time_s"] for r in timed) / sum(r["epoch_time_s"] for r in timed)
             if timed else None)
    evals = [r["test_acc"] for r in history if "test_acc" in r]
    return RunResult(**ck.plain(dict(
        model=cfg.model, family=base.family.name if getattr(base, "family", None) else None,
        n_iter=base.blocks[0].n_iter if len(getattr(base, "blocks", ())) else 1,
        init=getattr(base, "init", "random"), dataset=cfg.dataset, epochs=cfg.epochs, epochs_done=len(history), seed=cfg.seed,
        lam=model_lam(base),
        recipe=cfg.recipe, status=status, diverged=diverged,
        test_acc=final.get("test_acc"), test_loss=final.get("test_loss"),
        train_acc=final.get("train_acc"), train_loss=final.get("train_loss"),
        best_test_acc=max(evals) if evals else None,
        params=run.n_params, num_classes=meta.get("num_classes"), n_train=meta.get("n_train"),
        n_test=meta.get("n_test"), img_size=meta.get("img_size"), data=meta.get("data"),
        history=history, symmetry=sym_history[-1]["report"] if sym_history else None, symmetry_history=sym_history,
        wall_time_s=run.wall(), process_time_s=time.perf_counter() - t_start,
        train_time_s=run.train_time, img_per_s=img_s,
        world_size=info.world_size, amp="bf16" if amp_dtype is not None else None,
        compiled=perf.compile_status(run.train_model), config=cfg.to_dict(),
        **provenance(device))))  # device and CPU names, threads, versions, commit, finished_at


def _finish(run: _Run, result: RunResult, diverged: dict | None, done: dict) -> RunResult:
    """Write the result file (not for a stopped run), raise :class:`TrainingDiverged` for a
    diverged one, delete the checkpoint of a finished run unless ``keep_checkpoint``."""
    cfg, info, ckpt_path = run.cfg, run.info, run.ckpt_path
    target = _result_target(cfg)
    if info.is_main and result.status != "stopped" and target is not None:
        ck.atomic_write_json(result.to_dict(), target)
    if diverged:
        D.barrier(info)
        saved_epoch = done["saved"]
        kept = (f"the last good checkpoint (epoch {saved_epoch}) is kept in {ckpt_path}" if saved_epoch
                else "no checkpoint was written before it")
        raise TrainingDiverged(
            f"training diverged at epoch {diverged['epoch']} ({diverged['what']}); {kept}"
            + (f", and {target} says so" if target is not None else "")
            + f". Lower the learning rate (lr={cfg.lr:g})" + (f" or lam={cfg.lam:g}" if cfg.lam else "")
            + ", or clip gradients (grad_clip), and start afresh.", result)
    if info.is_main and result.finished:
        done["finished"] = True  # train() removes out_dir once its lock is released, if nothing is left
        if ckpt_path is not None and not cfg.keep_checkpoint and ckpt_path.exists():
            ckpt_path.unlink()
    D.barrier(info)
    return result
