"""Data-parallel training under ``torchrun``: small helpers around :mod:`torch.distributed`.

The trainer runs unchanged on one device and under ``torchrun --nproc_per_node=N``; everything
that differs between the two lives here:

* :func:`init_distributed` reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (set by torchrun),
  starts the process group (NCCL on CUDA, gloo on CPU), pins each process to its GPU and returns
  a :class:`DistInfo`. Outside torchrun it returns a single-process ``DistInfo`` and starts nothing.
* :func:`wrap_model` / :func:`unwrap` -- DistributedDataParallel in, the plain module out.
* :func:`all_reduce_` -- reduce metric tensors across ranks (a no-op on one process).
* :func:`shard` -- this rank's share of a global permutation of the training set.
* :func:`local_batch_size` -- the per-rank batch for a global batch (clear error if N does not divide it).
* :func:`barrier`, :func:`cleanup`.

Conventions (what makes a DDP run equal to a single-process run):

* Every rank draws the *same* global permutation of the data each epoch (same seed); rank ``r``
  takes the strided share ``perm[r::N]`` (remainder dropped). With per-rank batch ``b = B / N``,
  the k-th global batch (the union over ranks of each rank's k-th batch) is then exactly
  ``perm[k*B:(k+1)*B]``, the k-th batch of a single-process run with batch ``B``. DDP averages
  gradients over ranks, so with a mean-reduced loss one DDP step with global batch ``B`` equals
  one single-process step with batch ``B`` (up to float rounding).
* Only rank 0 (``info.is_main``) writes checkpoints and result files; checkpoints hold the
  unwrapped model's ``state_dict`` (no ``module.`` prefix), so they load at any world size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "RendezvousError",
    "is_main_process",
    "parse_device",
    "init_distributed",
    "wrap_model",
    "unwrap",
    "all_reduce_",
    "shard",
    "local_batch_size",
    "barrier",
    "cleanup",
]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

TIMEOUT_ENV = "HOPFIELD_LAB_DIST_TIMEOUT"
"""Seconds every process waits for the others to join (default :data:`RENDEZVOUS_TIMEOUT_S`)."""

RENDEZVOUS_TIMEOUT_S = 300.0


def rendezvous_timeout() -> float:
    """How long (s) the processes of a run wait for each other at start-up: ``$HOPFIELD_LAB_DIST_TIMEOUT``
    or :data:`RENDEZVOUS_TIMEOUT_S`. (torch's own default is 30 minutes, long for a missing process.)"""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return RENDEZVOUS_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise RuntimeError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds.")
    return value


class RendezvousError(RuntimeError):
    """The processes of a distributed run did not all meet within :func:`rendezvous_timeout`
    (every rank reports it: the one that would speak for all may be the missing one)."""


def _torchelastic_agent_store() -> bool:
    """Under torchrun every rank is a client of the agent's store (torch's own rule)."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)


def _wait_for_listener(host: str, port: int, timeout: float) -> float:
    """Poll ``host:port`` until it accepts a TCP connection; return the seconds left of ``timeout``
    (raise TimeoutError when it never does). c10d's own client would log C++ stack traces meanwhile."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return max(deadline - time.monotonic(), 1.0)
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens at {host}:{port}") from None
            time.sleep(0.1)


def _rendezvous(rank: int, world_size: int):
    """The store all ranks meet in (torch's ``env://`` rendezvous), waiting at most
    :func:`rendezvous_timeout` seconds for the other processes; a clear error when one is missing."""
    from datetime import timedelta

    wait = rendezvous_timeout()
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    where = f"{host}:{port}"
    try:
        left = wait
        if rank > 0 or _torchelastic_agent_store():  # a client: first wait (quietly) for the store to listen
            left = _wait_for_listener(host, int(port), wait)
        store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world_size,
                                           timeout=timedelta(seconds=left)))
    except (RuntimeError, TimeoutError, OSError) as exc:
        raise RendezvousError(
            f"Rank {rank} of WORLD_SIZE={world_size} waited {wait:g} s at {where} (MASTER_ADDR:MASTER_PORT) "
            f"and the other process(es) did not join ({type(exc).__name__}). Start all {world_size} processes "
            "(torchrun --nproc_per_node=N starts them together), or unset RANK, WORLD_SIZE and LOCAL_RANK for "
            f"a single process; {TIMEOUT_ENV} sets how many seconds to wait."
        ) from None
    store.set_timeout(dist.constants.default_pg_timeout)  # later waits (collectives) as torch's default
    return dist.PrefixStore("default_pg", store)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: global rank, ``0 .. world_size-1``.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on (``cuda:local_rank`` under DDP on GPUs).
        enabled: True when a process group is running (``world_size > 1``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one process that prints, writes checkpoints and result files."""
        return self.rank == 0


def is_main_process() -> bool:
    """True unless torchrun's ``RANK`` names another rank than 0 (usable before :func:`init_distributed`)."""
    return os.environ.get("RANK", "0") == "0"


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(
            f"Environment variable {name}={value!r} is not an integer. It is set by torchrun; "
            "launch with `torchrun --nproc_per_node=N -m hopfield_lab train ...` or unset it."
        ) from None


DEVICE_TYPES = ("cpu", "cuda", "mps")


def parse_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)`` for the kinds this project trains on, else a ValueError that lists them."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in DEVICE_TYPES:
        raise ValueError(f"unknown device {str(device)!r}: use cpu, cuda, cuda:N (the N-th GPU) or mps "
                         "(Apple GPUs), or leave it unset for CUDA when present")
    return dev


def _pick_device(device: str | torch.device | None, local_rank: int, launched: bool) -> torch.device:
    if device is None:
        device = os.environ.get("HOPFIELD_LAB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = parse_device(device)
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"Device {dev} was requested but no CUDA GPU is visible to torch. "
            "Use device='cpu' (gloo backend) or run on a machine with GPUs."
        )
    if launched:
        n = torch.cuda.device_count()
        if local_rank >= n:
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {n} GPU(s) are visible on this machine: "
                f"use `torchrun --nproc_per_node={n}` (at most one process per GPU) "
                "or check CUDA_VISIBLE_DEVICES."
            )
        dev = torch.device("cuda", local_rank)
    elif dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(dev)
    return dev


def init_distributed(device: str | torch.device | None = None, backend: str | None = None) -> DistInfo:
    """Start data-parallel training if launched by torchrun, else describe a single process.

    Args:
        device: ``"cuda"`` / ``"cpu"`` / a :class:`torch.device`; default: CUDA when present
            (``HOPFIELD_LAB_DEVICE`` overrides). Under torchrun on CUDA each process takes
            ``cuda:LOCAL_RANK`` and makes it the current device.
        backend: process-group backend; default ``"nccl"`` on CUDA, ``"gloo"`` on CPU.

    Returns:
        A :class:`DistInfo`. ``enabled`` is True only when ``WORLD_SIZE > 1`` (a process group is
        then initialised, or reused if one already is); with ``torchrun --nproc_per_node=1`` or
        without torchrun nothing is started.
    """
    present = [k for k in _ENV if k in os.environ]
    launched = len(present) == len(_ENV)
    if present and not launched:
        missing = [k for k in _ENV if k not in os.environ]
        raise RuntimeError(
            f"Found {', '.join(present)} but not {', '.join(missing)} in the environment: a partial "
            "torchrun environment. Launch with `torchrun --nproc_per_node=N -m hopfield_lab train ...` "
            "(which sets all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), "
            "or unset these variables for a single-process run."
        )
    rank, world_size, local_rank = (_env_int(k) for k in _ENV) if launched else (0, 1, 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise RuntimeError(
            f"Inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
            f"LOCAL_RANK={local_rank} (need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0)."
        )
    dev = _pick_device(device, local_rank, launched)
    enabled = world_size > 1
    if enabled:
        if backend is None:
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if backend == "nccl" and dev.type != "cuda":
            raise RuntimeError(
                "The NCCL backend needs CUDA devices but this process runs on "
                f"{dev}: use backend='gloo' for CPU runs (the default)."
            )
        if not dist.is_available():
            raise RuntimeError("This torch build has no torch.distributed support; install a standard torch wheel.")
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"{' and '.join(missing)} not set: launch with torchrun, which sets them, or set them "
                "yourself (e.g. MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 for one machine)."
            )
        if dist.is_initialized():
            if dist.get_world_size() != world_size or dist.get_rank() != rank:
                raise RuntimeError(
                    f"A process group is already running with rank {dist.get_rank()} of "
                    f"{dist.get_world_size()}, but the environment says rank {rank} of {world_size}."
                )
        else:
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            store = _rendezvous(rank, world_size)
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, enabled=enabled)


def wrap_model(model: nn.Module, info: DistInfo, **ddp_kwargs) -> nn.Module:
    """Wrap ``model`` (already on ``info.device``) in DistributedDataParallel when ``info.enabled``.

    DDP broadcasts rank 0's parameters to every rank at construction and averages gradients in
    backward. Extra keyword arguments go to :class:`~torch.nn.parallel.DistributedDataParallel`.
    Single process: returns ``model`` itself.
    """
    if not info.enabled:
        return model
    first = next(iter(model.parameters()), None)
    if first is not None and first.device != info.device:
        raise RuntimeError(
            f"The model's parameters are on {first.device} but this rank computes on {info.device}: "
            "call model.to(info.device) before wrap_model."
        )
    from torch.nn.parallel import DistributedDataParallel as DDP

    if info.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [info.device.index])
        ddp_kwargs.setdefault("output_device", info.device.index)
    return DDP(model, **ddp_kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and/or ``torch.compile`` wrappers (any nesting).

    Use it for ``state_dict()`` in checkpoints (no ``module.`` prefix, loadable at any world size)
    and for model methods such as ``symmetry_penalty()`` or the symmetry metrics.
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    while True:
        if isinstance(model, DDP):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN", "product": "PRODUCT"}


def all_reduce_(tensor: torch.Tensor, info: DistInfo, op: str = "sum") -> torch.Tensor:
    """Reduce ``tensor`` across ranks in place and return it; a no-op on a single process.

    Args:
        tensor: any shape; every rank must pass the same shape and dtype. A CPU tensor under
            NCCL is reduced through ``info.device`` and copied back.
        op: ``"sum"``, ``"mean"`` (sum / world_size; floating tensors only), ``"max"``,
            ``"min"`` or ``"product"``.
    """
    if op not in _OPS:
        raise ValueError(f"op={op!r} is not supported: use one of {sorted(_OPS)}.")
    if op == "mean" and not (tensor.is_floating_point() or tensor.is_complex()):
        raise TypeError(f"op='mean' needs a floating tensor, got {tensor.dtype}: cast it first (e.g. .double()).")
    if not info.enabled:
        return tensor
    reduce_op = getattr(dist.ReduceOp, _OPS[op])
    needs_copy = dist.get_backend() == "nccl" and tensor.device.type != "cuda"
    work = tensor.to(info.device) if needs_copy else tensor
    dist.all_reduce(work, op=reduce_op)
    if op == "mean":
        work.div_(info.world_size)
    if needs_copy:
        tensor.copy_(work)
    return tensor


def shard(indices: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's equal-size share of a global permutation: ``indices[rank::world_size][:n // world_size]``.

    Args:
        indices: 1-D tensor of sample indices, shape ``(n,)``, identical on every rank (draw it
            from a generator seeded with the same seed and epoch everywhere).
    Returns:
        Shape ``(n // world_size,)``: the last ``n % world_size`` indices are dropped, so every
        rank gets the same number of samples (and of batches). Strided (not contiguous) shares
        make the k-th global batch of a DDP run equal to the k-th batch of a single-process run
        with the same global batch size and permutation. Single process: ``indices`` itself.
    """
    if indices.dim() != 1:
        raise ValueError(f"shard expects a 1-D tensor of indices, got shape {tuple(indices.shape)}.")
    W = info.world_size
    if W == 1:
        return indices
    n_local = indices.numel() // W
    if n_local == 0:
        raise ValueError(
            f"Cannot shard {indices.numel()} samples over {W} ranks: every rank needs at least one. "
            "Use fewer processes or more data."
        )
    return indices[info.rank :: W][:n_local]


def local_batch_size(global_batch: int, info: DistInfo) -> int:
    """Per-rank batch size ``global_batch // world_size``; raises if ``world_size`` does not divide it.

    The learning rate, the schedule and the result files are written in terms of the *global*
    batch, so a run means the same at any world size.
    """
    if global_batch < 1:
        raise ValueError(f"The batch size must be positive, got {global_batch}.")
    W = info.world_size
    if global_batch % W:
        lo, hi = (global_batch // W) * W, (global_batch // W + 1) * W
        raise ValueError(
            f"The global batch size {global_batch} is not divisible by the world size {W} "
            f"(processes started by torchrun). Choose a multiple of {W}, e.g. --batch-size "
            f"{hi if lo == 0 else lo} or {hi}, or change --nproc_per_node."
        )
    return global_batch // W


def barrier(info: DistInfo) -> None:
    """Wait until every rank reaches this point (no-op on a single process)."""
    if not info.enabled:
        return
    if info.device.type == "cuda" and dist.get_backend() == "nccl":
        dist.barrier(device_ids=[info.device.index])
    else:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Shut the process group down (no-op on a single process or if already shut down)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
