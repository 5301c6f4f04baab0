"""How symmetric are the two-layer MLPs of a (trained) Mixer?

Every token and channel MLP of a Mixer computes ``W2 GELU(W1 x)`` with W1 of shape (hidden, in)
and W2 of shape (in, hidden). The HAM picture (book chapter 6) asks for feedback = feedforward,
W2 = W1ᵀ: the SymMixer has it by construction, the AsymMixer has W2 = W1ᵀ + V, and the paper's
claim is that a vanilla Mixer trained freely ends up far from it. For one MLP we measure
(all scale-free, computed in float64):

``cosine``
    cos∠(W2, W1ᵀ) = <W2, W1ᵀ>_F / (‖W1‖_F ‖W2‖_F) ∈ [−1, 1]: 1 for tied weights (SymMixer, up to
    rounding), ≈ 0 for independent random weights (|cos| ~ 1/sqrt(in·hidden)).
``rel_distance``
    ‖W2 − W1ᵀ‖_F / (‖W1‖_F + ‖W2‖_F) ∈ [0, 1]: 0 iff tied, 1 iff W2 = −c W1ᵀ (c > 0); about
    1/√2 for independent weights of equal norms.
``norm_ratio``
    ‖W2‖_F / ‖W1‖_F (the tied case has 1; with GELU scale matters, so this is reported apart).
``product_sym_share``
    for the linearised map P = W2 W1 (in × in), the share of its symmetric part,
    ‖(P + Pᵀ)/2‖²_F / ‖P‖²_F ∈ [0, 1] (the symmetric and antisymmetric parts are orthogonal):
    1 for a symmetric P (tied weights give P = W1ᵀW1), ≈ 1/2 for a random P, 0 if antisymmetric.
``product_psd_share``
    Σ λ₊ / Σ |λ| over the eigenvalues λ of (P + Pᵀ)/2: 1 when the symmetric part is positive
    semi-definite (tied weights), ≈ 1/2 for random weights (only with ``spectral=True``).
``norm_v``, ``v_ratio`` (AsymMixer only)
    ‖V‖_F and ‖V‖_F / ‖A‖_F for the symmetry-breaking weight V.

:func:`symmetry_report` returns one dict per block and branch, with plain Python numbers (JSON-
ready); :func:`summarize` averages it per branch.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["mlp_weights", "pair_metrics", "symmetry_report", "summarize", "METRICS"]

METRICS = ("cosine", "rel_distance", "norm_ratio", "product_sym_share", "product_psd_share")


def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        if hasattr(model, "_orig_mod"):      # torch.compile
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP / DataParallel
            model = model.module
        else:
            return model


def mlp_weights(mlp: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(W1 (hidden, in), W2 (in, hidden), V or None) of one two-layer MLP, ours or the official code's."""
    if hasattr(mlp, "w1") and hasattr(mlp, "w2"):          # hopfield_lab.mixer MLPs
        return mlp.w1, mlp.w2, getattr(mlp, "breaking", None)
    kind = type(mlp).__name__
    if kind == "sMlp":                                     # official tied MLP: fc2 = A
        A = mlp.fc2.weight
        return A, A.t(), None
    if kind == "aMlp":                                     # official asymmetric MLP: fc1 = A, fc2 = V
        A, V = mlp.fc1.weight, mlp.fc2.weight
        return A, A.t() + V, V
    if hasattr(mlp, "fc1") and hasattr(mlp, "fc2"):        # free MLP (vMlp, timm Mlp)
        return mlp.fc1.weight, mlp.fc2.weight, None
    raise TypeError(f"cannot read the two weights of a {kind}: expected fc1/fc2 linears or w1/w2")


@torch.no_grad()
def pair_metrics(W1: torch.Tensor, W2: torch.Tensor, V: torch.Tensor | None = None,
                 spectral: bool = True) -> dict[str, float]:
    """The metrics of the module docstring for W1 (hidden, in) and W2 (in, hidden); plain floats."""
    if W1.ndim != 2 or W2.ndim != 2 or W2.shape != W1.t().shape:
        raise ValueError(f"expected W1 (hidden, in) and W2 (in, hidden), got {tuple(W1.shape)} and "
                         f"{tuple(W2.shape)}")
    W1 = W1.detach().to("cpu", torch.float64)
    W2 = W2.detach().to("cpu", torch.float64)
    n1, n2 = torch.linalg.norm(W1), torch.linalg.norm(W2)
    out = {
        "in_features": int(W1.shape[1]),
        "hidden_features": int(W1.shape[0]),
        "norm_w1": float(n1),
        "norm_w2": float(n2),
    }
    if n1 == 0 or n2 == 0:
        nan = float("nan")
        out.update(cosine=nan, rel_distance=nan, norm_ratio=nan, product_sym_share=nan, product_psd_share=nan)
    else:
        cos = float((W2 * W1.t()).sum() / (n1 * n2))
        out["cosine"] = max(-1.0, min(1.0, cos))
        out["rel_distance"] = float(torch.linalg.norm(W2 - W1.t()) / (n1 + n2))
        out["norm_ratio"] = float(n2 / n1)
        P = W2 @ W1                                                     # (in, in)
        sym = 0.5 * (P + P.t())
        pn = float((P * P).sum())
        out["product_sym_share"] = float((sym * sym).sum()) / pn if pn > 0 else float("nan")
        if spectral:
            lam = torch.linalg.eigvalsh(sym)
            total = float(lam.abs().sum())
            out["product_psd_share"] = float(lam.clamp(min=0).sum()) / total if total > 0 else float("nan")
        else:
            out["product_psd_share"] = float("nan")
    if V is not None:
        nv = float(torch.linalg.norm(V.detach().to("cpu", torch.float64)))
        out["norm_v"] = nv
        out["v_ratio"] = nv / float(n1) if n1 > 0 else float("nan")
    return out


def symmetry_report(model: nn.Module, spectral: bool = True) -> list[dict]:
    """Symmetry metrics of every block's token and channel MLP of a Mixer (ours or official).

    Returns ``[{"block": i, "branch": "tokens"|"channels", "mlp": class name, "in_features",
    "hidden_features", "norm_w1", "norm_w2", "cosine", "rel_distance", "norm_ratio",
    "product_sym_share", "product_psd_share"[, "norm_v", "v_ratio"]}, ...]``, ordered by block
    then branch; plain ints/floats/strings (``json.dumps`` works; NaN only for all-zero weights).
    ``spectral=False`` skips the eigenvalues (``product_psd_share`` is then NaN).
    """
    model = _unwrap(model)
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise TypeError(f"{type(model).__name__} has no .blocks: symmetry_report expects a Mixer "
                        "(hopfield_lab.create_model(...) or the official MlpMixer)")
    rows = []
    for i, block in enumerate(blocks):
        for branch in ("tokens", "channels"):
            mlp = getattr(block, f"mlp_{branch}", None)
            if mlp is None:
                raise TypeError(f"block {i} ({type(block).__name__}) has no mlp_{branch}")
            W1, W2, V = mlp_weights(mlp)
            rows.append({"block": i, "branch": branch, "mlp": type(mlp).__name__,
                         **pair_metrics(W1, W2, V, spectral=spectral)})
    return rows


def summarize(report: Iterable[dict], metrics: Iterable[str] = METRICS) -> dict[str, dict[str, float]]:
    """Mean of each metric over blocks, per branch and overall: ``{"tokens": {...}, "channels": {...}, "all": {...}}``."""
    report = list(report)
    out: dict[str, dict[str, float]] = {}
    for group in ("tokens", "channels", "all"):
        rows = [r for r in report if group == "all" or r["branch"] == group]
        out[group] = {}
        for m in metrics:
            vals = [r[m] for r in rows if m in r and not math.isnan(r[m])]
            out[group][m] = sum(vals) / len(vals) if vals else float("nan")
    return out
