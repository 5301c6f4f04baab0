"""Demos of chapter 8 (training the Mixer family; symmetry of the trained weights).

Reading results (the JSON files of :func:`hopfield_lab.train.train` / ``python -m hopfield_lab sweep``):

* :func:`load_results` -- every result JSON of a folder, checked and sorted (family, n_iter, λ).
* :func:`results_table` / :func:`format_table` -- one row per run: model, λ, params, accuracy, img/s.
* :func:`settings_summary` -- hardware, data and training settings, read from the files themselves.

Figures (each draws into given axes or a new figure and returns the figure):

* :func:`plot_accuracy_vs_lambda` -- AsymMixer test accuracy against λ, with the other models as lines.
* :func:`plot_learning_curves` -- test accuracy (or any history key) per epoch.
* :func:`plot_symmetry_blocks` -- a symmetry metric per block and branch (cos∠(W2, W1ᵀ) by default).
* :func:`plot_symmetry_history` -- the block-mean of a metric over the epochs of training.

Live work: :func:`live_config` / :func:`quick_run` (a small run through :func:`hopfield_lab.train.train`),
:func:`make_widget` (pick an AsymMixer λ: its learning curve and weight symmetry against the other
models) and :func:`lambda_player`, the widget's static twin.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ..mixer import FAMILIES, family_of
from ..results import RunResult, format_lam, load_result

# ------------------------------------------------------------------------------------------ reading
def _breaks(result: dict) -> bool:
    """True for runs of a family with a symmetry-breaking weight (AsymMixer: the λ sweep)."""
    return family_of(result["model"]).has_breaking


def n_iter_of(result: dict) -> int:
    """Weight-shared iterations per block of a run (``config.model_overrides.n_iter``, default 1)."""
    over = (result.get("config") or {}).get("model_overrides") or {}
    return int(over.get("n_iter", 1))


def label(result: dict) -> str:
    """A short name of a run: ``"SymMixer"``, ``"AsymMixer λ=1e-02"``, ``"ParaMixer, n_iter 2"``."""
    fam = family_of(result["model"])
    text = fam.label
    if fam.has_breaking:
        lam = result.get("lam")
        text += f" λ={format_lam(lam)}" if lam is not None else ""
    if n_iter_of(result) != 1:
        text += f", n_iter {n_iter_of(result)}"
    return text


def _sort_key(r: dict):
    lam = r.get("lam")
    return (list(FAMILIES).index(family_of(r["model"]).name), n_iter_of(r), -1.0 if lam is None else float(lam),
            r.get("seed", 0), r["model"])


def load_results(directory, pattern: str = "*.json") -> list[dict]:
    """Read the result files of ``directory`` (non-recursive) as :class:`~hopfield_lab.results.RunResult`
    (older layouts upgraded), sorted by family, n_iter and λ.

    A missing folder gives an empty list (the chapter then says that no results exist). Files that
    are not training results, or of a model outside the registered families, are skipped with a
    warning; runs that did not finish (stopped or diverged) are skipped too. Each returned dict is
    the result's :meth:`~hopfield_lab.results.RunResult.to_dict` plus ``"path"``, ``"family"``,
    ``"n_iter"`` and ``"label"`` (:func:`_view`).
    """
    d = Path(directory)
    if not d.is_dir():
        return []
    out = []
    for path in sorted(d.glob(pattern)):
        try:
            result = load_result(path)
        except ValueError as exc:
            warnings.warn(f"{exc}; skipped")
            continue
        try:
            family_of(result.model)
        except ValueError:
            warnings.warn(f"{path}: model {result.model!r} is not in a registered family; skipped")
            continue
        if not result.finished:
            warnings.warn(f"{path}: run did not finish ({result.status}); skipped")
            continue
        out.append(_view(result, path=str(path)))
    return sorted(out, key=_sort_key)


def _view(result: RunResult, **extra) -> dict:
    """The plain dict the tables and figures read: the result plus its ``family``, ``n_iter`` and ``label``."""
    r = dict(result.to_dict(), **extra)
    r.update(family=family_of(result.model).name, n_iter=n_iter_of(r))
    r["label"] = label(r)
    return r


def results_table(results: Iterable[dict]) -> list[dict]:
    """One row per run: ``label, model, lam, n_iter, seed, params, epochs, test_acc, best_test_acc,
    img_per_s, device``."""
    rows = []
    for r in results:
        rows.append({
            "label": r.get("label") or label(r), "model": r["model"], "lam": r.get("lam"),
            "n_iter": n_iter_of(r), "seed": r.get("seed"), "params": r.get("params"),
            "epochs": r.get("epochs_done", r.get("epochs")), "test_acc": r["test_acc"],
            "best_test_acc": r.get("best_test_acc"), "img_per_s": r.get("img_per_s"),
            "device": r.get("device"),
        })
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width text table of :func:`results_table` rows (accuracies in %)."""
    head = f"{'run':<26} {'params':>9} {'epochs':>6} {'test acc':>8} {'best':>6} {'img/s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        params = f"{r['params'] / 1e6:.2f} M" if r.get("params") else "-"
        ips = f"{r['img_per_s']:,.0f}" if r.get("img_per_s") else "-"
        best = f"{100 * r['best_test_acc']:.1f}" if r.get("best_test_acc") is not None else "-"
        lines.append(f"{r['label']:<26} {params:>9} {r['epochs']!s:>6} {100 * r['test_acc']:>7.1f}% "
                     f"{best:>6} {ips:>8}")
    return "\n".join(lines)


def _distinct(values) -> str:
    vals = []
    for v in values:
        if v not in vals:
            vals.append(v)
    return " / ".join(str(v) for v in vals) if vals else "unknown"


def settings_summary(results: Sequence[dict]) -> dict[str, str]:
    """Hardware, data and training settings of a set of runs, as read from their JSON files.

    Returns ``{"runs", "hardware", "data", "training"}`` strings; a setting that differs between
    runs is listed with all its values (``a / b``).
    """
    if not results:
        return {"runs": "no result files", "hardware": "-", "data": "-", "training": "-"}
    cfg = [r.get("config", {}) for r in results]
    hw = (f"{_distinct(r.get('device') for r in results)} x{_distinct(r.get('world_size', 1) for r in results)}"
          f", torch {_distinct(r.get('torch_version') for r in results)}"
          f", autocast {_distinct(r.get('amp') or 'off' for r in results)}"
          f", torch.compile {_distinct(c.get('compile', False) for c in cfg)}")
    data = (f"{_distinct(r.get('dataset') for r in results)}: {_distinct(r.get('n_train') for r in results)} train /"
            f" {_distinct(r.get('n_test') for r in results)} test images,"
            f" {_distinct(r.get('img_size') for r in results)} px")
    aug = []
    for c in cfg:
        a = []
        if c.get("crop_padding"):
            a.append(f"{c.get('pad_mode', 'reflect')}-pad-{c['crop_padding']} crop")
        if c.get("flip"):
            a.append("flip")
        aug.append(" + ".join(a) or "none")
    train = (f"{_distinct(r.get('epochs') for r in results)} epochs, batch {_distinct(c.get('batch_size') for c in cfg)},"
             f" AdamW lr {_distinct(c.get('lr') for c in cfg)} ({_distinct(c.get('schedule') for c in cfg)}),"
             f" weight decay {_distinct(c.get('weight_decay') for c in cfg)},"
             f" label smoothing {_distinct(c.get('label_smoothing') for c in cfg)},"
             f" augmentation {_distinct(aug)}, seeds {_distinct(r.get('seed') for r in results)}")
    finished = _distinct((r.get("finished_at") or "?")[:10] for r in results)
    return {"runs": f"{len(results)} runs, finished {finished}", "hardware": hw, "data": data, "training": train}


def lambda_curve(results: Sequence[dict], n_iter: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(lams, test_accs)`` of the AsymMixer runs with ``n_iter``, sorted by λ (seeds averaged)."""
    by_lam: dict[float, list[float]] = {}
    for r in results:
        if _breaks(r) and n_iter_of(r) == n_iter and r.get("lam") is not None:
            by_lam.setdefault(float(r["lam"]), []).append(float(r["test_acc"]))
    lams = np.array(sorted(by_lam))
    return lams, np.array([np.mean(by_lam[l]) for l in lams])


def reference_accuracies(results: Sequence[dict], n_iter: int = 1) -> dict[str, float]:
    """Mean test accuracy per family without a breaking weight (runs with ``n_iter``): ``{family: acc}``."""
    acc: dict[str, list[float]] = {}
    for r in results:
        if not _breaks(r) and n_iter_of(r) == n_iter:
            acc.setdefault(family_of(r["model"]).name, []).append(float(r["test_acc"]))
    return {f: float(np.mean(v)) for f, v in acc.items()}


# ------------------------------------------------------------------------------------------ figures
def _ax(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def plot_accuracy_vs_lambda(results: Sequence[dict], ax=None, n_iter: int = 1, title: Optional[str] = None):
    """AsymMixer test accuracy against λ (symlog axis, so λ = 0 shows), the other families as
    horizontal lines. Returns the figure."""
    ax = _ax(ax, (6.4, 4.2))
    lams, accs = lambda_curve(results, n_iter)
    if len(lams):
        fam = next(family_of(r["model"]) for r in results if _breaks(r))
        ax.plot(lams, 100 * accs, "o-", color=fam.color, label=f"{fam.label}(λ)")
        positive = lams[lams > 0]
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1e-6)
    for name, acc in reference_accuracies(results, n_iter).items():
        fam = FAMILIES[name]
        ax.axhline(100 * acc, ls="--", color=fam.color, label=f"{fam.label}: {100 * acc:.1f} %")
    ax.set(xlabel="symmetry-breaking penalty λ (symlog scale)", ylabel="test accuracy (%)",
           title=title or "Test accuracy against the penalty λ")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure


def _color(r: dict, results: Sequence[dict]):
    """One colour per family; the runs with a breaking weight (the λ sweep) shaded light to dark red
    in the order given."""
    sweep = [q for q in results if _breaks(q)]
    if _breaks(r) and len(sweep) > 1:
        import matplotlib

        return matplotlib.colormaps["Reds"](0.35 + 0.6 * sweep.index(r) / (len(sweep) - 1))
    return family_of(r["model"]).color


def _line_style(r: dict, results: list[dict], highlight: Optional[str]):
    """Colour (:func:`_color`), label and line width of run ``r`` among ``results``; ``highlight``
    drawn thick."""
    lab = r.get("label") or label(r)
    lw = 2.5 if lab == highlight else (1.0 if highlight else 1.5)
    return _color(r, results), lab, lw


def plot_learning_curves(results: Sequence[dict], key: str = "test_acc", ax=None, title: Optional[str] = None,
                         highlight: Optional[str] = None):
    """One line per run: ``history[key]`` per epoch (accuracies in %). ``highlight`` (a label) is
    drawn thick, the others thin. Returns the figure."""
    ax = _ax(ax, (6.4, 4.2))
    pct = key.endswith("acc")
    for r in results:
        hist = [h for h in r["history"] if key in h]
        if not hist:
            continue
        color, lab, lw = _line_style(r, results, highlight)
        ax.plot([h["epoch"] for h in hist], [(100 if pct else 1) * h[key] for h in hist], lw=lw, color=color,
                label=lab, marker="o" if len(hist) < 15 else None, ms=3)
    ax.set(xlabel="epoch", ylabel=key.replace("_", " ") + (" (%)" if pct else ""),
           title=title or f"Learning curves: {key.replace('_', ' ')}")
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure


def symmetry_by_block(result: dict, metric: str = "cosine", epoch: Optional[int] = None) -> dict[str, np.ndarray]:
    """``{"tokens": (blocks,), "channels": (blocks,)}`` of a symmetry metric of one run.

    ``epoch=None`` uses the final report (``result["symmetry"]``), otherwise the entry of
    ``symmetry_history`` for that epoch.
    """
    if epoch is None:
        report = result.get("symmetry")
    else:
        report = next((e["report"] for e in result.get("symmetry_history") or [] if e["epoch"] == epoch), None)
    if not report:
        raise ValueError(f"run {result.get('label') or result.get('model')} has no symmetry report"
                         + (f" for epoch {epoch}" if epoch is not None else "")
                         + "; train with symmetry_metrics=True")
    out = {}
    for branch in ("tokens", "channels"):
        rows = sorted((r for r in report if r["branch"] == branch), key=lambda r: r["block"])
        out[branch] = np.array([r.get(metric, math.nan) for r in rows], dtype=float)
    return out


METRIC_LABELS = {
    "cosine": "cos∠(W2, W1ᵀ)",
    "rel_distance": "‖W2 − W1ᵀ‖ / (‖W1‖ + ‖W2‖)",
    "norm_ratio": "‖W2‖ / ‖W1‖",
    "product_sym_share": "symmetric share of W2 W1",
    "product_psd_share": "PSD share of sym(W2 W1)",
    "v_ratio": "‖V‖ / ‖A‖",
}


def plot_symmetry_blocks(results: Sequence[dict], metric: str = "cosine", axes=None, title: Optional[str] = None,
                         highlight: Optional[str] = None):
    """A symmetry metric per block, token branch (left) and channel branch (right), one line per run.
    Returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True, sharey=True)
    for r in results:
        try:
            m = symmetry_by_block(r, metric)
        except ValueError:
            continue
        color, lab, lw = _line_style(r, results, highlight)
        for ax, branch in zip(axes, ("tokens", "channels")):
            ax.plot(np.arange(len(m[branch])), m[branch], "o-", ms=3, lw=lw, color=color, label=lab)
    from matplotlib.ticker import MaxNLocator

    for ax, branch in zip(axes, ("tokens", "channels")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="block", ylabel=METRIC_LABELS.get(metric, metric),
               title=f"{branch} MLPs: {METRIC_LABELS.get(metric, metric)}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2, loc="best")
    if title:
        axes[0].figure.suptitle(title)
    return axes[0].figure


def plot_symmetry_history(results: Sequence[dict], metric: str = "cosine", ax=None, title: Optional[str] = None):
    """Block-mean of a symmetry metric (both branches) against the epoch, one line per run."""
    ax = _ax(ax, (6.4, 4.2))
    for r in results:
        hist = r.get("symmetry_history") or []
        if not hist:
            continue
        ep = [e["epoch"] for e in hist]
        vals = [np.nanmean([row.get(metric, math.nan) for row in e["report"]]) for e in hist]
        ax.plot(ep, vals, "o-", ms=3, color=_color(r, results), label=r.get("label") or label(r))
    ax.set(xlabel="epoch", ylabel=f"block mean of {METRIC_LABELS.get(metric, metric)}",
           title=title or "Weight symmetry during training")
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure


# ------------------------------------------------------------------------------------------ live runs
def live_config(model: str, lam: Optional[float] = None, n_iter: int = 1, quick: Optional[bool] = None,
                dataset: Optional[str] = None, epochs: Optional[int] = None, seed: int = 0, **fields):
    """A :class:`~hopfield_lab.train.TrainConfig` for a live run of ``model`` (a family name).

    Quick mode: the ``*_cifar_tiny`` preset (depth 2, C = 64) on scikit-learn's 8x8 digits with
    2x2 patches (16 tokens), 6 epochs, batch 64, lr 1e-2, 1-px crop jitter, on the CPU: a few
    seconds per run. Full mode: the ``*_cifar_small`` preset (depth 8, C = 256) on CIFAR-10 with
    the set-up of the GPU study (batch 512, lr 1e-3 one-cycle, pad-4 crop + flip), 30 epochs.
    ``fields`` override any :class:`TrainConfig` field.
    """
    from ..runtime import quick as _quick
    from ..train import TrainConfig

    fam = family_of(model).name
    q = _quick() if quick is None else quick
    over = dict(fields.pop("model_overrides", {}) or {})
    if n_iter != 1:
        over["n_iter"] = int(n_iter)
    if q:
        over.setdefault("img_size", 8)
        over.setdefault("patch_size", 2)
        cfg = dict(model=f"{fam}_cifar_tiny", dataset=dataset or "digits", epochs=epochs or 6, batch_size=64,
                   lr=1e-2, crop_padding=1, flip=False, device="cpu", progress=False)
    else:
        cfg = dict(model=f"{fam}_cifar_small", dataset=dataset or "cifar10", epochs=epochs or 30, batch_size=512,
                   lr=1e-3, crop_padding=4, flip=True, progress=True)
    cfg.update(lam=lam if family_of(fam).has_breaking else None, seed=seed, model_overrides=over)
    cfg.update(fields)
    return TrainConfig(**cfg)


def quick_run(model: str, lam: Optional[float] = None, n_iter: int = 1, **kw) -> dict:
    """Train one live run with :func:`live_config` and return the result dict, with ``family``,
    ``n_iter`` and ``label`` added (as :func:`load_results` adds them)."""
    from ..train import train

    return _view(train(live_config(model, lam=lam, n_iter=n_iter, **kw)))


# ------------------------------------------------------------------------------------------ widget
def _draw_selection(axes, results, selected: dict, metric: str):
    for ax in axes:
        ax.clear()
    others = [r for r in results if not _breaks(r) and r.get("n_iter", 1) == selected.get("n_iter", 1)]
    shown = others + [selected]
    lab = selected.get("label") or label(selected)
    plot_learning_curves(shown, "test_acc", ax=axes[0], highlight=lab, title=f"{lab}: test accuracy per epoch")
    plot_symmetry_blocks(shown, metric, axes=axes[1:], highlight=lab)
    lo = min([0.0] + [float(np.nanmin(symmetry_by_block(r, metric)[b])) for r in shown if r.get("symmetry")
                      for b in ("tokens", "channels")])
    for ax in axes[1:]:
        ax.set_ylim(lo - 0.05, 1.05)


def _asym_runs(results):
    runs = [r for r in results if _breaks(r) and r.get("lam") is not None]
    if not runs:
        raise ValueError("no AsymMixer runs with a λ among the results: the widget selects one of them")
    return sorted(runs, key=lambda r: (r.get("n_iter", 1), float(r["lam"])))


def make_widget(results: Sequence[dict], metric: str = "cosine"):
    """The chapter's interactive demo: choose an AsymMixer run by its λ and a symmetry metric; see
    its learning curve and the per-block symmetry of its weights next to the other models.

    ``results`` are :func:`load_results` (or :func:`quick_run`) dicts. Returns an ``ipywidgets.VBox``
    with attributes ``controls`` (``lam``, ``metric``), ``update()`` (the callback) and ``last``
    (``{"result", "label", "metric", "tokens", "channels"}``: the selected run and its metric per block).
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt

    runs = _asym_runs(results)
    options = [(r["label"], i) for i, r in enumerate(runs)]
    controls = {
        "lam": w.SelectionSlider(options=options, value=0, description="AsymMixer", continuous_update=False,
                                 layout=w.Layout(width="420px")),
        "metric": w.Dropdown(options=[(METRIC_LABELS[m], m) for m in ("cosine", "rel_distance", "norm_ratio",
                                                                       "product_sym_share", "product_psd_share")],
                             value=metric, description="metric"),
    }
    out = w.Output()
    box = w.VBox([w.HBox([controls["lam"], controls["metric"]]), out])
    box.controls = controls
    box.last = None

    def update(*_):
        sel = runs[controls["lam"].value]
        m = controls["metric"].value
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(16, 3.9), constrained_layout=True)
            _draw_selection(axes, results, sel, m)
            plt.show()
            plt.close(fig)
        per_block = symmetry_by_block(sel, m)
        box.last = {"result": sel, "label": sel["label"], "metric": m, **per_block}

    from ..viz import connect

    return connect(box, controls, update)


def lambda_player(results: Sequence[dict], metric: str = "cosine", interval: int = 900, dpi: int = 72):
    """Static twin of :func:`make_widget`: one frame per AsymMixer λ (same panels). Returns
    ``(player, labels)`` with the ``IPython.display.HTML`` player and the frame labels."""
    import matplotlib.pyplot as plt

    from .. import viz

    runs = _asym_runs(results)
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.9), constrained_layout=True)

    def update(i):
        _draw_selection(axes, results, runs[i], metric)
        return []

    update(0)
    return viz.animate(update, len(runs), fig, interval=interval, dpi=dpi), [r["label"] for r in runs]
