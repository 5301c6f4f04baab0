"""Loading weights saved by the paper's official code (github.com/Toshihiro-Ota/paramixer).

Our :class:`hopfield_lab.mixer.Mixer` uses the official parameter names, so an official
``state_dict`` loads with plain ``model.load_state_dict(sd)``. :func:`load_official_state_dict`
adds what a user needs around it: it accepts a whole checkpoint file or dict as written by the
official ``train.py`` (timm's checkpoint saver: ``{"state_dict": ..., "arch": ...}``), strips a
DDP ``module.`` prefix, checks every key and shape first, and explains a mismatch (which keys are
missing or unexpected, what the checkpoint looks like: family, width, depth, tokens, classes).

One limit: ParaMixer and AsymMixer state_dicts have identical names and shapes (AsymMixer stores
A in ``fc1`` and V in ``fc2``), so they cannot be told apart from the weights alone; the
checkpoint's ``arch`` entry, when present, is checked against the model.
"""
from __future__ import annotations

import functools
import os
import re
from typing import Any, Mapping

import torch
from torch import nn

from .mixer import FAMILIES, Family

__all__ = ["load_official_state_dict", "describe_state_dict", "extract_state_dict"]

_CKPT_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")


def extract_state_dict(obj: Any, use_ema: bool = False) -> tuple[dict[str, torch.Tensor], str | None]:
    """The parameter dict inside ``obj`` (a state_dict, a checkpoint dict, or a file path), and its ``arch``."""
    if isinstance(obj, (str, os.PathLike)):
        obj = _load_file(obj)
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a state_dict, a checkpoint dict or a path, got {type(obj).__name__}")
    arch = obj.get("arch") if isinstance(obj.get("arch"), str) else None
    order = ("state_dict_ema", "model_ema", "state_dict", "model") if use_ema else _CKPT_KEYS
    for key in order:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    if not sd:
        raise ValueError("no tensors found in the given state_dict/checkpoint")
    return sd, arch


def _load_file(path: str | os.PathLike) -> Any:
    """``torch.load`` of a checkpoint file; a missing, empty, truncated or foreign file is a
    one-line error naming the file and what to do."""
    path = os.fspath(path)
    again = "download or copy the checkpoint again (or pass the state_dict itself)"
    try:
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path} is empty (0 bytes): {again}.")
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint file {path}: check the path.") from None
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        cause = exc
    except Exception as exc:  # RuntimeError (zip reader), EOFError, UnpicklingError, ...
        cause = exc
    text = " ".join(str(cause).split())[:160] or type(cause).__name__
    raise ValueError(f"{path} is not a readable PyTorch checkpoint (damaged, truncated or another format; "
                     f"{type(cause).__name__}: {text}): {again}.") from None


@functools.lru_cache(maxsize=None)
def _block_keys(family: Family) -> frozenset:
    """The state_dict keys of one block of ``family`` (from a 2x2 block: names do not depend on sizes)."""
    block = family.block_layer(2, 2, mlp_layer=family.mlp_layer)
    return frozenset(block.state_dict())


def describe_state_dict(sd: Mapping[str, torch.Tensor]) -> dict:
    """What an official-style state_dict holds: family guess, embed_dim, depth, tokens, hidden sizes, classes."""
    out: dict[str, Any] = {}
    if "stem.proj.weight" in sd:
        w = sd["stem.proj.weight"]
        out.update(embed_dim=w.shape[0], in_chans=w.shape[1], patch_size=tuple(w.shape[2:]))
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    out["num_blocks"] = len(blocks)
    if "head.weight" in sd:
        out["num_classes"] = sd["head.weight"].shape[0]
    if blocks:
        b = f"blocks.{min(blocks)}."
        layout = {k[len(b):] for k in sd if k.startswith(b)}
        fits = [f.name for f in FAMILIES.values() if _block_keys(f) == layout]
        if fits:
            out["family"] = " or ".join(fits)  # ParaMixer and AsymMixer blocks have the same keys
        norm_w = sd.get(b + "norm1.weight", sd.get(b + "norm.weight"))
        if norm_w is not None:
            out["norm_shape"] = tuple(norm_w.shape)
        first = sd.get(b + "mlp_tokens.fc1.weight", sd.get(b + "mlp_tokens.fc2.weight"))
        if first is not None:
            out["tokens_hidden"], out["seq_len"] = first.shape[0], first.shape[1]
        first = sd.get(b + "mlp_channels.fc1.weight", sd.get(b + "mlp_channels.fc2.weight"))
        if first is not None:
            out["channels_hidden"] = first.shape[0]
    return out


def _fmt(keys, n=8) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_official_state_dict(model: nn.Module, state_dict: Any, *, use_ema: bool = False,
                             strict: bool = True) -> nn.Module:
    """Load weights saved by the official code into ``model`` (in place; returns ``model``).

    ``state_dict``: a state_dict, a checkpoint dict (``state_dict`` / ``model`` / ``state_dict_ema``
    entries; ``use_ema`` prefers the EMA weights) or a path to a checkpoint file. Raises
    ``ValueError`` naming the missing / unexpected / mis-shaped keys and describing both sides when
    the checkpoint does not fit the model (with ``strict=False`` only shape mismatches raise).
    """
    sd, arch = extract_state_dict(state_dict, use_ema=use_ema)
    family = getattr(model, "family", None)
    fam = family.name if family is not None else "unknown"
    if arch is not None and family is not None:
        arch_fam = arch.split("_")[0]
        if arch_fam in FAMILIES and arch_fam != fam:
            raise ValueError(f"the checkpoint was trained as {arch!r} ({arch_fam}) but the model is a {fam}: "
                             f"build it with create_model({arch!r}, ...) or the matching *_ name")
    own = model.state_dict()
    missing = set(own) - set(sd)
    unexpected = set(sd) - set(own)
    shapes = {k: (tuple(sd[k].shape), tuple(own[k].shape)) for k in set(sd) & set(own)
              if sd[k].shape != own[k].shape}
    if shapes or (strict and (missing or unexpected)):
        lines = [f"the state_dict does not fit this {fam} model:"]
        if missing:
            lines.append(f"  missing in the state_dict ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            lines.append(f"  unexpected in the state_dict ({len(unexpected)}): {_fmt(unexpected)}")
        if shapes:
            lines.append("  shape mismatches (checkpoint vs model): "
                         + _fmt([f"{k} {a} vs {b}" for k, (a, b) in shapes.items()]))
        ck, mo = describe_state_dict(sd), describe_state_dict(own)
        if ck.get("family") and mo.get("family") and not (
                set(ck["family"].split(" or ")) & set(mo["family"].split(" or "))):
            lines.append(f"  the checkpoint looks like a {ck['family']}, the model is a {mo['family']}")
        lines.append(f"  checkpoint: {ck}" + (f", arch {arch!r}" if arch else ""))
        lines.append(f"  model:      {mo}")
        lines.append("  build the model with matching create_model(name, num_classes=..., img_size=..., "
                     "patch_size=..., embed_dim=..., num_blocks=...) overrides, and norm='tokens_channels' "
                     "(the official norm)")
        raise ValueError("\n".join(lines))
    model.load_state_dict(sd, strict=strict)
    return model
