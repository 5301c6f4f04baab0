"""Data-parallel training: the torchrun/DDP helpers, the streaming loader, and 2-process gloo runs.

The multi-process test starts two CPU processes (gloo, loopback only) once and checks, with the
project's own trainer (:func:`hopfield_lab.train.train_step` and :func:`hopfield_lab.train.train`):

* one DDP step with global batch B gives the same gradients and parameters as one
  single-process step with batch B (AsymMixer with its symmetry penalty, so the penalty is
  counted once);
* only rank 0 writes checkpoints and result files;
* a DDP run interrupted after one epoch and resumed ends bit-identical to an uninterrupted DDP
  run;
* a checkpoint written at world size 1 resumes at world size 2, and one written at world size 2
  resumes at world size 1, both ending where the uninterrupted runs end (float tolerance);
* each rank draws its own drop-path masks while the parameters stay identical.
"""
from __future__ import annotations

import copy
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from hopfield_lab import distributed as D
from hopfield_lab.streaming import ShardSampler, StreamingLoader, TransformDataset

WORLD = 2


# ---------------------------------------------------------------------------------------------
# single-process behaviour of the helpers
# ---------------------------------------------------------------------------------------------
def _clear_dist_env(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)


def test_single_process_is_a_no_op(monkeypatch):
    _clear_dist_env(monkeypatch)
    info = D.init_distributed(device="cpu")
    assert (info.rank, info.world_size, info.enabled, info.is_main) == (0, 1, False, True)
    assert info.device == torch.device("cpu")
    m = torch.nn.Linear(3, 2)
    assert D.wrap_model(m, info) is m and D.unwrap(m) is m
    t = torch.tensor([1.0, 2.0])
    assert D.all_reduce_(t, info, "mean") is t and torch.equal(t, torch.tensor([1.0, 2.0]))
    D.barrier(info)
    D.cleanup(info)
    compiled = torch.nn.Module()  # what torch.compile returns keeps the module as _orig_mod
    compiled._orig_mod = m
    assert D.unwrap(compiled) is m


def test_clear_errors(monkeypatch):
    _clear_dist_env(monkeypatch)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RuntimeError, match="partial torchrun environment"):
        D.init_distributed(device="cpu")
    info = D.DistInfo(rank=1, world_size=3)
    with pytest.raises(ValueError, match="not divisible by the world size 3.*--batch-size 99 or 102"):
        D.local_batch_size(100, info)
    assert D.local_batch_size(99, info) == 33
    with pytest.raises(ValueError, match="not supported"):
        D.all_reduce_(torch.zeros(1), info, op="avg")
    with pytest.raises(TypeError, match="floating"):
        D.all_reduce_(torch.zeros(1, dtype=torch.long), info, op="mean")
    with pytest.raises(ValueError, match="at least one"):
        D.shard(torch.arange(2), info)


@pytest.mark.parametrize("rank", [0, 1])
def test_a_missing_peer_is_a_bounded_wait_and_one_line(rank, tmp_path):
    """WORLD_SIZE=2 with MASTER_* set but no other process: torch alone would wait 30 minutes."""
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), HOPFIELD_LAB_DIST_TIMEOUT="2", OMP_NUM_THREADS="1",
               HOPFIELD_LAB_CACHE=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "hopfield_lab", "train", "--model", "paramixer_cifar_tiny", "--dataset",
            "synthetic", "--device", "cpu", "--epochs", "1", "--no-progress"]
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - t0 < 60
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"error: Rank {rank} of WORLD_SIZE=2 waited 2 s" in lines[0] and "did not join" in lines[0]
    assert "HOPFIELD_LAB_DIST_TIMEOUT" in lines[0]


def test_rendezvous_timeout_setting(monkeypatch):
    monkeypatch.delenv(D.TIMEOUT_ENV, raising=False)
    assert D.rendezvous_timeout() == D.RENDEZVOUS_TIMEOUT_S < 30 * 60
    monkeypatch.setenv(D.TIMEOUT_ENV, "12.5")
    assert D.rendezvous_timeout() == 12.5
    monkeypatch.setenv(D.TIMEOUT_ENV, "soon")
    with pytest.raises(RuntimeError, match="positive number of seconds"):
        D.rendezvous_timeout()


@pytest.mark.parametrize("n", [1, 7, 64, 101])
@pytest.mark.parametrize("W", [1, 2, 3, 4])
def test_shards_are_equal_disjoint_and_rebuild_the_global_batches(n, W):
    if n < W:
        return
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    parts = [D.shard(perm, D.DistInfo(rank=r, world_size=W)) for r in range(W)]
    m = n // W
    assert all(len(p) == m for p in parts)  # same number of samples (and batches) on every rank
    together = torch.cat(parts)
    assert len(set(together.tolist())) == W * m  # disjoint
    assert sorted(together.tolist()) == sorted(perm[: W * m].tolist())  # only the remainder dropped
    b = 2  # per-rank batch: the k-th global batch is the k-th single-process batch of size W*b
    for k in range(m // b):
        glob = torch.cat([p[k * b:(k + 1) * b] for p in parts])
        assert sorted(glob.tolist()) == sorted(perm[k * W * b:(k + 1) * W * b].tolist())


# ---------------------------------------------------------------------------------------------
# the streaming loader
# ---------------------------------------------------------------------------------------------
def _u8(n=24, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.arange(n) % 5


def test_streaming_loader_matches_the_device_loader_order():
    from hopfield_lab.data import DeviceLoader

    x, _ = _u8()
    y = torch.arange(24)  # labels name the samples
    s = StreamingLoader(TransformDataset(x, y), 5, train=True, seed=4, num_workers=0)
    d = DeviceLoader(x, y, 5, train=True, seed=4)
    assert len(s) == len(d) == 4 and s.num_samples == d.num_samples == 24
    for e in (0, 1, 7):
        s.set_epoch(e)
        d.set_epoch(e)
        a = [(xb, yb) for xb, yb in s]
        b = [(xb, yb) for xb, yb in d]
        for (xs, ys), (xd, yd) in zip(a, b):
            assert torch.equal(ys, yd) and torch.equal(xs, x[ys])
            assert xs.shape == (5, 3, 6, 6) and xs.dtype == torch.uint8
    s.set_epoch(0)
    first = torch.cat([yb for _, yb in s])
    s.set_epoch(1)
    assert not torch.equal(first, torch.cat([yb for _, yb in s]))  # reshuffled each epoch
    assert s.state_dict() == {"epoch": 1, "seed": 4}


def test_streaming_eval_shards_cover_every_sample_once():
    x, y = _u8(n=23)
    seen = []
    for r in range(3):
        info = D.DistInfo(rank=r, world_size=3)
        ld = StreamingLoader(TransformDataset(x, torch.arange(23)), 4, info=info, train=False, num_workers=0)
        seen += torch.cat([yb for _, yb in ld]).tolist()
    assert sorted(seen) == list(range(23))


def _noisy(u8: torch.Tensor) -> torch.Tensor:  # a random "augmentation" drawn from torch's global RNG
    return u8.float() / 255 + torch.rand(()) + 0.01 * torch.randn(u8.shape)


def test_per_sample_seeds_make_augmentation_independent_of_workers_and_world_size():
    x, y = _u8(n=16)
    ds = TransformDataset(x, torch.arange(16), transform=_noisy)

    def images(loader):
        loader.set_epoch(3)
        return {int(i): img for xb, yb in loader for img, i in zip(xb, yb)}

    one = images(StreamingLoader(ds, 4, train=True, seed=1, num_workers=0))
    two_workers = images(StreamingLoader(ds, 4, train=True, seed=1, num_workers=2, persistent_workers=False))
    ranks = {}
    for r in range(2):
        ranks.update(images(StreamingLoader(ds, 2, info=D.DistInfo(rank=r, world_size=2), train=True, seed=1,
                                            num_workers=0)))
    assert one.keys() == two_workers.keys() == ranks.keys() == set(range(16))
    for i in one:
        assert torch.equal(one[i], two_workers[i]) and torch.equal(one[i], ranks[i])
    again = images(StreamingLoader(ds, 4, train=True, seed=1, num_workers=0))
    assert all(torch.equal(one[i], again[i]) for i in one)  # a resumed run sees the same images
    torch.manual_seed(123)  # the training process's own random stream is left alone
    before = torch.rand(3)
    torch.manual_seed(123)
    images(StreamingLoader(ds, 4, train=True, seed=1, num_workers=0))
    assert torch.equal(torch.rand(3), before)


def test_streaming_batch_transform_and_errors():
    x, y = _u8(n=8)
    ds = TransformDataset(x, y, transform=lambda u: u.float())
    seen = []
    ld = StreamingLoader(ds, 4, train=True, num_workers=0, batch_transform=lambda a, b: (a * 0, b + 100))
    for xb, yb in ld:
        seen.append(yb)
        assert (xb == 0).all()
    assert (torch.cat(seen) >= 100).all()
    with pytest.raises(ValueError, match="exceeds"):
        StreamingLoader(ds, 9, train=True, num_workers=0)
    with pytest.raises(ValueError, match="labels"):
        TransformDataset(x)


# ---------------------------------------------------------------------------------------------
# two gloo processes on CPU: DDP step == single step, rank-0-only files, exact resume
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_model():
    from hopfield_lab.mixer import create_model

    torch.manual_seed(0)
    m = create_model("asymmixer_cifar_tiny", img_size=16, patch_size=4, embed_dim=16, num_blocks=2,
                     num_classes=5, lam=1e-2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move off the zero head / zero V so every gradient is non-trivial
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m


def _step_batch():
    g = torch.Generator().manual_seed(2)
    return torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 5, (8,), generator=g)


def _cfg(out_dir, **kw):
    # Augmentation on: DeviceLoader draws an epoch's crops/flips per sample id, so the augmented
    # global batches are the same at every world size.
    cfg = dict(model="asymmixer_cifar_tiny", lam=1e-2, dataset="synthetic",
               dataset_options=dict(n=64, n_test=24, size=16, num_classes=5),
               model_overrides=dict(patch_size=4, embed_dim=16, num_blocks=2),
               epochs=2, batch_size=16, lr=3e-3, schedule="cosine", warmup_epochs=0.5,
               crop_padding=2, flip=True, device="cpu", progress=False, out_dir=str(out_dir))
    cfg.update(kw)
    return cfg


def _worker(rank: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from hopfield_lab import checkpoint as C
    from hopfield_lab import train as T

    tmp = Path(tmp)
    info = D.init_distributed(device="cpu")
    out = {"info": (info.rank, info.world_size, info.enabled, info.is_main)}
    try:
        # 1. one DDP step == one single-process step (T1's train_step), SGD then AdamW
        x, y = _step_batch()
        mine = D.shard(torch.arange(8), info)
        for name, make_opt in (("sgd", lambda p: torch.optim.SGD(p, lr=0.1)),
                               ("adamw", lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05))):
            ref = _tiny_model()
            ref_out = T.train_step(ref, x, y, make_opt(ref.parameters()), label_smoothing=0.1)
            ddp = D.wrap_model(_tiny_model(), info)
            o = T.train_step(ddp, x[mine], y[mine], make_opt(ddp.parameters()), label_smoothing=0.1)
            loss = D.all_reduce_(o.loss.clone(), info, "mean")
            correct = D.all_reduce_(o.correct.clone(), info)
            base = D.unwrap(ddp)
            out[name] = {
                "grad": max((a.grad - b.grad).abs().max().item() for a, b in zip(base.parameters(), ref.parameters())),
                "grad_scale": max(b.grad.abs().max().item() for b in ref.parameters()),
                "param": max((a - b).abs().max().item() for a, b in zip(base.parameters(), ref.parameters())),
                "loss": abs(loss.item() - ref_out.loss.item()),
                "penalty": abs(o.penalty.item() - ref_out.penalty.item()) + (ref_out.penalty.item() == 0),
                "correct": (int(correct), int(ref_out.correct)),
            }
        # 2. trainer runs: count who writes files
        writes = {"ckpt": 0, "json": 0}
        save, dump = C.atomic_save, C.atomic_write_json

        def counting_save(obj, path):
            writes["ckpt"] += 1
            return save(obj, path)

        def counting_json(obj, path):
            writes["json"] += 1
            return dump(obj, path)

        C.atomic_save, C.atomic_write_json = counting_save, counting_json
        out["full"] = T.train(_cfg(tmp / "ddp_full"))
        out["writes_full"] = dict(writes)
        T.train(_cfg(tmp / "ddp_resume", stop_after_epochs=1))
        out["resumed"] = T.train(_cfg(tmp / "ddp_resume"))
        out["from_ws1"] = T.train(_cfg(tmp / "from_ws1"))  # checkpoint written by one process
        T.train(_cfg(tmp / "ddp_half", stop_after_epochs=1))  # resumed by one process afterwards
        out["writes"] = dict(writes)
        # 5. stochastic depth: each rank draws its own masks, the parameters stay identical
        from hopfield_lab.mixer import DropPath, create_model

        masks = []

        def record(mod, inp, outp):
            if mod.training and mod.p > 0:
                assert (inp[0].flatten(1) != 0).any(1).all()  # a zero output row means a dropped branch
                masks.append((outp.flatten(1) != 0).any(1))

        torch.manual_seed(0)
        m = create_model("paramixer_cifar_tiny", img_size=16, patch_size=4, embed_dim=16, num_blocks=2,
                         num_classes=5, drop_path_rate=0.5)
        for mod in m.modules():
            if isinstance(mod, DropPath):
                mod.register_forward_hook(record)
        T.train(dict(_cfg(None, model="paramixer_cifar_tiny", lam=None, epochs=1, symmetry_metrics=False), out_dir=None),
                model=m)
        out["drop_masks"] = torch.stack(masks)
        out["drop_params"] = {k: v.detach().clone() for k, v in m.state_dict().items()}
        D.barrier(info)
    finally:
        D.cleanup(info)
    torch.save(out, tmp / f"rank{rank}.pt")


def _params(path) -> dict:
    from hopfield_lab.train import load_checkpoint

    return load_checkpoint(Path(path) / "checkpoint.pt")["model"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _curve(result, key="train_loss"):
    return [r[key] for r in result.history]


def test_two_gloo_processes_match_one_process_and_resume_across_world_sizes(tmp_path, monkeypatch):
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    from hopfield_lab import train as T

    _clear_dist_env(monkeypatch)
    torch.set_num_threads(1)
    # world size 1: the reference run, and a checkpoint after epoch 1 for the DDP ranks to resume
    single = T.train(_cfg(tmp_path / "single_full"))
    T.train(_cfg(tmp_path / "from_ws1", stop_after_epochs=1))

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    outs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert [o["info"] for o in outs] == [(0, 2, True, True), (1, 2, True, False)]

    # 1. one DDP step with global batch 8 == one single-process step with batch 8
    for o in outs:
        for name in ("sgd", "adamw"):
            s = o[name]
            assert s["grad"] <= 1e-6 * max(1.0, s["grad_scale"]), (name, s)
            assert s["param"] <= 1e-6, (name, s)
            assert s["loss"] <= 1e-6 and s["penalty"] <= 1e-7, (name, s)
            assert s["correct"][0] == s["correct"][1]

    # 2. files: only rank 0 writes; one checkpoint per epoch, one result per finished run
    r0, r1 = outs[0]["writes"], outs[1]["writes"]
    assert outs[0]["writes_full"] == {"ckpt": 2, "json": 1}
    assert r0 == {"ckpt": 2 + (1 + 1) + 1 + 1, "json": 3} and r1 == {"ckpt": 0, "json": 0}
    assert sorted(p.name for p in (tmp_path / "ddp_full").iterdir()) == ["checkpoint.pt", "result.json"]

    # 3. a DDP run stopped after epoch 1 and resumed == the uninterrupted DDP run (bit for bit)
    full, resumed = outs[0]["full"], outs[0]["resumed"]
    assert _curve(resumed) == _curve(full) and _curve(resumed, "test_acc") == _curve(full, "test_acc")
    assert _max_diff(_params(tmp_path / "ddp_resume"), _params(tmp_path / "ddp_full")) == 0.0
    assert full.world_size == 2 and full.finished and outs[1]["full"].test_acc == full.test_acc

    # 5. drop-path masks differ between ranks (rank > 0 reseeds after DDP's broadcast); weights agree
    m0, m1 = outs[0]["drop_masks"], outs[1]["drop_masks"]
    assert m0.shape == m1.shape == (4 * 2 * 2, 8)  # 4 steps x 2 blocks x 2 branches, 8 samples per rank
    assert not torch.equal(m0, m1)
    assert 0.3 < m0.float().mean().item() < 0.7 and 0.3 < m1.float().mean().item() < 0.7  # keep prob 0.5
    assert _max_diff(outs[0]["drop_params"], outs[1]["drop_params"]) == 0.0

    # 4. world size does not change the run: DDP(2) ~ single process, and resuming across sizes
    T.train(_cfg(tmp_path / "ddp_half"))  # written by 2 ranks after epoch 1, resumed here by one
    ref = _params(tmp_path / "single_full")
    for name in ("ddp_full", "from_ws1", "ddp_half"):
        assert _max_diff(_params(tmp_path / name), ref) < 1e-5, name  # measured: ~2e-7
    for res in (full, outs[0]["from_ws1"]):
        assert all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(_curve(res), _curve(single)))
