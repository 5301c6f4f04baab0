"""Command line: ``python -m hopfield_lab train | sweep | bench`` (also the ``hopfield-lab`` script).

Examples::

    # one run, CIFAR-10 from the offline archive, results in runs/sym/result.json
    python -m hopfield_lab train --model symmixer_cifar_small --dataset cifar10 \\
        --data-root /path/with/cifar10-jpeg.tar.gz/folder --epochs 30 --out-dir runs/sym

    # models x lambda grid (asym models only) x seeds, one JSON per run; rerun to continue
    python -m hopfield_lab sweep --models vanillamixer_cifar_small asymmixer_cifar_small \\
        --lams 0 1e-2 --seeds 0 --epochs 30 --out-dir results/cifar10

    # training throughput (img/s), warm-up excluded, eager and compiled
    python -m hopfield_lab bench --models paramixer_cifar_small --compile

Every option of ``train`` (one per :class:`~hopfield_lab.train.TrainConfig` field) is also an
option of ``sweep``. Under ``torchrun --nproc_per_node=N -m hopfield_lab ...`` each command runs
data-parallel; only rank 0 prints and writes files.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import time
from pathlib import Path

from .train import _RESUME_FREE, TrainConfig, is_asym

_SWEEP_OWN = {"model", "lam", "seed", "out_dir", "result_path", "stop_after_epochs"}


# ---------------------------------------------------------------------------------------------
# TrainConfig <-> argparse
# ---------------------------------------------------------------------------------------------
def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = _parse_value(v.strip())
    return out


def _optional(conv):
    def parse(text: str):
        if text.strip().lower() in ("none", "null", ""):
            return None
        return conv(text)
    parse.__name__ = conv.__name__
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, skip: set[str] = frozenset()) -> None:
    """One option per TrainConfig field (``--batch-size`` for ``batch_size``), with its help text."""
    group = parser.add_argument_group("training options (TrainConfig fields)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        helptext = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "" if "default" in helptext else f" (default: {default})"
        t = str(f.type)
        optional = "None" in t
        if t.startswith("bool"):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=default, help=f"{helptext}{shown}")
        elif t.startswith("dict"):
            group.add_argument(flag, dest=f.name, nargs="*", metavar="KEY=VALUE", default=None,
                               help=f"{helptext}; KEY=VALUE pairs (values parsed as Python literals)")
        else:
            conv = int if t.startswith("int") else float if t.startswith("float") else str
            group.add_argument(flag, dest=f.name, type=_optional(conv) if optional else conv,
                               default=default, metavar=conv.__name__.upper(),
                               help=f"{helptext}{shown}")


def config_from_args(args: argparse.Namespace, **fixed) -> TrainConfig:
    """Build a TrainConfig from parsed options (``fixed`` fields override)."""
    kw = {}
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            if str(f.type).startswith("dict"):
                v = _key_values(v)
            kw[f.name] = v
    kw.update(fixed)
    return TrainConfig(**kw)


def check_model_names(names: list[str]) -> None:
    """Raise SystemExit with the list of valid presets when a name is unknown."""
    try:
        from .mixer import list_models
    except ImportError:  # the mixer module is not available: let create_model report it
        return
    valid = list(list_models())
    bad = [n for n in names if n not in valid]
    if bad:
        raise SystemExit(f"error: unknown model(s) {', '.join(bad)}. Valid names: {', '.join(valid)}")


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def _is_main() -> bool:
    import os
    return os.environ.get("RANK", "0") == "0"


def cmd_train(args) -> int:
    from .train import train

    cfg = config_from_args(args)
    check_model_names([cfg.model])
    try:
        cfg.validate()
    except ValueError as exc:
        raise SystemExit(f"error: {exc}")
    result = train(cfg)
    if _is_main():
        where = cfg.result_path or (str(Path(cfg.out_dir) / "result.json") if cfg.out_dir else "(not written: no --out-dir)")
        state = "finished" if result["finished"] else f"stopped after epoch {result['epochs_done']}"
        acc = result["test_acc"]
        print(f"{cfg.model}: {state}, test_acc={acc if acc is None else round(acc, 4)}, "
              f"{result['img_per_s'] or 0:.0f} img/s, {result['wall_time_s']:.1f} s -> {where}")
    return 0


def run_name(model: str, lam: float | None, seed: int, n_iter: int | None = None) -> str:
    """File stem of a sweep run, e.g. ``asymmixer_cifar_small_lam1e-02_seed0``."""
    parts = [model]
    if n_iter is not None:
        parts.append(f"ni{n_iter}")
    if lam is not None:
        parts.append("lam0" if lam == 0 else f"lam{lam:.0e}".replace("e-0", "e-").replace("e+0", "e"))
    parts.append(f"seed{seed}")
    return "_".join(parts)


def sweep_plan(models: list[str], lams: list[float] | None, seeds: list[int],
               n_iters: list[int] | None = None) -> list[dict]:
    """The runs of a sweep: every model x seed (x n_iter), and x lambda for asym models only."""
    plan = []
    for model in models:
        for ni in (n_iters or [None]):
            for lam in ((lams or [None]) if is_asym(model) else [None]):
                for seed in seeds:
                    plan.append({"model": model, "lam": lam, "seed": seed, "n_iter": ni,
                                 "name": run_name(model, lam, seed, ni)})
    return plan


def _same_run(saved: dict, cfg: TrainConfig) -> list[str]:
    now = cfg.to_dict()
    return [k for k in now if k not in _RESUME_FREE | {"result_path", "keep_checkpoint"}
            and k in saved and saved[k] != now[k]]


def cmd_sweep(args) -> int:
    from .train import train

    check_model_names(args.models)
    out = Path(args.out_dir)
    plan = sweep_plan(args.models, args.lams, args.seeds, args.n_iters)
    main = _is_main()
    if main:
        print(f"sweep: {len(plan)} runs -> {out}", flush=True)
    if args.dry_run:
        for p in plan:
            print("  " + p["name"])
        return 0
    rows = []
    t0 = time.perf_counter()
    for i, p in enumerate(plan):
        overrides = _key_values(args.model_overrides)
        if p["n_iter"] is not None:
            overrides["n_iter"] = p["n_iter"]
        path = out / f"{p['name']}.json"
        cfg = config_from_args(
            args, model=p["model"], lam=p["lam"], seed=p["seed"], model_overrides=overrides,
            out_dir=str(out / "checkpoints" / p["name"]), result_path=str(path),
            keep_checkpoint=args.keep_checkpoints)
        try:
            cfg.validate()
        except ValueError as exc:
            raise SystemExit(f"error: {exc}")
        if path.is_file():
            saved = json.loads(path.read_text())
            diff = _same_run(saved.get("config", {}), cfg)
            if diff:
                raise SystemExit(
                    f"error: {path} exists but was made with other settings ({', '.join(diff)}). "
                    "Use another --out-dir, or delete that file to rerun it.")
            if main:
                print(f"[{i + 1}/{len(plan)}] {p['name']}: done before (test_acc={saved['test_acc']:.4f}), skipped",
                      flush=True)
            rows.append(saved)
            continue
        if main:
            print(f"[{i + 1}/{len(plan)}] {p['name']}", flush=True)
        res = train(cfg)
        rows.append(res)
        if main:
            print(f"[{i + 1}/{len(plan)}] {p['name']}: test_acc={res['test_acc']:.4f} "
                  f"{res['img_per_s'] or 0:.0f} img/s {res['wall_time_s']:.1f} s", flush=True)
    try:
        (out / "checkpoints").rmdir()  # empty once every run has finished
    except OSError:
        pass
    if main:
        print(f"\nsweep finished in {time.perf_counter() - t0:.1f} s; results in {out}")
        print(f"{'model':32s} {'lam':>8s} {'seed':>4s} {'test_acc':>8s} {'img/s':>8s} {'time_s':>7s}")
        for r in rows:
            lam = "-" if r["lam"] is None else f"{r['lam']:g}"
            print(f"{r['model']:32s} {lam:>8s} {r['seed']:>4d} {r['test_acc']:>8.4f} "
                  f"{r['img_per_s'] or 0:>8.0f} {r['wall_time_s']:>7.1f}")
    return 0


def cmd_bench(args) -> int:
    from .train import benchmark

    check_model_names(args.models)
    modes = ["eager", "compile"] if args.compile else ["eager"]
    if args.compile_only:
        modes = ["compile"]
    rows = []
    for name in args.models:
        for mode in modes:
            r = benchmark(name, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                          compile=(mode == "compile"), amp=args.amp, device=args.device,
                          img_size=args.img_size, in_chans=args.in_chans, num_classes=args.num_classes,
                          lam=args.lam if is_asym(name) else None,
                          model_overrides=_key_values(args.model_overrides))
            rows.append(r)
            print(f"{name:32s} {mode:8s} batch {args.batch_size:5d}  {r['img_per_s']:10.1f} img/s  "
                  f"({r['ms_per_step']:.1f} ms/step, {r['params'] / 1e6:.2f} M params, {r['device']})",
                  flush=True)
    if args.json:
        from .train import atomic_write_json
        atomic_write_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m hopfield_lab", description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="{train,sweep,bench}")
    sub.required = True

    t = sub.add_parser("train", formatter_class=fmt, help="train one model (one result JSON)",
                       description="Train one model and write out_dir/result.json (and a checkpoint "
                                   "that an interrupted run resumes from).")
    add_config_arguments(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sweep", formatter_class=fmt, help="models x lambda grid x seeds, one JSON per run",
                       description="Train every model x seed, and for AsymMixer models every lambda "
                                   "of --lams. Each run writes OUT_DIR/<model>[_ni<n>][_lam<lam>]_seed<s>.json; "
                                   "runs whose JSON exists are skipped, and an interrupted run resumes "
                                   "from OUT_DIR/checkpoints/<run>/, so rerunning the same command "
                                   "continues a sweep.")
    s.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                   help="model presets (see hopfield_lab.list_models())")
    s.add_argument("--lams", nargs="+", type=float, default=None, metavar="LAM",
                   help="lambda grid, used for asym* models only (default: the model's own lambda)")
    s.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="seeds (default: 0)")
    s.add_argument("--n-iters", nargs="+", type=int, default=None, metavar="N",
                   help="also sweep the number of weight-shared iterations per block (model override n_iter)")
    s.add_argument("--out-dir", required=True, help="folder of the result JSONs (and checkpoints of runs in progress)")
    s.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each finished run's checkpoint (default: deleted once its JSON is written)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    add_config_arguments(s, skip=_SWEEP_OWN | {"keep_checkpoint"})
    s.set_defaults(func=cmd_sweep)

    b = sub.add_parser("bench", formatter_class=fmt, help="training throughput (img/s)",
                       description="Measure training throughput (images per second, forward + backward + "
                                   "AdamW step with on-device augmentation) after warm-up steps that "
                                   "are not timed.")
    b.add_argument("--models", nargs="+", default=["paramixer_cifar_small"], metavar="MODEL",
                   help="model presets (default: paramixer_cifar_small)")
    b.add_argument("--batch-size", type=int, default=512, help="batch size (default: 512)")
    b.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    b.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps (compilation happens here; default: 5)")
    b.add_argument("--compile", action="store_true", help="measure eager and torch.compile")
    b.add_argument("--compile-only", action="store_true", help="measure torch.compile only")
    b.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast on CUDA (default: on)")
    b.add_argument("--device", default=None, help="cuda | cpu (default: CUDA if present)")
    b.add_argument("--img-size", type=int, default=32, help="image size (default: 32)")
    b.add_argument("--in-chans", type=int, default=3, help="image channels (default: 3)")
    b.add_argument("--num-classes", type=int, default=10, help="classes (default: 10)")
    b.add_argument("--lam", type=float, default=None, help="lambda for asym* models (default: the model's)")
    b.add_argument("--model-overrides", nargs="*", metavar="KEY=VALUE", default=None,
                   help="extra create_model keyword arguments, e.g. depth=4")
    b.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
