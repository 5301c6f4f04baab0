"""Training throughput of our Mixers side by side with the official code's, in alternating rounds.

Every variant runs the same measured step (:func:`hopfield_lab.bench.benchmark`: a batch from the
device-resident loader over random uint8 images with reflect-pad crop and flip, forward (bf16
autocast on CUDA, float32 on CPU), label-smoothed cross-entropy, backward, AdamW step), so that
only what a variant names differs. Rounds alternate between variants (A B C A B C ...) and each
variant's best round is its number (all rounds are kept), to keep the drift of a shared machine
out of the ratios.

Variants (``impl`` x ``path``):

* ``official`` / ``own``: the official ``MlpMixer`` trained as its ``train.py`` does: plain
  ``torch.optim.AdamW`` (what timm's ``create_optimizer_v2("adamw")`` builds), its penalty
  ``reg_weight2`` (λ‖fc2‖² of every block, back-propagated every step, also at λ = 0), glibc's
  allocator untouched on CPU. Its mixed precision is ours (bf16 autocast on CUDA), not its
  default fp16 with a gradient scaler.
* ``ours`` / ``ours``: hopfield_lab's model and trainer: fused AdamW, the closed-form penalty
  gradient, the tuned CPU allocator (:mod:`hopfield_lab.perf`).
* with ``--decompose``, ``official`` / ``ours``: the official model under our trainer's settings,
  so that ours ÷ this is what the model code alone gains and this ÷ official/own what the
  training path gains.

On CPU the two paths run in two sibling worker processes (glibc's allocator cannot be put back
into its default state once tuned); on CUDA every variant has its own worker, so that all of
them compile at the same time. Workers first build, compile and warm up their models together;
then the main process hands out one timed round at a time, so only one variant computes at any
moment.

    # CPU (official code in a git-ignored folder, see tools/compare_official.py)
    python benchmarks/bench_mixer.py --device cpu --batch 64 --steps 4 --warmup 2 --rounds 3 \\
        --official .official/paramixer --timm-path .official/timm_site --decompose
    # GPU, the configuration of results/cifar10_reference/README.md (32 px, patch 4, C=256, depth 8, batch 512)
    python benchmarks/bench_mixer.py --device cuda --batch 512 --compile default \\
        --compile-official default --official .official/paramixer --timm-path .official/timm_site

Writes ``hopfield_lab/results/throughput/<device>.json`` (``--out`` / ``--json`` change where): a list of
records ``{"impl", "path", "model", "family", "compile", "compile_mode", "batch_size",
"img_per_s", "img_per_s_rounds", "device", "torch_version", "cpu", "threads", ...}``, and prints
a table of img/s with ratios to the official code.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("own", "ours")


def _compare_tool():
    spec = importlib.util.spec_from_file_location("compare_official", ROOT / "tools" / "compare_official.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_official(src: str | Path, timm_path: str | Path | None = None):
    """``(compare_official tool, models.mixers, models.layers, util.utils)`` of an official checkout."""
    co = _compare_tool()
    _, mixers, layers = co.import_official(src, timm_path)
    spec = importlib.util.spec_from_file_location("paramixer_util_utils", Path(src) / "util" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    return co, mixers, layers, utils


class _OfficialTrainerPenalty:
    """``model.symmetry_penalty()`` as the official train.py adds it: ``reg_weight2(model, model.lcoeff)``."""

    def __init__(self, model, reg_weight2):
        self.model, self.reg_weight2 = model, reg_weight2

    def __call__(self):
        return self.reg_weight2(self.model, _lambda=self.model.lcoeff)


def build(impl: str, family: str, preset: str, official=None, token_mixing: str | None = None,
          path: str = "ours"):
    """A fresh model: ours (``create_model``) or the official ``MlpMixer`` with the same config and
    weights; the official one trained on its ``own`` path carries its train.py penalty."""
    import hopfield_lab as hl
    from hopfield_lab.mixer import model_config

    torch.manual_seed(0)
    ours = hl.create_model(f"{family}_{preset}")
    if token_mixing:
        for m in ours.modules():
            if hasattr(m, "token_mixing"):
                m.token_mixing = token_mixing
    if impl == "ours":
        return ours
    if official is None:
        raise ValueError("the official model needs --official PATH (a checkout of Toshihiro-Ota/paramixer)")
    co, mixers, layers, utils = official
    cfg = {k: v for k, v in model_config(f"{family}_{preset}").items()
           if k in ("img_size", "patch_size", "num_blocks", "embed_dim", "num_classes", "n_iter", "lam")}
    off = co.official_model(mixers, layers, family, **cfg)
    off.load_state_dict(ours.state_dict())
    if path == "own":
        off.symmetry_penalty = _OfficialTrainerPenalty(off, utils.reg_weight2)
    return off


def variant_key(v: dict) -> tuple:
    return (v["family"], v["impl"], v["path"], v["compile_mode"], v["token_mixing"], v.get("cpu_bf16", False))


def variant_label(v: dict) -> str:
    label = v["impl"] + ("" if (v["impl"], v["path"]) in (("official", "own"), ("ours", "ours"))
                         else f"[{v['path']} path]")
    if v["token_mixing"]:
        label += f"[{v['token_mixing']}]"
    if v.get("cpu_bf16"):
        label += "[bf16]"
    return label + (f"+compile:{v['compile_mode']}" if v["compile_mode"] else "")


def plan(families, *, official: bool, compile_modes=(), compile_official=(), token_mixings=(None,),
         decompose: bool = False, cpu_bf16: bool = False) -> list[dict]:
    """The variants, in the order of a round. ``cpu_bf16`` adds ours with bf16 autocast on CPU
    (``HOPFIELD_LAB_CPU_BF16=1``, for CPUs with bf16 units)."""
    out = []
    for family in families:
        def add(impl, path, mode=None, tm=None):
            out.append({"family": family, "impl": impl, "path": path, "compile_mode": mode, "token_mixing": tm})
        if official:
            add("official", "own")
            if decompose:
                add("official", "ours")
            for m in compile_official:
                add("official", "own", m)
        for i, tm in enumerate(token_mixings):  # compiled: the first token-mixing form only
            add("ours", "ours", None, tm)
            for m in (compile_modes if i == 0 else ()):
                add("ours", "ours", m, tm)
        if cpu_bf16:
            add("ours", "ours", None, token_mixings[0])
            out[-1]["cpu_bf16"] = True
    return out


class _Runner:
    """Builds, compiles and warms up (``prepare``) and times (``run``) variants in one process; the
    models stay alive across rounds so that a compiled variant compiles once."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.models: dict[tuple, torch.nn.Module] = {}
        self.official = (load_official(cfg["official"], cfg.get("timm_path"))
                         if cfg.get("official") else None)
        if cfg.get("threads"):
            torch.set_num_threads(cfg["threads"])

    def _bench(self, v: dict, steps: int, warmup: int) -> dict:
        from hopfield_lab.bench import benchmark

        from hopfield_lab import perf

        cfg = self.cfg
        before = os.environ.get(perf.CPU_BF16_ENV)
        os.environ[perf.CPU_BF16_ENV] = "1" if v.get("cpu_bf16") else "0"
        try:
            return benchmark(self.models[variant_key(v)], batch_size=cfg["batch"], steps=steps, warmup=warmup,
                             amp=cfg["amp"], device=cfg["device"],
                             optimizer="torch-default" if v["path"] == "own" else "trainer")
        finally:
            if before is None:
                os.environ.pop(perf.CPU_BF16_ENV)
            else:
                os.environ[perf.CPU_BF16_ENV] = before

    def prepare(self, v: dict) -> dict:
        """Build (and compile) the variant's model and run its first steps (compilation happens here)."""
        from hopfield_lab import perf
        from hopfield_lab.train import _raise_recompile_limit

        t0 = time.perf_counter()
        key = variant_key(v)
        if key not in self.models:
            model = build(v["impl"], v["family"], self.cfg["preset"], self.official, v["token_mixing"], v["path"])
            if v["compile_mode"]:
                _raise_recompile_limit()
                model = perf.compile_module(model, mode=v["compile_mode"])
            self.models[key] = model
        self._bench(v, steps=1, warmup=max(1, self.cfg["warmup"]))
        return {"prepared": True, "prepare_s": time.perf_counter() - t0}

    def run(self, v: dict) -> dict:
        from hopfield_lab import perf

        cfg = self.cfg
        t0 = time.perf_counter()
        if variant_key(v) not in self.models:
            self.prepare(v)
        rec = self._bench(v, steps=cfg["steps"], warmup=cfg["warmup"])
        rec.update(v, model=f"{v['family']}_{cfg['preset']}", compile=bool(v["compile_mode"]),
                   compile_mode=v["compile_mode"], wall_s=time.perf_counter() - t0,
                   load_average_1min=os.getloadavg()[0],  # others' work on a shared machine
                   penalty={("official", "own"): "reg_weight2 every step (official train.py)",
                            ("official", "ours"): "none (no symmetry_penalty on the official model)"}.get(
                       (v["impl"], v["path"]), "hopfield_lab train_step (closed-form gradient)"),
                   **{k: val for k, val in perf.describe_device(cfg["device"]).items() if k != "device"})
        return rec


def _worker_main(conn, path: str, cfg: dict) -> None:
    """A worker process: answers ("prepare" | "run", variant) messages until it receives None."""
    os.environ["HOPFIELD_LAB_CPU_MALLOC"] = "default" if path == "own" else "tuned"
    try:
        runner = _Runner(cfg)
    except Exception as exc:  # report, then exit
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    conn.send({"ready": True})
    while True:
        msg = conn.recv()
        if msg is None:
            return
        what, v = msg
        try:
            conn.send(runner.prepare(v) if what == "prepare" else runner.run(v))
        except Exception as exc:
            conn.send({"error": f"{type(exc).__name__}: {str(exc)[:2000]}"})


class _Worker:
    """A spawned worker process (see :func:`_worker_main`); ``send`` and ``recv`` are split so that
    several workers can prepare (compile) at the same time."""

    def __init__(self, path: str, cfg: dict, env: dict | None = None):
        here = str(Path(__file__).resolve().parent)
        if here not in sys.path:  # the spawned process imports this module by name from its sys.path
            sys.path.insert(0, here)
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})  # inherited by the spawned process
        try:
            self.proc = ctx.Process(target=_worker_main, args=(child, path, cfg), daemon=True)
            self.proc.start()
        finally:
            for k, val in saved.items():
                if val is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = val
        self.path = path

    def started(self) -> None:
        first = self.conn.recv()
        if "error" in first:
            self.proc.join()
            raise RuntimeError(f"benchmark worker ({self.path} path) failed to start: {first['error']}")

    def send(self, what: str, v: dict) -> None:
        self.conn.send((what, v))

    def recv(self) -> dict:
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.terminate()


class _InProcess:
    """The worker interface over a :class:`_Runner` in this process."""

    def __init__(self, runner: _Runner):
        self.runner, self.pending = runner, []

    def started(self) -> None:
        pass

    def send(self, what: str, v: dict) -> None:
        self.pending.append(self.runner.prepare(v) if what == "prepare" else self.runner.run(v))

    def recv(self) -> dict:
        return self.pending.pop(0)

    def close(self) -> None:
        pass


ISOLATION = ("none", "path", "variant")


def measure(variants: list[dict], *, preset: str = "cifar_small", device: str = "cpu", batch: int = 64,
            steps: int = 4, warmup: int = 2, rounds: int = 3, amp: bool = True, official: str | None = None,
            timm_path: str | None = None, threads: int | None = None, isolate: str | None = None,
            compile_threads: int | None = None, log=print, after_round=None) -> list[dict]:
    """Time ``variants`` (from :func:`plan`) in alternating rounds; one record per variant (its
    best round, all rounds in ``img_per_s_rounds``).

    ``isolate``: ``"path"`` (default on CPU) runs each training path in its own worker process,
    ``"variant"`` (default on CUDA) each variant, ``"none"`` everything here. All workers first
    prepare (build, compile, warm up) at the same time; then one variant at a time is timed.
    ``compile_threads`` caps inductor's compile processes per worker; ``after_round(records)``
    is called with the records so far after every round (e.g. to save them).
    """
    cfg = dict(preset=preset, device=device, batch=batch, steps=steps, warmup=warmup, amp=amp,
               official=str(official) if official else None, timm_path=str(timm_path) if timm_path else None,
               threads=threads)
    isolate = isolate or ("path" if torch.device(device).type == "cpu" else "variant")
    if isolate not in ISOLATION:
        raise ValueError(f"isolate must be one of {ISOLATION}, got {isolate!r}")
    env = {"TORCHINDUCTOR_COMPILE_THREADS": str(compile_threads)} if compile_threads else {}
    if isolate == "none":
        one = _InProcess(_Runner(cfg))
        worker_of = {variant_key(v): one for v in variants}
    elif isolate == "path":
        by_path = {p: _Worker(p, cfg, env) for p in sorted({v["path"] for v in variants})}
        worker_of = {variant_key(v): by_path[v["path"]] for v in variants}
    else:
        worker_of = {variant_key(v): _Worker(v["path"], cfg, env) for v in variants}
    workers = list({id(w): w for w in worker_of.values()}.values())
    best: dict[tuple, dict] = {}
    try:
        for w in workers:
            w.started()
        t0 = time.perf_counter()
        for v in variants:  # every worker prepares (compiles) at once
            worker_of[variant_key(v)].send("prepare", v)
        for v in variants:
            ack = worker_of[variant_key(v)].recv()
            if "error" in ack:
                raise RuntimeError(f"{variant_label(v)} ({v['family']}): {ack['error']}")
        log(f"prepared {len(variants)} variants in {time.perf_counter() - t0:.0f} s ({isolate} isolation)")
        for r in range(rounds):
            for v in variants:
                w = worker_of[variant_key(v)]
                w.send("run", v)
                rec = w.recv()
                if "error" in rec:
                    raise RuntimeError(f"{variant_label(v)} ({v['family']}): {rec['error']}")
                key = variant_key(v)
                rounds_so_far = best.get(key, {}).get("img_per_s_rounds", []) + [rec["img_per_s"]]
                log(f"round {r}: {v['family']:13s} {variant_label(v):40s} {rec['img_per_s']:10.1f} img/s "
                    f"({rec['ms_per_step']:.1f} ms/step, {rec['wall_s']:.0f} s"
                    + (f", {rec['page_faults_per_step']:.0f} page faults/step" if "page_faults_per_step" in rec else "")
                    + ")")
                if key not in best or rec["img_per_s"] > best[key]["img_per_s"]:
                    best[key] = rec
                best[key]["img_per_s_rounds"] = rounds_so_far
            if after_round is not None:
                after_round(_finalize(variants, best, r + 1, isolate))
    finally:
        for w in workers:
            w.close()
    return _finalize(variants, best, rounds, isolate)


def _finalize(variants: list[dict], best: dict, rounds: int, isolate: str) -> list[dict]:
    from hopfield_lab.results import git_commit

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for v in variants:
        rec = best[variant_key(v)]
        rec.update(rounds=rounds, img_per_s_median=statistics.median(rec["img_per_s_rounds"]),
                   isolation=isolate, git_commit=git_commit(), measured_at=stamp)
        out.append(rec)
    return out


def ratios(records: list[dict]) -> list[dict]:
    """Each record's img/s over the same family's official eager (own path) and, for compiled
    variants, over the official compiled with the same mode (None where not measured)."""
    index = {(r["family"], r["impl"], r["path"], r["compile_mode"]): r for r in records}
    rows = []
    for r in records:
        base = index.get((r["family"], "official", "own", None))
        comp = index.get((r["family"], "official", "own", r["compile_mode"])) if r["compile_mode"] else None
        rows.append({"family": r["family"], "label": variant_label(r), "img_per_s": r["img_per_s"],
                     "vs_official_eager": r["img_per_s"] / base["img_per_s"] if base else None,
                     "vs_official_compiled": r["img_per_s"] / comp["img_per_s"] if comp else None})
    return rows


def table(records: list[dict]) -> str:
    first = records[0]
    head = (f"{first['device']} ({first.get('cpu', '')}, {first.get('threads')} threads), torch "
            f"{first['torch_version']}, batch {first['batch_size']}, {first['model'].split('_', 1)[1]}, "
            f"amp {first['amp'] or 'off (float32)'}; best of {first['rounds']} alternating rounds")
    lines = [head, f"{'model':13s} {'variant':40s} {'img/s':>10s} {'median':>10s} {'vs official':>12s} "
                   f"{'vs off. compiled':>16s}"]
    for r, q in zip(records, ratios(records)):
        f = lambda x: "-" if x is None else f"{x:.2f}x"  # noqa: E731
        lines.append(f"{r['family']:13s} {q['label']:40s} {r['img_per_s']:10.1f} {r['img_per_s_median']:10.1f} "
                     f"{f(q['vs_official_eager']):>12s} {f(q['vs_official_compiled']):>16s}")
    return "\n".join(lines)


def device_slug(records: list[dict]) -> str:
    """File stem for ``hopfield_lab/results/throughput``: the GPU's name, or ``cpu-<model>-<threads>t``."""
    r = records[0]
    if r["device"] != "cpu":
        return re.sub(r"[^a-z0-9]+", "-", r["device"].lower()).strip("-")
    cpu = re.sub(r"\((r|tm)\)|\bprocessor\b|\bcpu\b|@.*", " ", str(r.get("cpu", "unknown")).lower())
    return "cpu-" + re.sub(r"[^a-z0-9]+", "-", cpu).strip("-") + f"-{r.get('threads')}t"


def write_records(records: list[dict], path: str | Path, append: bool = False) -> Path:
    """Write the records as a JSON list (``append``: after those already in the file)."""
    path = Path(path)
    old = json.loads(path.read_text()) if (append and path.is_file()) else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old + records, indent=1) + "\n")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="vanillamixer,paramixer,symmixer,asymmixer",
                    help="comma-separated families")
    ap.add_argument("--preset", default="cifar_small", help="cifar_small (the 30-epoch reference set-up) or cifar_tiny")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per round (compilation happens "
                    "in the first round's)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--compile", default="", help="comma-separated torch.compile modes of our model, e.g. "
                    "default,reduce-overhead")
    ap.add_argument("--compile-official", default="", help="torch.compile modes of the official model")
    ap.add_argument("--token-mixing", default="", help="comma-separated token-mixing forms of our model "
                    "(bmm, matmul, transpose; default: the library's)")
    ap.add_argument("--cpu-bf16", action="store_true",
                    help="also ours with bf16 autocast on CPU (HOPFIELD_LAB_CPU_BF16=1; CPUs with bf16 units)")
    ap.add_argument("--decompose", action="store_true",
                    help="also the official model under our training path")
    ap.add_argument("--official", help="path to a checkout of Toshihiro-Ota/paramixer (optional)")
    ap.add_argument("--timm-path", help="extra sys.path entry where timm (0.9.x) is installed")
    ap.add_argument("--no-amp", action="store_true", help="float32 on CUDA (default: bf16 autocast)")
    ap.add_argument("--isolate", choices=ISOLATION, default=None,
                    help="worker processes: one per training path (default on CPU), one per variant "
                         "(default on CUDA: all compile at once), or none (everything in this process; "
                         "on CPU the official path then runs under the tuned allocator too)")
    ap.add_argument("--compile-threads", type=int, default=None,
                    help="inductor compile processes per worker (TORCHINDUCTOR_COMPILE_THREADS)")
    ap.add_argument("--out", default=str(ROOT / "hopfield_lab" / "results" / "throughput"),
                    help="folder of <device>.json (default: hopfield_lab/results/throughput)")
    ap.add_argument("--json", help="write the records to this file instead")
    ap.add_argument("--append", action="store_true", help="add to the records already in the file")
    args = ap.parse_args(argv)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    target = Path(args.json) if args.json else None
    old = json.loads(target.read_text()) if (target and args.append and target.is_file()) else []

    def save(records):  # after every round, so that a run stopped early keeps what it measured
        return write_records(old + records, target or Path(args.out) / f"{device_slug(records)}.json")

    variants = plan(args.models.split(","), official=bool(args.official),
                    compile_modes=[m for m in args.compile.split(",") if m],
                    compile_official=[m for m in args.compile_official.split(",") if m] if args.official else [],
                    token_mixings=[m for m in args.token_mixing.split(",") if m] or [None],
                    decompose=args.decompose, cpu_bf16=args.cpu_bf16)
    records = measure(variants, preset=args.preset, device=device, batch=args.batch, steps=args.steps,
                      warmup=args.warmup, rounds=args.rounds, amp=not args.no_amp, official=args.official,
                      timm_path=args.timm_path, threads=args.threads, isolate=args.isolate,
                      compile_threads=args.compile_threads, after_round=save)
    print()
    print(table(records))
    print(f"wrote {save(records)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
