"""The GPU suite: everything a short GPU session should produce, in one command, within a budget.

    bash benchmarks/gpu_suite.sh DATA OUT [--budget 540] [--workers 4] [--bundle FILE]
    bash benchmarks/gpu_suite.sh --tiny synthetic OUT      # the same code paths on CPU, ~1 minute

DATA is the CIFAR-10 archive (ImageFolder layout, ``.tar.gz``), e.g. a copy of
``shared/data/cifar10-jpeg.tar.gz`` in the git-ignored ``.gpu/`` folder that travels with the
run; with ``--tiny`` also ``synthetic`` or ``digits``. What it does, most important first:

1. **Throughput** (GPU to itself): ours against the official code (``--official``, default
   ``.official/paramixer`` when present) for every family, eager and ``torch.compile``,
   alternating rounds (``benchmarks/bench_mixer.py``; every variant in its own process, all
   compiling at once) -> ``OUT/throughput/<device>.json``; and a count of the host
   synchronisations of a training step (``OUT/throughput/host_syncs.json``). Meanwhile the
   archive is decoded once into the cache that the runs share.
2. **The study** of the 30-epoch reference set-up (``results/cifar10_reference/README.md``): vanilla, ParaMixer, SymMixer, AsymMixer λ = 0 with
   seed 0, then AsymMixer at λ ∈ {1e-5, 1e-4, 1e-3, 1e-2, 1e-1} (seed 0), then the four models
   with seeds 1 and 2 -> ``OUT/cifar10/<run>.json`` (the sweep's file names). Several runs share
   the GPU at once (``--workers``); each run is ``python -m hopfield_lab train`` writing its
   JSON the moment it finishes; a run that cannot finish inside the budget is not started, one
   that is still going at the deadline is stopped (its checkpoint stays, so rerunning the same
   command resumes it).
3. **If time allows, the rest of the seeded study of spontaneous symmetry breaking** (the plan of
   ``benchmarks/symmetry_study.sh gpu``, book chapter 8) in the same folder: the vanilla Mixer,
   ParaMixer and AsymMixer λ = 0 started from tied weights (``init="tied"``, W2 = W1ᵀ, V = 0)
   with seeds 0-2, ParaMixer and SymMixer with n_iter = 2 (seeds 0-2), AsymMixer λ ∈ {1e-4, 1e-2}
   with seeds 1-2, and the four models with seeds 3-4; then two short epochs of the 224-px
   ``--recipe paper`` timed (``OUT/extras/paper224_*.json``: img/s and what 300 epochs would
   cost). The whole plan does not fit one 9-minute session: rerun the same command (finished runs
   are skipped, a stopped one resumes from its checkpoint) until the summary says "all done".

Then a summary (printed and ``OUT/summary.json``): the throughput table with the goals (2x the
official eager img/s, 1.2x the official compiled), per configuration the seeds' mean with its
95 % Student-t interval (:func:`hopfield_lab.results.summarize_runs`, the grouping the book uses
too), the cosine of the tied-start runs, and what was skipped. ``OUT/environment.json`` records
hardware, driver, torch, git commit, settings and times; every result JSON records its own. ``--bundle FILE`` keeps a ``.tar.gz`` of OUT
(without checkpoints and caches) up to date after every finished piece of work, for machines
that return only a few files.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import queue as queue_mod
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the study's folder: committed as hopfield_lab/results/<STUDY_DIR>/, beside the 12-epoch cifar10/
#: (chapter 8 reads every cifar10*/ folder and keeps studies of different lengths apart)
STUDY_DIR = "cifar10_30ep"
sys.path.insert(0, str(ROOT))
from hopfield_lab import mixer  # noqa: E402

FAMILIES = tuple(mixer.FAMILIES)  # the paper's four families, in the registry's order
LAMS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
#: the seeded study of spontaneous symmetry breaking (benchmarks/symmetry_study.sh): started from
#: tied weights, the AsymMixer's λ with seeds, n_iter 2
TIED_FAMILIES = ("vanillamixer", "paramixer", "asymmixer")
SEEDED_LAMS = (1e-4, 1e-2)
NI2_FAMILIES = ("paramixer", "symmixer")
#: the training set-up of the 30-epoch reference (results/cifar10_reference/README.md), as TrainConfig fields
STUDY = dict(batch_size=512, lr=1e-3, schedule="onecycle", weight_decay=0.05, label_smoothing=0.1)
#: issue 15's goals: our default training path (compiled on CUDA, eager on CPU) over the official code's
_MARK = "@@gpu_suite "  # a worker's status lines start with this

GOALS = {"cuda": ("ours[bmm]+compile:default", {"vs_official_eager": 2.0, "vs_official_compiled": 1.2}),
         "cpu": ("ours[bmm]", {"vs_official_eager": 1.2})}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What ``--tiny`` changes; everything else runs the same code."""

    device: str
    preset: str
    epochs: int
    train: dict                 # extra TrainConfig fields of every run
    bench: dict                 # bench_mixer.measure arguments
    bench_families: tuple
    workers: int
    budget_s: float
    paper: dict                 # TrainConfig fields of the 224-px timing
    paper_min_s: float          # time it needs (start-up, loader workers, two short epochs)
    seeds: tuple = (0, 1, 2, 3, 4)   # seeds of the four main configurations (the first three: the reference study)
    side_seeds: tuple = (0, 1, 2)    # seeds of the tied-start, n_iter 2 and λ > 0 configurations


REAL = Sizes(device="cuda", preset="cifar_small", epochs=30, train=dict(STUDY),
             bench=dict(batch=512, steps=20, warmup=5, rounds=2), bench_families=FAMILIES,
             workers=4, budget_s=540.0,
             paper=dict(epochs=2, train_subset=8192, test_subset=1024, compile=False), paper_min_s=90.0)
TINY = Sizes(device="cpu", preset="cifar_tiny", epochs=2,
             train=dict(STUDY, batch_size=32, train_subset=256, test_subset=64),
             bench=dict(batch=16, steps=2, warmup=1, rounds=1), bench_families=("paramixer",),
             workers=2, budget_s=600.0,
             paper=dict(epochs=2, train_subset=64, test_subset=32, batch_size=16, img_size=32,
                        model_overrides={"embed_dim": 32, "num_blocks": 1}, workers=0, compile=False),
             paper_min_s=0.0, seeds=(0, 1, 2), side_seeds=(0, 1))


# ---------------------------------------------------------------------------------------------
# plan
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    """One training run: its name (file stem), folder, TrainConfig fields and relative cost."""

    name: str
    folder: str                 # STUDY_DIR or "extras"
    fields: dict
    cost: float = 1.0
    exclusive: bool = False     # runs alone on the device, after the others (timing)
    min_s: float = 0.0          # start only with at least this much time left
    status: str = "pending"
    wall_s: float | None = None
    note: str = ""


def plan(sizes: Sizes, data: str, extras: bool = True) -> list[Run]:
    """The runs in order of importance (see the module docstring); every run's name is the
    sweep's (:func:`hopfield_lab.results.run_name`), so ``python -m hopfield_lab sweep`` and this
    suite skip each other's finished runs."""
    from hopfield_lab.results import run_name

    def run(family, seed, lam=None, n_iter=None, init=None, cost=1.0):
        model = f"{family}_{sizes.preset}"
        fields = dict(sizes.train, model=model, seed=seed, dataset=data, epochs=sizes.epochs)
        if family == "asymmixer":
            fields["lam"] = 0.0 if lam is None else lam
        over = {k: v for k, v in (("n_iter", n_iter), ("init", init)) if v is not None}
        if over:
            fields["model_overrides"] = over
        return Run(run_name(model, fields.get("lam"), seed, n_iter, init), STUDY_DIR, fields, cost)

    main, side = sizes.seeds, sizes.side_seeds
    runs = [run(f, main[0]) for f in FAMILIES]                      # the 30-epoch reference study
    runs += [run("asymmixer", main[0], lam) for lam in LAMS]
    runs += [run(f, s) for s in main[1:3] for f in FAMILIES]
    if extras:                                                       # the rest of the seeded study
        runs += [run(f, s, init="tied") for s in side for f in TIED_FAMILIES]
        runs += [run(f, s, n_iter=2, cost=2.0) for s in side for f in NI2_FAMILIES]
        runs += [run("asymmixer", s, lam) for s in side if s != main[0] for lam in SEEDED_LAMS]
        runs += [run(f, s) for s in main[3:] for f in FAMILIES]
        paper = dict(sizes.paper)
        over = paper.pop("model_overrides", {})
        fields = dict(model="paramixer", recipe="paper", dataset=data, seed=0, **paper)
        if over:
            fields["model_overrides"] = over
        runs.append(Run("paper224_paramixer_timing", "extras", fields, cost=0.0, exclusive=True,
                        min_s=sizes.paper_min_s))
    return runs


def cli_args(fields: dict) -> list[str]:
    """``python -m hopfield_lab train`` options for TrainConfig ``fields`` (flags that exist today)."""
    args = []
    for k, v in fields.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            args.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, dict):
            args += [flag] + [f"{a}={b!r}" for a, b in v.items()]
        elif v is not None:
            args += [flag, repr(v) if isinstance(v, float) else str(v)]
    return args


# ---------------------------------------------------------------------------------------------
# host synchronisations of a training step
# ---------------------------------------------------------------------------------------------
def host_sync_check(device: str, preset: str, batch: int, steps: int = 6) -> dict:
    """Count the synchronising CUDA calls of ``steps`` training steps of ours (ParaMixer and
    AsymMixer λ = 1e-2, eager), batches drawn from the device loader inside the checked region
    (``torch.cuda.set_sync_debug_mode``). CPU: nothing to count (reported as such)."""
    import warnings

    import torch

    from hopfield_lab import perf
    from hopfield_lab.data import Augment, DeviceLoader
    from hopfield_lab.mixer import create_model
    from hopfield_lab.train import TrainConfig, make_optimizer, train_step

    dev = torch.device(device)
    out = {"device": perf.describe_device(dev), "steps": steps, "batch_size": batch, "models": {}}
    if dev.type != "cuda":
        out["note"] = "not applicable on CPU (set_sync_debug_mode watches CUDA calls only)"
        return out
    for name, kw in ((f"paramixer_{preset}", {}), (f"asymmixer_{preset}", {"lam": 1e-2})):
        torch.manual_seed(0)
        model = create_model(name, **kw).to(dev)
        opt = make_optimizer(model, TrainConfig(model=name), dev)
        n = batch * (steps + 2)
        g = torch.Generator().manual_seed(0)
        loader = DeviceLoader(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                              torch.randint(0, 10, (n,), generator=g), batch, device=dev, train=True,
                              augment=Augment(crop_padding=4, flip=True))
        it = iter(loader)
        x, y = next(it)  # the epoch's set-up (shuffle, augmentation draws) happens here
        train_step(model, x, y, opt, label_smoothing=0.1, amp_dtype=perf.amp_dtype(dev))  # warm-up
        x, y = next(it)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for i in range(steps):
                    train_step(model, x, y, opt, label_smoothing=0.1, amp_dtype=perf.amp_dtype(dev))
                    if i + 1 < steps:
                        x, y = next(it)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        msgs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
        out["models"][name] = {"syncs": len(msgs), "syncs_per_step": len(msgs) / steps,
                               "messages": sorted(set(msgs))[:10]}
    return out


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------
class Suite:
    def __init__(self, args, sizes: Sizes):
        self.args, self.sizes = args, sizes
        self.t0 = time.time()
        self.deadline = self.t0 + (args.budget if args.budget is not None else sizes.budget_s)
        self.out = Path(args.out).resolve()
        for sub in ("throughput", STUDY_DIR, "extras", "logs"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.cache = Path(args.cache).resolve() if args.cache else self.out / ".cache"
        self.py = sys.executable
        self.env = dict(os.environ, HOPFIELD_LAB_CACHE=str(self.cache), PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        if args.tiny:
            self.env.setdefault("HOPFIELD_LAB_COMPILE_BACKEND", "eager")  # dynamo without code generation
        self.summary: dict = {"phases": {}}
        self.log_file = open(self.out / "suite.log", "a")

    # -- utilities --------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.time()

    def log(self, msg: str) -> None:
        line = f"[{time.time() - self.t0:6.0f} s] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def bundle(self) -> None:
        if not self.args.bundle:
            return
        target = Path(self.args.bundle)
        tmp = target.with_name(f".{target.name}.tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(self.out.rglob("*")):
                rel = path.relative_to(self.out)
                if path.is_file() and rel.parts[0] not in ("checkpoints", ".cache") and ".tmp" not in path.name:
                    tar.add(path, arcname=str(Path(self.out.name) / rel))
        os.replace(tmp, target)

    def spawn(self, cmd: list[str], log_name: str, env: dict | None = None) -> subprocess.Popen:
        fh = open(self.out / "logs" / f"{log_name}.log", "w")
        return subprocess.Popen(cmd, cwd=ROOT, env=dict(self.env, **(env or {})), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def wait(self, proc: subprocess.Popen, timeout: float) -> bool:
        """Wait up to ``timeout`` s (and never past the deadline); stop it then. True if it ended by itself."""
        try:
            proc.wait(timeout=max(1.0, min(timeout, self.left())))
            return True
        except subprocess.TimeoutExpired:
            self.stop(proc)
            return False

    # -- set-up -----------------------------------------------------------------------------
    def environment(self) -> None:
        import torch

        from hopfield_lab.runtime import provenance

        prov = provenance()  # the host's side; the GPU's from nvidia-smi
        smi = shutil.which("nvidia-smi")
        gpu = None
        if smi:
            q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                "--format=csv,noheader"], capture_output=True, text=True)
            gpu = q.stdout.strip() or q.stderr.strip()
        env = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "tiny": self.args.tiny,
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.t0)),
               "budget_s": self.deadline - self.t0, "git_commit": prov["git_commit"], "nvidia_smi": gpu,
               "torch_version": prov["torch_version"], "cuda": torch.version.cuda,
               "python_version": prov["python_version"], "cpu": prov["cpu"],
               "cpu_cores": os.cpu_count(), "data": self.args.data, "sizes": dataclasses.asdict(self.sizes),
               "workers": self.workers, "official": str(self.official) if self.official else None}
        self.summary["environment"] = env
        (self.out / "environment.json").write_text(json.dumps(env, indent=1) + "\n")
        self.log(f"{gpu or 'no GPU'} | torch {torch.__version__} | commit {env['git_commit']} | "
                 f"budget {env['budget_s']:.0f} s | {self.workers} concurrent runs")

    # -- phase 1 -----------------------------------------------------------------------------
    def throughput(self) -> None:
        s = self.sizes
        modes = [m for m in self.args.compile_modes.split(",") if m]
        args = ["--device", s.device, "--preset", s.preset, "--models", ",".join(s.bench_families),
                "--batch", str(s.bench["batch"]), "--steps", str(s.bench["steps"]),
                "--warmup", str(s.bench["warmup"]), "--rounds", str(s.bench["rounds"]),
                "--token-mixing", "bmm,transpose",
                "--json", str(self.out / "throughput" / "bench.json")]
        if modes:
            args += ["--compile", ",".join(modes)]
        if s.device == "cuda":
            args += ["--compile-threads", str(max(2, (os.cpu_count() or 4) // 8))]
        if self.official:
            args += ["--official", str(self.official)]
            if modes:
                args += ["--compile-official", ",".join(modes)]
            if self.args.timm_path:
                args += ["--timm-path", str(self.args.timm_path)]
        self.log("phase 1: throughput, ours vs official, eager and compiled"
                 + ("" if self.official else " (no official checkout: ours only)"))
        proc = self.spawn([self.py, str(ROOT / "benchmarks" / "bench_mixer.py")] + args, "throughput")
        ok = self.wait(proc, self.args.throughput_timeout) and proc.returncode == 0
        bench = self.out / "throughput" / "bench.json"
        records = json.loads(bench.read_text()) if bench.is_file() else []  # after each round
        phase = {"ok": ok, "records": len(records), "complete": ok}
        if records:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            import bench_mixer

            target = self.out / "throughput" / f"{bench_mixer.device_slug(records)}.json"
            bench.replace(target)
            phase.update(file=str(target.relative_to(self.out)), table=bench_mixer.table(records),
                         ratios=bench_mixer.ratios(records))
            self.log("\n" + phase["table"])
            self.throughput_records = records
        else:
            self.log(f"phase 1 failed or ran out of time: see {self.out / 'logs' / 'throughput.log'}")
        self.summary["phases"]["throughput"] = phase
        self.bundle()

    def sync_check(self) -> None:
        s = self.sizes
        code = ("import json,sys; sys.path.insert(0, 'benchmarks'); import gpu_suite; "
                f"print(json.dumps(gpu_suite.host_sync_check({s.device!r}, {s.preset!r}, {s.bench['batch']})))")
        proc = self.spawn([self.py, "-c", code], "host_syncs")
        ok = self.wait(proc, 120) and proc.returncode == 0
        text = (self.out / "logs" / "host_syncs.log").read_text().strip().splitlines()
        res = json.loads(text[-1]) if ok and text else {"error": "see logs/host_syncs.log"}
        (self.out / "throughput" / "host_syncs.json").write_text(json.dumps(res, indent=1) + "\n")
        self.summary["phases"]["host_syncs"] = res
        self.log(f"host syncs per training step: "
                 + (", ".join(f"{k} {v['syncs_per_step']:g}" for k, v in res.get("models", {}).items())
                    or res.get("note", res.get("error", "?"))))

    def decode_data(self) -> subprocess.Popen | None:
        """Decode the archive once into the shared cache, in the background."""
        if self.args.data in ("synthetic", "digits"):
            return None
        code = ("from hopfield_lab import data as hd; import sys; "
                "[hd.load_dataset(sys.argv[1], s) for s in ('train', 'test')]")
        return self.spawn([self.py, "-c", code, self.args.data], "decode")

    # -- phase 2 and 3 -----------------------------------------------------------------------
    def study_compile(self) -> tuple[bool, str | None]:
        """``(compile?, mode)`` of the study's runs: the fastest compile mode phase 1 measured for our
        ParaMixer if it beat eager by 5 %, else eager; with nothing measured, the trainer's default
        (compile on CUDA)."""
        if self.sizes.device != "cuda":
            return False, None
        ours = [r for r in self.throughput_records if r["impl"] == "ours" and r["family"] == "paramixer"
                and r.get("token_mixing") == "bmm"]
        eager = next((r for r in ours if r["compile_mode"] is None), None)
        compiled = [r for r in ours if r["compile_mode"] and r.get("compiled") == "compiled"]
        if eager is None:
            return (not self.throughput_records), None
        best = max(compiled, key=lambda r: r["img_per_s"], default=None)
        if best is not None and best["img_per_s"] > 1.05 * eager["img_per_s"]:
            return True, best["compile_mode"]
        return False, None

    def estimate(self, run: Run) -> float | None:
        """Seconds a run of this cost should take: from finished runs, else from phase 1's img/s."""
        done = [r.wall_s / r.cost for r in self.runs if r.status == "done" and r.cost > 0 and r.wall_s]
        if done:
            return run.cost * statistics.median(done)
        if self.throughput_records:
            best = max((r["img_per_s"] for r in self.throughput_records if r["impl"] == "ours"
                        and r["family"] == "paramixer"), default=None)
            if best:
                n_train = run.fields.get("train_subset") or 50_000
                images = run.fields.get("epochs", self.sizes.epochs) * n_train * 1.2  # plus evaluation
                return run.cost * (images / best * max(1.0, self.workers / 2) + 30)
        return None

    def fields(self, run: Run) -> dict:
        """The run's TrainConfig fields with this suite's folders, device and compile choice."""
        fields = dict(run.fields, device=self.sizes.device, progress=False, keep_checkpoint=False,
                      out_dir=str(self.out / "checkpoints" / run.name),
                      result_path=str(self.out / run.folder / f"{run.name}.json"))
        fields.setdefault("compile", self.compile)
        return fields

    def _start(self, run: Run) -> bool:
        """Check that ``run`` is still to do and fits in the time left (else mark it)."""
        if (self.out / run.folder / f"{run.name}.json").is_file():
            run.status, run.note = "done", "done before (a rerun skips it)"
            return False
        est = self.estimate(run)
        need = max(run.min_s, est or 0.0, 5.0)
        if need > self.left():
            run.status = "skipped"
            run.note = f"needs ~{need:.0f} s, {max(0.0, self.left()):.0f} s left; a rerun with more time does it"
            self.log(f"skipped: {run.name} ({run.note})")
            return False
        self.log(f"start: {run.name}" + (f" (~{est:.0f} s)" if est else ""))
        return True

    def _finished(self, run: Run, ok: bool, wall_s: float, error: str | None = None) -> None:
        run.wall_s = wall_s
        res = self.out / run.folder / f"{run.name}.json"
        run.status = "done" if ok and res.is_file() else "failed"
        if run.status == "failed":
            run.note = error or "see logs/"
        acc = json.loads(res.read_text()).get("test_acc") if run.status == "done" else None
        self.log(f"{run.status}: {run.name} in {wall_s:.0f} s"
                 + (f", test_acc {acc:.4f}" if acc is not None else f" ({run.note})"))
        self.bundle()

    def pool(self, runs: list[Run], workers: int) -> None:
        """Run ``runs`` in order on ``workers`` long-lived worker processes sharing the device (each
        trains one run at a time with :func:`hopfield_lab.train.train`, so start-up, CUDA
        initialisation and compilation are paid once per worker, not once per run)."""
        queue = [r for r in runs if r.status == "pending"]
        env = ({"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // workers))} if self.sizes.device == "cpu"
               else {"TORCHINDUCTOR_COMPILE_THREADS": str(max(1, (os.cpu_count() or 4) // workers))})
        inbox: "queue_mod.Queue" = queue_mod.Queue()
        slots: dict[int, dict] = {}

        def start_worker(i: int) -> None:
            proc = subprocess.Popen([self.py, str(ROOT / "benchmarks" / "gpu_suite.py"), "--worker"], cwd=ROOT,
                                    env=dict(self.env, **env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
            log = open(self.out / "logs" / f"worker{i}.log", "a")

            def read():
                for line in proc.stdout:
                    if line.startswith(_MARK):
                        inbox.put((i, proc, json.loads(line[len(_MARK):])))
                    else:
                        log.write(line)
                        log.flush()
                inbox.put((i, proc, None))  # the worker ended

            threading.Thread(target=read, daemon=True).start()
            slots[i] = {"proc": proc, "run": None, "start": None}

        for i in range(min(workers, len(queue))):
            start_worker(i)
        try:
            while True:
                for i, slot in slots.items():
                    while slot["run"] is None and slot["proc"].poll() is None and queue:
                        run = queue.pop(0)
                        if self._start(run):
                            slot["run"], slot["start"] = run, time.time()
                            run.status = "running"
                            slot["proc"].stdin.write(json.dumps({"name": run.name,
                                                                 "fields": self.fields(run)}) + "\n")
                            slot["proc"].stdin.flush()
                if not any(slot["run"] for slot in slots.values()):
                    break
                if self.left() <= 0:
                    for slot in slots.values():
                        if slot["run"] is not None:
                            run = slot["run"]
                            run.status, run.wall_s = "stopped", time.time() - slot["start"]
                            run.note = "stopped at the deadline; its checkpoint stays: a rerun resumes it"
                            self.log(f"stopped: {run.name} (deadline)")
                            slot["run"] = None
                    break
                try:
                    i, proc, msg = inbox.get(timeout=min(1.0, max(0.05, self.left())))
                except queue_mod.Empty:
                    continue
                slot = slots[i]
                if slot["proc"] is not proc:
                    continue  # a message of a replaced worker
                run, slot["run"] = slot["run"], None
                if msg is None:  # the worker died (e.g. out of memory): its run failed, start another
                    if run is not None:
                        self._finished(run, False, time.time() - slot["start"],
                                       f"worker exited with {proc.wait()}: see logs/worker{i}.log")
                    if queue and self.left() > 30:
                        start_worker(i)
                    continue
                if run is not None:
                    self._finished(run, msg.get("ok", False), time.time() - slot["start"], msg.get("error"))
        finally:
            for slot in slots.values():
                try:
                    slot["proc"].stdin.close()
                except OSError:
                    pass
            for slot in slots.values():
                if slot["run"] is not None or self.left() <= 0:
                    self.stop(slot["proc"])
                else:
                    try:
                        slot["proc"].wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        self.stop(slot["proc"])
        for run in queue:
            if run.status == "pending":
                run.status = "skipped"
                run.note = "no time left" if self.left() <= 5 else "not started: every worker exited (see logs/)"

    def alone(self, run: Run) -> None:
        """One run through ``python -m hopfield_lab train``, with the device to itself."""
        if not self._start(run):
            return
        start = time.time()
        proc = self.spawn([self.py, "-m", "hopfield_lab", "train"] + cli_args(self.fields(run)), run.name)
        if not self.wait(proc, self.left()):
            run.status, run.wall_s, run.note = "stopped", time.time() - start, "stopped at the deadline"
            self.log(f"stopped: {run.name} (deadline)")
            return
        self._finished(run, proc.returncode == 0, time.time() - start,
                       f"exit {proc.returncode}: see logs/{run.name}.log")

    # -- summary ----------------------------------------------------------------------------
    def study_groups(self) -> list[dict]:
        """The finished runs of the study folder, grouped by configuration with
        :func:`hopfield_lab.results.summarize_runs` (the book's grouping)."""
        from hopfield_lab.results import load_result, summarize_runs

        done = [load_result(p) for run in self.runs if run.folder == STUDY_DIR
                for p in [self.out / run.folder / f"{run.name}.json"] if p.is_file()]
        return summarize_runs(r for r in done if r.finished)

    def study_summary(self, groups: list[dict]) -> dict:
        """Test accuracy per configuration: n, mean, sample sd, 95 % t interval of the mean, seeds, values."""
        from hopfield_lab.results import group_name

        out = {}
        for g in groups:
            iv = g["interval"]
            out[group_name(g)] = {"n": g["n"], "mean": g["mean"], "sd": None if g["n"] < 2 else g["sd"],
                                  "ci95": None if iv is None else [iv.low, iv.high], "seeds": g["seeds"],
                                  "values": g["values"]}
        return out

    def tied_summary(self, groups: list[dict]) -> dict:
        """The runs started from tied weights: block mean of cos∠(W2, W1ᵀ) after every epoch
        (1 at step 0 by construction), mean over seeds, and the test accuracy."""
        from hopfield_lab.symmetry import summarize

        out = {}
        for g in groups:
            if g["init"] != "tied":
                continue
            per_epoch = [[summarize(h["report"])["all"]["cosine"] for h in r.symmetry_history] for r in g["runs"]]
            n_ep = min(len(c) for c in per_epoch)
            out[g["family"]] = {"n": g["n"], "test_acc": g["mean"],
                                "cosine_per_epoch": [statistics.fmean(c[e] for c in per_epoch) for e in range(n_ep)]}
        return out

    def extras_summary(self) -> dict:
        out = {}
        paper = self.out / "extras" / "paper224_paramixer_timing.json"
        if paper.is_file():
            r = json.loads(paper.read_text())
            ips = r["img_per_s"]
            out["paper224"] = {"img_per_s": ips, "device": r["device"], "compiled": r.get("compiled"),
                               "epoch_s_cifar10_50k": 50_000 / ips if ips else None,
                               "gpu_hours_300_epochs_cifar10": 300 * 50_000 / ips / 3600 if ips else None}
        return out

    def finish(self) -> None:
        s = self.summary
        s["runs"] = [{"name": r.name, "folder": r.folder, "status": r.status, "wall_s": r.wall_s, "note": r.note}
                     for r in self.runs]
        groups = self.study_groups()
        s["study"] = self.study_summary(groups)
        s["tied_start"] = self.tied_summary(groups)
        s["extras"] = self.extras_summary()
        s["study_compile"] = self.compile
        s["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        s["elapsed_s"] = time.time() - self.t0
        goals = []
        variant, targets = GOALS[self.sizes.device]
        for row in s["phases"].get("throughput", {}).get("ratios", []):
            if row["label"] == variant:
                for k, target in targets.items():
                    if row[k] is not None:
                        goals.append({"family": row["family"], "variant": row["label"], "ratio": k,
                                      "value": row[k], "goal": target, "met": row[k] >= target})
        s["goals"] = goals
        (self.out / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
        (self.out / "environment.json").write_text(json.dumps(s["environment"], indent=1) + "\n")
        lines = ["", "=" * 78, f"GPU suite summary ({s['elapsed_s']:.0f} s of {self.deadline - self.t0:.0f} s)"]
        if "table" in s["phases"].get("throughput", {}):
            lines += ["", s["phases"]["throughput"]["table"]]
        for g in goals:
            lines.append(f"  goal {g['family']:13s} {g['ratio']:22s} {g['value']:.2f}x (goal {g['goal']}x): "
                         f"{'met' if g['met'] else 'missed'}")
        from hopfield_lab.results import format_summary

        lines += ["", f"study ({self.sizes.epochs} epochs; compile {'on' if self.compile else 'off'}): "
                      "test accuracy over seeds", format_summary(groups)]
        for fam, v in s["tied_start"].items():
            lines.append(f"  {fam} from tied weights: block-mean cos(W2, W1^T) per epoch "
                         + " ".join(f"{c:+.3f}" for c in v["cosine_per_epoch"]) + f" (n={v['n']})")
        for k, v in s["extras"].items():
            lines.append(f"  {k}: " + ", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}"
                                                 for a, b in v.items() if not isinstance(b, list)))
        todo = [r for r in self.runs if r.status not in ("done",)]
        lines.append(f"\nruns: {sum(r.status == 'done' for r in self.runs)} done, " + (
            f"not done: {', '.join(f'{r.name} ({r.status})' for r in todo)}" if todo else "all done"))
        lines.append(f"results in {self.out}")
        self.log("\n".join(lines))
        self.bundle()

    # -- all --------------------------------------------------------------------------------
    def main(self) -> int:
        a = self.args
        self.workers = a.workers or self.sizes.workers
        self.official = None
        cand = Path(a.official) if a.official else ROOT / ".official" / "paramixer"
        if (cand / "models" / "mixers.py").is_file():
            self.official = cand.resolve()
            if not a.timm_path and (ROOT / ".official" / "timm_site").is_dir():
                a.timm_path = str(ROOT / ".official" / "timm_site")
        elif a.official:
            raise SystemExit(f"error: --official {a.official} is not a checkout of Toshihiro-Ota/paramixer")
        self.throughput_records = []
        self.runs = plan(self.sizes, a.data, extras=not a.no_extras)
        self.environment()
        decoding = self.decode_data()
        self.sync_check()
        self.throughput()
        if decoding is not None:
            self.wait(decoding, 600)
            if decoding.returncode != 0:
                self.log(f"decoding {a.data} failed: see {self.out / 'logs' / 'decode.log'}")
        self.compile, self.compile_mode = self.study_compile()
        if self.compile_mode:
            self.env["HOPFIELD_LAB_COMPILE_MODE"] = self.compile_mode
        self.summary["environment"].update(study_compile=self.compile, study_compile_mode=self.compile_mode)
        self.log(f"phase 2: the study ({self.sizes.epochs} epochs), {self.workers} runs at a time, "
                 f"torch.compile {self.compile_mode or 'default' if self.compile else 'off'}")
        shared = [r for r in self.runs if not r.exclusive]
        self.pool(shared, self.workers)
        for run in [r for r in self.runs if r.exclusive]:
            self.log(f"phase 3: timed alone: {run.name}")
            if _has_torchvision():
                self.alone(run)
            else:
                run.status, run.note = "skipped", "the paper recipe needs torchvision (not installed)"
                self.log(f"skipped: {run.name} ({run.note})")
        self.finish()
        return 0


def worker_main() -> int:
    """``--worker``: train the runs given as JSON lines on stdin, one after another; report each
    on stdout as a line starting with ``@@gpu_suite ``."""
    from hopfield_lab.train import TrainConfig, train

    for line in sys.stdin:
        job = json.loads(line)
        print(f"=== {job['name']}", flush=True)
        try:
            res = train(TrainConfig(**job["fields"])).to_dict()
            msg = {"ok": res.get("status") == "finished", "test_acc": res.get("test_acc")}
        except Exception as exc:
            traceback.print_exc()
            msg = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        print(_MARK + json.dumps(dict(msg, name=job["name"])), flush=True)
    return 0


def _has_torchvision() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("data", nargs="?", help="CIFAR-10 archive (.tar.gz, ImageFolder layout); with --tiny "
                    "also 'synthetic' or 'digits'")
    ap.add_argument("out", nargs="?", help="output folder")
    ap.add_argument("--tiny", action="store_true", help="the same code paths on CPU in about a minute")
    ap.add_argument("--budget", type=float, default=None, help="wall-clock seconds for everything "
                    "(default: 540; --tiny: 600)")
    ap.add_argument("--workers", type=int, default=None, help="runs sharing the device at once "
                    "(default: 4; --tiny: 2)")
    ap.add_argument("--official", default=None, help="checkout of Toshihiro-Ota/paramixer "
                    "(default: .official/paramixer when present)")
    ap.add_argument("--timm-path", default=None, help="where timm 0.9.x is installed "
                    "(default: .official/timm_site when present)")
    ap.add_argument("--compile-modes", default="default",
                    help="torch.compile modes measured in phase 1, comma-separated (e.g. "
                         "default,reduce-overhead; empty: eager only); the study compiles with "
                         "'default' when it beat eager")
    ap.add_argument("--throughput-timeout", type=float, default=240.0,
                    help="seconds for phase 1 (default: 240)")
    ap.add_argument("--no-extras", action="store_true", help="only the 30-epoch reference study (not the rest of the seeded study, nor 224 px)")
    ap.add_argument("--cache", default=None, help="decoded-data cache (default: OUT/.cache)")
    ap.add_argument("--bundle", default=None, help="keep a .tar.gz of OUT here (without checkpoints)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main()
    if not args.data or not args.out:
        ap.error("DATA and OUT are required")
    if not args.tiny and args.data in ("synthetic", "digits"):
        ap.error(f"DATA {args.data!r} is for --tiny only; give the CIFAR-10 archive")
    if not args.tiny and not Path(args.data).exists():
        ap.error(f"DATA {args.data} does not exist: copy shared/data/cifar10-jpeg.tar.gz into .gpu/ first")
    if Path(args.data).exists():  # the runs work in the repository's root
        args.data = str(Path(args.data).resolve())
    sizes = TINY if args.tiny else REAL
    if args.tiny and args.data == "synthetic":
        sizes = dataclasses.replace(sizes, train=dict(
            sizes.train, dataset_options={"n": 256, "n_test": 64, "size": 16}),
            paper=dict(sizes.paper, dataset_options={"n": 64, "n_test": 32, "size": 32}))
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            ap.error("no CUDA device: run on a GPU, or use --tiny for the CPU version")
    return Suite(args, sizes).main()


if __name__ == "__main__":
    sys.exit(main())
