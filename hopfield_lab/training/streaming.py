"""A streaming loader for data that does not fit on the GPU (the paper's 224-px recipe, ImageNet).

:class:`StreamingLoader` wraps :class:`torch.utils.data.DataLoader` (worker processes decode and
augment images on the CPU, pinned memory, persistent workers, a prefetch queue) and yields
batches already on the device, with an optional batch transform applied there (e.g. the recipe's
:class:`~hopfield_lab.recipes.MixupCutmix`). It has the interface of the GPU-resident loader of
:mod:`hopfield_lab.data`: iterate to get ``(images, labels)`` on the device, call
``set_epoch(e)`` before each epoch, ``len()`` is the number of batches.

Sampling matches the GPU-resident loader: every rank draws the same permutation (seeded with
``(seed, epoch)``) and takes its share with :func:`hopfield_lab.distributed.shard` (strided,
remainder dropped), so the k-th global batch is the same at any world size. With
``seed_per_sample=True`` (default) each sample's augmentation is seeded from
``(seed, epoch, index)``, so the augmented stream does not depend on the number of workers or
processes either, and a resumed run sees exactly the images an uninterrupted one would.
"""
from __future__ import annotations

import functools
import os
import random
from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from .distributed import DistInfo
from .distributed import shard as _dist_shard

__all__ = ["StreamingLoader", "TransformDataset", "ShardSampler", "default_num_workers"]

_MASK = (1 << 63) - 1


def default_num_workers(info: DistInfo | None = None) -> int:
    """CPU cores available to this process divided among the local ranks, less one for the main process (0 to 32)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size if info is not None else 1))
    return max(0, min(32, cores // max(local, 1) - 1))


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    # SplitMix64-style mixing of (seed, epoch, index) into one 63-bit seed.
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


class TransformDataset(Dataset):
    """Apply ``transform`` to the images of a dataset of ``(image, label)`` pairs, or of in-memory tensors.

    Args:
        data: a map-style dataset returning ``(image, label)``, or a tensor of images
            ``(N, C, H, W)`` (e.g. uint8) -- then ``labels`` (shape ``(N,)``) is required.
        labels: labels when ``data`` is a tensor.
        transform: called on each image (e.g. a train transform of
            :func:`hopfield_lab.recipes.paper_transforms`); None keeps the image.
    """

    def __init__(self, data, labels: torch.Tensor | Sequence[int] | None = None, transform: Callable | None = None):
        if isinstance(data, torch.Tensor):
            if labels is None:
                raise ValueError("Pass labels (shape (N,)) together with an image tensor.")
            labels = torch.as_tensor(labels)
            if labels.shape[0] != data.shape[0]:
                raise ValueError(f"{data.shape[0]} images but {labels.shape[0]} labels.")
        self.data, self.labels, self.transform = data, labels, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        seed = None
        if isinstance(i, tuple):  # (index, seed) from ShardSampler(seed_per_sample=True)
            i, seed = i
        if seed is None:
            return self._get(i)
        if get_worker_info() is not None:  # a loader process: its generators are its own
            torch.manual_seed(seed)
            random.seed(seed)
            return self._get(i)
        # in the training process itself (num_workers=0): leave its random streams untouched
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            try:
                return self._get(i)
            finally:
                random.setstate(py_state)

    def _get(self, i):
        if self.labels is not None:
            x, y = self.data[i], int(self.labels[i])
        else:
            x, y = self.data[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, y


class ShardSampler(Sampler):
    """This process's share of an epoch, in the order :class:`hopfield_lab.data.DeviceLoader` uses.

    The epoch's order is ``torch.randperm(n)`` from a generator seeded with
    ``seed * 1_000_003 + epoch`` (training) or ``arange(n)`` (evaluation), the same on every
    rank; then ``shard`` (e.g. ``functools.partial(hopfield_lab.distributed.shard, info=info)``)
    picks this rank's part. Given only ``info``, training uses :func:`~hopfield_lab.distributed.shard`
    (strided, remainder dropped, equal sizes) and evaluation the strided share without dropping
    (``range(rank, n, world_size)``: every sample counted exactly once in summed metrics).

    Args:
        n: dataset size.
        train: shuffle each epoch.
        seed: seed of the shuffles (and of per-sample augmentation).
        shard: callable mapping the global order to this rank's part (overrides ``info``).
        info: the run's :class:`~hopfield_lab.distributed.DistInfo`.
        seed_per_sample: yield ``(index, seed)`` pairs (for :class:`TransformDataset`) so each
            sample's augmentation is a function of ``(seed, epoch, index)`` alone.
    """

    def __init__(self, n: int, *, train: bool = False, seed: int = 0,
                 shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 info: DistInfo | None = None, seed_per_sample: bool = False):
        self.n, self.train, self.seed, self.seed_per_sample = int(n), bool(train), int(seed), bool(seed_per_sample)
        if shard is None and info is not None and info.world_size > 1:
            if self.train:
                shard = functools.partial(_dist_shard, info=info)
            else:
                shard = functools.partial(_eval_shard, info=info)
        self.shard = shard
        self.epoch = 0
        self._len = len(self.indices())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> torch.Tensor:
        """This process's sample indices for the current epoch, shape ``(len(self),)``."""
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        return order if self.shard is None else self.shard(order)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator:
        idx = self.indices().tolist()
        if not self.seed_per_sample:
            return iter(idx)
        return iter([(i, _sample_seed(self.seed, self.epoch, i)) for i in idx])


def _eval_shard(order: torch.Tensor, info: DistInfo) -> torch.Tensor:
    return order[info.rank :: info.world_size]


class StreamingLoader:
    """Device batches streamed from a CPU dataset through DataLoader workers.

    Same interface as :class:`hopfield_lab.data.DeviceLoader`: iterate for ``(images, labels)``
    on ``device``; :meth:`set_epoch` before each epoch; ``len()`` batches; ``num_samples``;
    ``state_dict()`` / ``load_state_dict()``.

    Args:
        dataset: map-style dataset returning ``(image_tensor (C, H, W), int_label)``, e.g. a
            :class:`TransformDataset` with a transform of :func:`hopfield_lab.recipes.paper_transforms`.
        batch_size: images per batch *per process* (as DeviceLoader; under DDP use
            :func:`hopfield_lab.distributed.local_batch_size` of the global batch).
        device: where batches go.
        train: shuffle each epoch and drop the last incomplete batch (fixed batch shapes).
        seed: shuffles of epoch ``e`` are seeded with ``(seed, e)`` as in DeviceLoader.
        shard: callable mapping the global order to this rank's part (as DeviceLoader), or
        info: a :class:`~hopfield_lab.distributed.DistInfo` from which the shard is derived
            (see :class:`ShardSampler`).
        drop_last: default ``train``.
        num_workers: loader processes (default :func:`default_num_workers`).
        batch_transform: applied to each device batch, ``(images, labels) -> (images, targets)``,
            e.g. :class:`~hopfield_lab.recipes.MixupCutmix` (give it only to the train loader).
        seed_per_sample: per-sample augmentation seeds (needs a dataset that accepts
            ``(index, seed)`` keys, as :class:`TransformDataset`); the augmented stream then does
            not depend on the number of workers or processes and a resumed run is exact. Default:
            on for a :class:`TransformDataset` with a transform.
        pin_memory: default: on when ``device`` is CUDA.
        persistent_workers, prefetch_factor: passed to DataLoader when ``num_workers > 0``.
        channels_last: convert image batches to ``torch.channels_last`` on the device.

    Yields ``(images, labels)``: float images ``(b, C, H, W)`` and int64 labels ``(b,)`` on the
    device (or the batch transform's outputs, e.g. soft targets ``(b, K)``).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        train: bool = False,
        seed: int = 0,
        shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
        info: DistInfo | None = None,
        drop_last: bool | None = None,
        num_workers: int | None = None,
        batch_transform: Callable | None = None,
        seed_per_sample: bool | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        prefetch_factor: int = 4,
        channels_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        if seed_per_sample is None:
            seed_per_sample = isinstance(dataset, TransformDataset) and dataset.transform is not None
        self.sampler = ShardSampler(len(dataset), train=self.train, seed=seed, shard=shard, info=info,
                                    seed_per_sample=seed_per_sample)
        if self.drop_last and len(self.sampler) < self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds the {len(self.sampler)} images this process sees "
                f"per epoch (of {len(dataset)}); lower the batch size or use more data."
            )
        if num_workers is None:
            num_workers = default_num_workers(info)
        if pin_memory is None:
            pin_memory = self.device.type == "cuda"
        kwargs = {}
        if num_workers > 0:
            kwargs = dict(persistent_workers=persistent_workers, prefetch_factor=prefetch_factor)
        self.loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            drop_last=self.drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory,
            # the loader's own generator (worker base seeds): the training process's RNG is untouched
            generator=torch.Generator().manual_seed(int(seed)),
            **kwargs,
        )
        self.batch_transform = batch_transform
        self.channels_last = channels_last
        self.num_workers = num_workers

    @property
    def seed(self) -> int:
        return self.sampler.seed

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @property
    def num_samples(self) -> int:
        """Images this process sees per epoch."""
        return len(self.sampler)

    def __len__(self) -> int:
        """Batches per epoch on this process (the same on every rank when training)."""
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order (call before iterating; the same value on every rank)."""
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "seed": self.sampler.seed}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.epoch = int(state["epoch"])
        self.sampler.seed = int(state["seed"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        non_blocking = self.loader.pin_memory and self.device.type == "cuda"
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=non_blocking)
            y = y.to(self.device, non_blocking=non_blocking)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.batch_transform is not None:
                x, y = self.batch_transform(x, y)
            yield x, y
