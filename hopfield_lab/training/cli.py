"""Command line: ``python -m hopfield_lab train | sweep | bench`` (also the ``hopfield-lab`` script).

Examples::

    # one run, CIFAR-10 from the offline archive, results in runs/sym/result.json
    python -m hopfield_lab train --model symmixer_cifar_small --dataset cifar10 \\
        --data-root /path/with/cifar10-jpeg.tar.gz/folder --epochs 30 --out-dir runs/sym

    # models x lambda grid (asym models only) x seeds, one JSON per run; rerun to continue
    python -m hopfield_lab sweep --models vanillamixer_cifar_small asymmixer_cifar_small \\
        --lams 0 1e-2 --seeds 0 --epochs 30 --out-dir hopfield_lab/results/cifar10

    # the paper's 224-px recipe (Mixer-S/16, 300 epochs, RandAugment, mixup/cutmix; needs
    # torchvision) on 4 GPUs; options given here override the recipe's values
    torchrun --nproc_per_node=4 -m hopfield_lab train --recipe paper --model asymmixer --lam 1e-2 \
        --dataset cifar10 --workers 8 --out-dir runs/paper_asym

    # training throughput (img/s), warm-up excluded, eager and compiled
    python -m hopfield_lab bench --models paramixer_cifar_small --compile

Every option of ``train`` (one per :class:`~hopfield_lab.train.TrainConfig` field) is also an
option of ``sweep``. With ``--recipe paper`` the options not given take the recipe's values
(:data:`hopfield_lab.recipes.PAPER`; ``--dry-run`` prints the resulting configuration) and
``--model`` / ``--models`` name model families. Under ``torchrun --nproc_per_node=N -m
hopfield_lab ...`` each command runs data-parallel; only rank 0 prints and writes files.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import time
from pathlib import Path

from .distributed import RendezvousError, is_main_process
from .run import RESULT_NAME, RunResult, load_result, run_name
from ..mixer import FAMILIES, INITS, family_of
from .config import RESUME_FREE, TrainConfig

_SWEEP_OWN = {"model", "lam", "seed", "out_dir", "result_path", "stop_after_epochs"}


# ---------------------------------------------------------------------------------------------
# TrainConfig <-> argparse
# ---------------------------------------------------------------------------------------------
def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(items: list[str] | None, flag: str = "--model-overrides") -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{flag} takes KEY=VALUE pairs, got {item!r}: e.g. {flag} "
                             + ("num_blocks=4 n_iter=2" if flag == "--model-overrides" else "key=value"))
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
    """One option per TrainConfig field (``--batch-size`` for ``batch_size``), with its help text.

    Options left out on the command line are absent from the parsed namespace (their defaults are
    applied by :func:`config_from_args`), so a recipe's values can stand in for them.
    """
    group = parser.add_argument_group(
        "training options (TrainConfig fields)",
        "The defaults shown are TrainConfig's. With --recipe paper, options not given take the "
        "recipe's values instead (hopfield_lab.recipes.PAPER; --dry-run prints them).")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        helptext = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "" if "default" in helptext else f" (default: {default})"
        t = str(f.type)
        optional = "None" in t
        absent = argparse.SUPPRESS  # "not given" stays distinguishable from "given the default"
        if t.startswith("bool"):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=absent, help=f"{helptext}{shown}")
        elif t.startswith("dict"):
            group.add_argument(flag, dest=f.name, nargs="*", metavar="KEY=VALUE", default=absent,
                               help=f"{helptext}; KEY=VALUE pairs (values parsed as Python literals)")
        elif "choices" in f.metadata:
            group.add_argument(flag, dest=f.name, choices=f.metadata["choices"], default=absent,
                               help=f"{helptext}{shown}")
        else:
            conv = int if t.startswith("int") else float if t.startswith("float") else str
            group.add_argument(flag, dest=f.name, type=_optional(conv) if optional else conv,
                               default=absent, metavar=conv.__name__.upper(),
                               help=f"{helptext}{shown}")


def given_options(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (dict fields parsed from KEY=VALUE)."""
    kw = {}
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name):
            v = getattr(args, f.name)
            if str(f.type).startswith("dict"):
                v = _key_values(v, "--" + f.name.replace("_", "-"))
            kw[f.name] = v
    return kw


def paper_family(model: str) -> str:
    """The model family that ``--model`` names under ``--recipe paper``.

    Accepts a family (``paramixer``) or the recipe's own preset (``paramixer_s16_224``); any
    other preset is refused rather than silently replaced by the recipe's Mixer-S/16.
    """
    try:
        fam = family_of(model).name
    except ValueError:
        fam = None
    if fam is not None and str(model) in (fam, f"{fam}_s16_224"):
        return fam
    raise ValueError(
        f"--recipe paper trains the recipe's Mixer-S/16 at 224 px, so --model names its family: "
        f"one of {', '.join(FAMILIES)} (or <family>_s16_224), not {model!r}. To change the model's "
        "size use --model-overrides, e.g. embed_dim=256 num_blocks=4; for the preset itself use --recipe none.")


def resolve_config(given: dict) -> TrainConfig:
    """A TrainConfig from the fields given: TrainConfig's defaults, or with ``recipe="paper"`` the
    recipe's fields (:meth:`hopfield_lab.recipes.Recipe.train_config`) overridden by those given.

    Under the paper recipe ``model`` names the family (default ``paramixer``), and the recipe's
    rescale rules apply (:meth:`~hopfield_lab.recipes.Recipe.train_config`: lr with the batch,
    warm-up with the epochs); given ``model_overrides`` are merged into the recipe's.
    """
    if given.get("recipe", "none") == "none":
        return TrainConfig(**given)
    from .recipes import make_recipe

    kw = dict(given)
    family = paper_family(kw.pop("model", "paramixer"))
    dataset = kw.pop("dataset", TrainConfig.dataset)
    recipe = make_recipe(kw.pop("recipe"), kw.pop("recipe_overrides", {}))
    return TrainConfig(**recipe.train_config(family, dataset, **kw))


def config_from_args(args: argparse.Namespace, **fixed) -> TrainConfig:
    """Build a TrainConfig from parsed options (``fixed`` fields override); see :func:`resolve_config`."""
    return resolve_config({**given_options(args), **fixed})


def _exit(message: str) -> SystemExit:
    """SystemExit with ``message`` on rank 0 and a bare status 1 on the other torchrun ranks."""
    return SystemExit(message if _is_main() else 1)


def _checked_config(args: argparse.Namespace, **fixed) -> TrainConfig:
    """The validated TrainConfig of the options (a ValueError says what is wrong)."""
    cfg = config_from_args(args, **fixed)
    check_model_names([cfg.model])
    return cfg.validate()


def _require_recipe_tools(cfg: TrainConfig) -> None:
    """Exit with the install instructions before any work when the recipe needs torchvision."""
    if cfg.recipe == "paper":
        from .recipes import require_torchvision

        try:
            require_torchvision()
        except ImportError as exc:
            raise _exit(f"error: --recipe paper: {exc}")


def check_model_names(names: list[str]) -> None:
    """Raise SystemExit with the list of valid presets when a name is unknown."""
    from ..mixer import list_models

    valid = list(list_models())
    bad = [n for n in names if n not in valid]
    if bad:
        raise SystemExit(f"error: unknown model(s) {', '.join(bad)}. Valid names: {', '.join(valid)}")


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def _is_main() -> bool:
    return is_main_process()


def cmd_train(args) -> int:
    from .train import train

    cfg = _checked_config(args)
    if args.dry_run:
        if _is_main():
            print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    _require_recipe_tools(cfg)
    result = train(cfg)
    if _is_main():
        where = cfg.result_path or (str(Path(cfg.out_dir) / RESULT_NAME) if cfg.out_dir else "(not written: no --out-dir)")
        state = "finished" if result.finished else f"stopped after epoch {result.epochs_done}"
        acc = result.test_acc
        print(f"{cfg.model}: {state}, test_acc={acc if acc is None else round(acc, 4)}, "
              f"{result.img_per_s or 0:.0f} img/s, {result.wall_time_s:.1f} s -> {where}")
    return 0


def sweep_plan(models: list[str], lams: list[float] | None, seeds: list[int],
               n_iters: list[int] | None = None, inits: list[str] | None = None) -> list[dict]:
    """The runs of a sweep: every model x seed (x n_iter x init), and x lambda for the models with a breaking part."""
    plan = []
    for model in models:
        for init in (inits or [None]):
            for ni in (n_iters or [None]):
                for lam in ((lams or [None]) if family_of(model).has_breaking else [None]):
                    for seed in seeds:
                        plan.append({"model": model, "lam": lam, "seed": seed, "n_iter": ni, "init": init,
                                     "name": run_name(model, lam, seed, ni, init)})
    names = [p["name"] for p in plan]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"the sweep lists {len(repeated)} run(s) more than once ({', '.join(repeated)}): "
            "a value is repeated in --models, --lams, --seeds or --n-iters; give each value once.")
    return plan


def _same_run(saved: dict, cfg: TrainConfig) -> list[str]:
    now = cfg.to_dict()
    return [k for k in now if k not in RESUME_FREE | {"result_path", "keep_checkpoint"}
            and k in saved and saved[k] != now[k]]


def _lams_note(models: list[str], lams: list[float] | None) -> str | None:
    """What a sweep says about ``--lams`` (None: nothing to say); raises ValueError when no model has λ."""
    if not lams:
        return None
    without = [m for m in models if not family_of(m).has_breaking]
    if len(without) == len(models):
        raise ValueError(f"--lams {' '.join(f'{v:g}' for v in lams)} would be ignored: none of the models "
                         f"({', '.join(models)}) has a symmetry-breaking penalty λ. Add an asymmixer_* model, "
                         "or drop --lams.")
    if without:
        return (f"note: --lams applies to the models with λ only; {', '.join(without)} "
                f"run{'s' if len(without) == 1 else ''} once per seed without it")
    return None


def cmd_sweep(args) -> int:
    from .checkpoint import FolderInUse, RunLock
    from .train import TrainingDiverged, train

    if getattr(args, "recipe", "none") != "paper":
        check_model_names(args.models)
    out = Path(args.out_dir).expanduser()
    note = _lams_note(args.models, args.lams)
    plan = sweep_plan(args.models, args.lams, args.seeds, args.n_iters, args.inits)
    configs = []
    for p in plan:  # every run's configuration is checked before the first one starts
        overrides = _key_values(getattr(args, "model_overrides", None))
        if p["n_iter"] is not None:
            overrides["n_iter"] = p["n_iter"]
        if p["init"] is not None:
            overrides["init"] = p["init"]
        configs.append(_checked_config(
            args, model=p["model"], lam=p["lam"], seed=p["seed"], model_overrides=overrides,
            out_dir=str(out / "checkpoints" / p["name"]), result_path=str(out / f"{p['name']}.json"),
            keep_checkpoint=args.keep_checkpoints))
    main = _is_main()
    if main:
        print(f"sweep: {len(plan)} runs -> {out}", flush=True)
        if note:
            print(note, flush=True)
    if args.dry_run:
        for p, cfg in zip(plan, configs):
            print(f"  {p['name']}: {cfg.model}, recipe {cfg.recipe}, {cfg.epochs} epochs, "
                  f"batch {cfg.batch_size}, lr {cfg.lr:g}")
        return 0
    _require_recipe_tools(configs[0])
    rows: list[RunResult | None] = []
    elsewhere = []  # runs another process is training (it holds their lock)
    t0 = time.perf_counter()

    def done_before(path: Path, cfg: TrainConfig) -> RunResult | None:
        if not path.is_file():
            return None
        saved = load_result(path)
        diff = _same_run(saved.config, cfg)
        if diff:
            raise SystemExit(
                f"error: {path} exists but was made with other settings ({', '.join(diff)}). "
                "Use another --out-dir, or delete that file to rerun it.")
        return saved

    for i, (p, cfg) in enumerate(zip(plan, configs)):
        tag = f"[{i + 1}/{len(plan)}] {p['name']}"
        path = Path(cfg.result_path)
        saved = done_before(path, cfg)
        lock = None
        if saved is None and main:  # a run's folder is locked while it trains: two sweeps share the work
            try:
                lock = RunLock(cfg.out_dir).acquire()
            except FolderInUse as exc:
                print(f"{tag}: being trained by another process (PID {exc.owner.get('pid', '?')}), "
                      "left to it", flush=True)
                rows.append(None)
                elsewhere.append((i, p, cfg))
                continue
            saved = done_before(path, cfg)  # it may have finished while we waited for the lock
        if saved is not None:
            if lock is not None:
                lock.release()
            if main:
                print(f"{tag}: done before ({_outcome(saved)}), skipped", flush=True)
            rows.append(saved)
            continue
        if main:
            print(tag, flush=True)
        try:
            res = train(cfg)
        except TrainingDiverged as exc:  # recorded in its result file; the other runs go on
            res = exc.result
        finally:
            if lock is not None:
                lock.release()
        if res.finished and not cfg.keep_checkpoint:
            try:
                Path(cfg.out_dir).rmdir()  # empty once its checkpoint is deleted
            except OSError:
                pass
        rows.append(res)
        if main:
            print(f"{tag}: {_outcome(res)} {res.img_per_s or 0:.0f} img/s {res.wall_time_s:.1f} s", flush=True)
    for at, p, cfg in elsewhere:  # collect what the other process has finished meanwhile
        rows[at] = done_before(Path(cfg.result_path), cfg)
    elsewhere = [p["name"] for at, p, _ in elsewhere if rows[at] is None]
    ran = [(p, r) for p, r in zip(plan, rows) if r is not None]
    rows = [r for _, r in ran]
    try:
        (out / "checkpoints").rmdir()  # empty once every run has finished
    except OSError:
        pass
    diverged = [p["name"] for p, r in ran if r.status == "diverged"]
    if main:
        print(f"\nsweep finished in {time.perf_counter() - t0:.1f} s; results in {out}")
        width = max(len(r.key) for r in rows) if rows else 3
        print(f"{'run':{width}s} {'lam':>8s} {'n_iter':>6s} {'init':>6s} {'seed':>4s} {'test_acc':>8s} "
              f"{'img/s':>8s} {'time_s':>7s}")
        for r in rows:  # each run says what it is (RunResult.key, .lam, .n_iter, .init)
            lam = "-" if r.lam is None else f"{r.lam:g}"
            acc = "diverged" if r.status == "diverged" else f"{r.test_acc:.4f}"
            print(f"{r.key:{width}s} {lam:>8s} {r.n_iter:>6d} {r.init:>6s} {r.seed:>4d} {acc:>8s} "
                  f"{r.img_per_s or 0:>8.0f} {r.wall_time_s or 0:>7.1f}")
        if elsewhere:
            print(f"{len(elsewhere)} run(s) are still being trained by another process ({', '.join(elsewhere)}); "
                  "rerun this command once it has finished to collect them.")
    if diverged:
        raise _exit(f"error: {len(diverged)} of {len(plan)} runs diverged ({', '.join(diverged)}); their result "
                    "files say at which epoch. Lower --lr (or λ) for them in another --out-dir.")
    return 0


def _outcome(result: RunResult) -> str:
    if result.status == "diverged":
        return f"diverged at epoch {result.diverged['epoch']} ({result.diverged['what']})"
    return f"test_acc={result.test_acc:.4f}"


def cmd_bench(args) -> int:
    from .bench import benchmark

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
                          lam=args.lam if family_of(name).has_breaking else None,
                          model_overrides=_key_values(args.model_overrides))
            rows.append(r)
            print(f"{name:32s} {mode:8s} batch {args.batch_size:5d}  {r['img_per_s']:10.1f} img/s  "
                  f"({r['ms_per_step']:.1f} ms/step, {r['params'] / 1e6:.2f} M params, {r['device']})",
                  flush=True)
    if args.json:
        from .checkpoint import atomic_write_json
        atomic_write_json(rows, args.json)
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (default: one line that says what to fix)")
    p = argparse.ArgumentParser(prog="python -m hopfield_lab", description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="{train,sweep,bench}")
    sub.required = True

    t = sub.add_parser("train", formatter_class=fmt, parents=[common], help="train one model (one result JSON)",
                       description="Train one model and write out_dir/result.json (and a checkpoint "
                                   "that an interrupted run resumes from).")
    t.add_argument("--dry-run", action="store_true",
                   help="print the resolved configuration (JSON) and exit without training")
    add_config_arguments(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sweep", formatter_class=fmt, parents=[common], help="models x lambda grid x seeds, one JSON per run",
                       description="Train every model x seed, and for AsymMixer models every lambda "
                                   "of --lams. Each run writes OUT_DIR/<model>[_ni<n>][_lam<lam>][_tied]_seed<s>.json; "
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
    s.add_argument("--inits", nargs="+", default=None, choices=INITS, metavar="INIT",
                   help="also sweep how the MLPs start: random (official) | tied (W2 = W1^T; model override init)")
    s.add_argument("--out-dir", required=True, help="folder of the result JSONs (and checkpoints of runs in progress)")
    s.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each finished run's checkpoint (default: deleted once its JSON is written)")
    s.add_argument("--dry-run", action="store_true", help="check every run's configuration, list the runs and exit")
    add_config_arguments(s, skip=_SWEEP_OWN | {"keep_checkpoint"})
    s.set_defaults(func=cmd_sweep)

    b = sub.add_parser("bench", formatter_class=fmt, parents=[common], help="training throughput (img/s)",
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
                   help="extra create_model keyword arguments, e.g. num_blocks=4 n_iter=2")
    b.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    b.set_defaults(func=cmd_bench)
    return p


#: errors that mean "this input or this machine cannot work" (data, options, devices, files,
#: missing packages); any other exception is reported as a likely bug, still in one line, with
#: the hint to rerun with --debug
USER_ERRORS = (ValueError, RuntimeError, OSError, ImportError)


def main(argv: list[str] | None = None) -> int:
    """Run a command; a failure ends with one line ``error: ...`` (exit status 1), or with the
    traceback when ``--debug`` is given."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, exit status 130 (128 + SIGINT), as shells do
        if getattr(args, "debug", False):
            raise
        if _is_main():
            import sys

            text = " ".join(str(exc).split()) or f"{args.command} interrupted before training started; rerun to start."
            print(f"interrupted: {text}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        text = " ".join((getattr(exc, "cli_message", None) or str(exc)).split()) or type(exc).__name__
        if not isinstance(exc, USER_ERRORS):
            text = f"{type(exc).__name__}: {text} (unexpected: rerun with --debug for the traceback)"
        if isinstance(exc, RendezvousError):  # the rank that speaks for all may be the missing one
            raise SystemExit(f"error: {text}") from None
        raise _exit(f"error: {text}") from None
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
