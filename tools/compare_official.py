"""Run the paper's official Mixer code side by side with hopfield_lab's and compare.

The official code (github.com/Toshihiro-Ota/paramixer) is imported at run time from a checkout you
point to; nothing of it lives in this repository. It needs ``timm`` (0.9.x); if ``torchvision`` is
missing or broken (timm imports it at start-up, the Mixer models never use it), a stub is
installed first. Example::

    git clone https://github.com/Toshihiro-Ota/paramixer /tmp/paramixer
    pip install --no-deps --target /tmp/timm_site timm==0.9.2
    python tools/compare_official.py /tmp/paramixer --timm-path /tmp/timm_site

What it checks, for every family (vanilla, Para, Sym, Asym) and n_iter in {1, 2}:

1. the official model's ``state_dict`` (after randomising every parameter, so that zero-initialised
   heads do not hide anything), saved with ``torch.save`` and loaded back, loads into our model of
   the same configuration through :func:`hopfield_lab.load_official_state_dict`;
2. the logits agree (float32, eval mode): the maximum absolute difference is printed;
3. every registered name of ours builds the same parameter names and shapes as the official
   registry entry of the same name (on the meta device, so even L/16 costs nothing);
4. optionally (``--speed``) a forward+backward step timed side by side.
"""
from __future__ import annotations

import argparse
import enum
import importlib
import importlib.abc
import importlib.machinery
import io
import json
import sys
import time
import types
from pathlib import Path

import torch

from hopfield_lab.mixer import FAMILIES as OUR_FAMILIES  # noqa: E402

#: our family -> (official block class, official mlp class), for the families the official code has
FAMILIES = {f.name: f.official for f in OUR_FAMILIES.values() if f.official is not None}
SMALL = dict(img_size=32, patch_size=4, num_blocks=2, embed_dim=64, num_classes=10)


# ---------------------------------------------------------------------------------------------
# importing the official code
# ---------------------------------------------------------------------------------------------
class _StubModule(types.ModuleType):
    """Any attribute is a placeholder class (fails loudly if actually used)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "InterpolationMode":
            value = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC BOX HAMMING LANCZOS")
        else:
            def _fail(*a, **k):
                raise RuntimeError(f"torchvision stub: {self.__name__}.{name} is not available")
            value = type(name, (), {"__init__": _fail, "__call__": _fail})
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0+stub"
        return module

    def exec_module(self, module):
        pass


def _torchvision_works() -> bool:
    try:
        import torchvision  # noqa: F401
        import torchvision.transforms  # noqa: F401
        return True
    except Exception:
        for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[k]
        return False


def import_official(src: str | Path, timm_path: str | Path | None = None):
    """Import the official ``models.mixers`` and ``models.layers`` from a checkout at ``src``.

    Returns ``(timm, mixers, layers)``. Raises ``ImportError`` with what to do when timm or the
    checkout is missing.
    """
    src = Path(src).expanduser().resolve()
    if not (src / "models" / "mixers.py").is_file():
        raise ImportError(f"{src} is not a checkout of Toshihiro-Ota/paramixer (no models/mixers.py)")
    if timm_path:
        sys.path.insert(0, str(Path(timm_path).expanduser().resolve()))
    if not _torchvision_works() and not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
    try:
        timm = importlib.import_module("timm")
    except Exception as err:
        raise ImportError(f"timm does not import ({err!r}): pip install --no-deps timm==0.9.2 "
                          "(into a scratch --target dir, then pass --timm-path)") from err
    # the checkout's package is called plain `models`; import it under that name from src only
    saved = sys.modules.pop("models", None)
    sys.path.insert(0, str(src))
    try:
        importlib.import_module("models")  # registers the official timm entry points
        mixers = importlib.import_module("models.mixers")
        layers = importlib.import_module("models.layers")
    finally:
        sys.path.remove(str(src))
        if saved is not None:
            sys.modules["models"] = saved
    return timm, mixers, layers


def official_model(mixers, layers, family: str, *, n_iter: int = 1, lam: float = 0.0, **cfg):
    """The official ``MlpMixer`` of a family with our config names (``lam`` -> ``lcoeff``)."""
    block, mlp = FAMILIES[family]
    return mixers.MlpMixer(block_layer=getattr(layers, block), mlp_layer=getattr(layers, mlp),
                           n_iter=n_iter, lcoeff=lam, **cfg)


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Overwrite every parameter with seeded random values (weights ~ their init scale, norms ~ 1 ± 0.2)."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        if "norm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.2 * noise)
        elif p.ndim <= 1 or "norm" in name:
            p.copy_(0.1 * noise)
        else:
            fan_in = p[0].numel()
            p.copy_(noise / fan_in ** 0.5)


def compare_logits(mixers, layers, family: str, n_iter: int, cfg: dict, batch: int = 4, seed: int = 0) -> float:
    """Max |logits_official − logits_ours| after loading the official (saved) state_dict into ours."""
    import hopfield_lab as hl
    from hopfield_lab.mixer import Mixer, model_config

    torch.manual_seed(seed)
    off = official_model(mixers, layers, family, n_iter=n_iter, **cfg).eval()
    randomize_(off, seed)
    buf = io.BytesIO()
    torch.save(off.state_dict(), buf)
    buf.seek(0)
    ours = Mixer(**model_config(f"{family}_cifar_tiny", n_iter=n_iter, **cfg)).eval()
    hl.load_official_state_dict(ours, torch.load(buf, weights_only=True))
    x = torch.randn(batch, cfg.get("in_chans", 3), *_pair(cfg["img_size"]),
                    generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return (off(x) - ours(x)).abs().max().item()


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def compare_registry(timm, names=None, num_classes: int = 10) -> dict[str, str]:
    """For each of our registry names: 'ok', 'not in the official registry', or what differs."""
    import hopfield_lab as hl

    out = {}
    for name in names or hl.list_models():
        if "cifar" in name:
            continue
        with torch.device("meta"):
            if not timm.is_model(name):
                out[name] = "not in the official registry"
                continue
            off = timm.create_model(name, num_classes=num_classes)
            ours = hl.create_model(name, num_classes=num_classes)
        a = {k: tuple(v.shape) for k, v in off.state_dict().items()}
        b = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        same_iter = all(getattr(x, "n_iter", None) == getattr(y, "n_iter", None)
                        for x, y in zip(off.blocks, ours.blocks))
        same_lam = float(getattr(off, "lcoeff", 0.0)) == ours.lam
        out[name] = "ok" if a == b and same_iter and same_lam else (
            f"keys/shapes equal: {a == b}, n_iter equal: {same_iter}, lambda equal: {same_lam}")
    return out


def time_step(model, x, y, steps: int = 5) -> float:
    """Seconds per forward+backward+SGD step (median of ``steps`` after one warm-up)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        if hasattr(model, "symmetry_penalty"):
            loss = loss + model.symmetry_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="path to a checkout of github.com/Toshihiro-Ota/paramixer")
    ap.add_argument("--timm-path", help="extra sys.path entry where timm is installed")
    ap.add_argument("--s16", action="store_true", help="also compare the 224-px S/16 models (slow on CPU)")
    ap.add_argument("--speed", action="store_true", help="time a training step of each, side by side")
    ap.add_argument("--speed-config", default="cifar_small", choices=["cifar_small", "cifar_tiny"],
                    help="configuration for --speed (32 px, patch 4)")
    ap.add_argument("--batch", type=int, default=64, help="batch for --speed")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)

    timm, mixers, layers = import_official(args.src, args.timm_path)
    import hopfield_lab as hl
    from hopfield_lab.mixer import model_config

    results: dict = {"torch": torch.__version__, "timm": timm.__version__, "logits_max_abs_diff": {}}
    configs = {"small": SMALL}
    if args.s16:
        configs["s16_224"] = dict(img_size=224, patch_size=16, num_blocks=8, embed_dim=512, num_classes=10)
    for cname, cfg in configs.items():
        for family in FAMILIES:
            for n_iter in (1, 2):
                extra = {"lam": 1e-2} if OUR_FAMILIES[family].has_breaking else {}
                d = compare_logits(mixers, layers, family, n_iter, dict(cfg, **extra), batch=2 if cname != "small" else 4)
                key = f"{cname}/{family}/n_iter={n_iter}"
                results["logits_max_abs_diff"][key] = d
                print(f"{key:40s} max |Δlogits| = {d:.3e}  {'OK' if d <= 1e-5 else 'FAIL'}")
    reg = compare_registry(timm)
    results["registry"] = reg
    absent = sorted(k for k, v in reg.items() if v == "not in the official registry")
    bad = {k: v for k, v in reg.items() if v not in ("ok", "not in the official registry")}
    print(f"registry: {sum(v == 'ok' for v in reg.values())}/{len(reg) - len(absent)} shared names build "
          f"identical parameter names, shapes, n_iter and lambda (ours only: {absent})"
          + (f"; differences: {bad}" if bad else ""))

    if args.speed:
        results["speed_s_per_step"] = {}
        torch.manual_seed(0)
        for family in FAMILIES:
            cfg = {k: v for k, v in model_config(f"{family}_{args.speed_config}").items()
                   if k in ("img_size", "patch_size", "num_blocks", "embed_dim", "num_classes")}
            off = official_model(mixers, layers, family, **cfg)
            ours = hl.create_model(f"{family}_{args.speed_config}")
            ours.load_state_dict(off.state_dict())
            x = torch.randn(args.batch, 3, 32, 32)
            y = torch.randint(0, 10, (args.batch,))
            t_off, t_ours = time_step(off, x, y), time_step(ours, x, y)
            t_off2 = time_step(off, x, y)  # again, to see drift
            t_off = min(t_off, t_off2)
            results["speed_s_per_step"][family] = {"official": t_off, "ours": t_ours}
            print(f"speed {family:13s} official {args.batch / t_off:8.0f} img/s   ours "
                  f"{args.batch / t_ours:8.0f} img/s   ratio {t_off / t_ours:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    worst = max(results["logits_max_abs_diff"].values())
    ok = worst <= 1e-5 and not bad
    print(f"worst max |Δlogits| = {worst:.3e} -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
