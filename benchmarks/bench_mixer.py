"""Training throughput of our Mixers, side by side with the official code's, in one process.

Every variant runs the same training step (:func:`hopfield_lab.train.benchmark`: a batch from the
GPU-resident loader over random uint8 images with reflect-pad-4 crop and flip, forward under bf16
autocast on CUDA, label-smoothed cross-entropy, backward, fused AdamW), so that only the model
differs. Rounds alternate between variants (A B A B ...) and the best round of each is reported,
to keep drift of a shared machine out of the ratios.

    # CPU, this repo's quick check (official code optional)
    python benchmarks/bench_mixer.py --device cpu --batch 64 --steps 3 --rounds 3 \\
        --official /tmp/paramixer --timm-path /tmp/timm_site
    # GPU, the configuration of science.md §6 (32 px, patch 4, C=256, depth 8, batch 512)
    python benchmarks/bench_mixer.py --device cuda --batch 512 --compile default \\
        --official /path/to/paramixer

Variants: ``official`` (eager), ``official+compile:<mode>``, ``ours`` (eager),
``ours+compile:<mode>`` for each ``--compile`` mode (``default``, ``reduce-overhead``,
``max-autotune-no-cudagraphs``, ...). Prints a table of img/s and ratios; ``--json`` writes it.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _compare_tool():
    spec = importlib.util.spec_from_file_location("compare_official", ROOT / "tools" / "compare_official.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(impl: str, family: str, preset: str, official=None, token_mixing: str | None = None):
    """A fresh model: ours (``create_model``) or the official ``MlpMixer`` with the same config and weights."""
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
    co, mixers, layers = official
    cfg = {k: v for k, v in model_config(f"{family}_{preset}").items()
           if k in ("img_size", "patch_size", "num_blocks", "embed_dim", "num_classes", "n_iter", "lam")}
    off = co.official_model(mixers, layers, family, **cfg)
    off.load_state_dict(ours.state_dict())
    return off


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="vanillamixer,paramixer,symmixer,asymmixer",
                    help="comma-separated families")
    ap.add_argument("--preset", default="cifar_small", help="cifar_small (science.md §6) or cifar_tiny")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per round (compilation happens here)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best is reported")
    ap.add_argument("--compile", default="", help="comma-separated torch.compile modes to add, e.g. "
                    "default,reduce-overhead")
    ap.add_argument("--compile-official", default="", help="torch.compile modes for the official model "
                    "(comma-separated, e.g. default)")
    ap.add_argument("--token-mixing", default=None, choices=["matmul", "transpose"],
                    help="our token-mixing implementation (default: transpose)")
    ap.add_argument("--official", help="path to a checkout of Toshihiro-Ota/paramixer (optional)")
    ap.add_argument("--timm-path", help="extra sys.path entry where timm is installed")
    ap.add_argument("--no-amp", action="store_true", help="float32 on CUDA (default: bf16 autocast)")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args(argv)

    from hopfield_lab.train import benchmark

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    official = None
    if args.official:
        co = _compare_tool()
        _, mixers, layers = co.import_official(args.official, args.timm_path)
        official = (co, mixers, layers)
    modes = [m for m in args.compile.split(",") if m]

    variants = []
    for family in args.models.split(","):
        if official:
            variants.append((family, "official", None))
            variants += [(family, "official", m) for m in args.compile_official.split(",") if m]
        variants.append((family, "ours", None))
        variants += [(family, "ours", m) for m in modes]

    best: dict[tuple, dict] = {}
    for r in range(args.rounds):
        for family, impl, mode in variants:
            model = build(impl, family, args.preset, official, args.token_mixing)
            if mode:
                model = torch.compile(model, **({} if mode == "default" else {"mode": mode}))
            t0 = time.perf_counter()
            res = benchmark(model, batch_size=args.batch, steps=args.steps, warmup=args.warmup,
                            amp=not args.no_amp, device=device)
            res["wall_s"] = time.perf_counter() - t0
            key = (family, impl, mode)
            label = f"{impl}" + (f"+compile:{mode}" if mode else "")
            print(f"round {r}: {family:13s} {label:36s} {res['img_per_s']:10.0f} img/s "
                  f"({res['ms_per_step']:.2f} ms/step, {res['wall_s']:.0f} s)", flush=True)
            if key not in best or res["img_per_s"] > best[key]["img_per_s"]:
                best[key] = dict(res, family=family, impl=impl, compile_mode=mode)
            del model
            if device == "cuda":
                torch.cuda.empty_cache()

    rows = list(best.values())
    dev = rows[0]["device"] if rows else device
    print(f"\n{dev}, torch {torch.__version__}, batch {args.batch}, preset {args.preset}, "
          f"amp {'off' if args.no_amp else 'bf16 (CUDA)'}")
    print(f"{'model':13s} {'variant':36s} {'img/s':>10s} {'vs official eager':>18s}")
    for family in args.models.split(","):
        base = best.get((family, "official", None))
        for (fam, impl, mode), res in best.items():
            if fam != family:
                continue
            label = f"{impl}" + (f"+compile:{mode}" if mode else "")
            ratio = f"{res['img_per_s'] / base['img_per_s']:.2f}x" if base else "-"
            print(f"{family:13s} {label:36s} {res['img_per_s']:10.0f} {ratio:>18s}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": dev, "torch": torch.__version__, "args": vars(args),
                                               "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
