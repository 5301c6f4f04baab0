"""Loading the official code's weights; equivalence with the official code when a checkout is given.

The equivalence tests need the official repository (github.com/Toshihiro-Ota/paramixer) and timm:
set ``PARAMIXER_SRC=/path/to/checkout`` (and, if timm is not on the path,
``PARAMIXER_TIMM_PATH=/dir/where/timm/is``); they skip otherwise. torchvision is stubbed when it
does not import (the Mixer models never use it). The official code is never part of this repo.
"""
import importlib.util
import io
import os
from pathlib import Path

import pytest
import torch

import hopfield_lab as hl
from hopfield_lab.mixer import FAMILIES
from hopfield_lab.official import describe_state_dict, load_official_state_dict


# ------------------------------------------------------------------ loader (no official code needed)
def _random_state(name, **kw):
    torch.manual_seed(1)
    src = hl.create_model(name, **kw)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_(0, 0.1)
    return src


@pytest.mark.parametrize("family", FAMILIES)
def test_roundtrip_through_a_saved_checkpoint(family, tmp_path):
    src = _random_state(f"{family}_cifar_tiny").eval()
    path = tmp_path / "ckpt.pth"  # the layout timm's checkpoint saver writes, with a DDP prefix
    torch.save({"epoch": 3, "arch": f"{family}_s16_224",
                "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = load_official_state_dict(hl.create_model(f"{family}_cifar_tiny").eval(), str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    dst2 = hl.create_model(f"{family}_cifar_tiny").eval()
    dst2.load_state_dict(src.state_dict())                            # plain load works too
    with torch.no_grad():
        assert torch.equal(src(x), dst2(x))


def test_mismatches_are_explained():
    sd = _random_state("paramixer_cifar_tiny").state_dict()
    with pytest.raises(ValueError, match=r"unexpected in the state_dict.*mlp_channels\.fc1\.weight") as e:
        load_official_state_dict(hl.create_model("symmixer_cifar_tiny"), sd)   # para keys into sym
    msg = str(e.value)
    assert "shape mismatches" in msg and "blocks.0.mlp_tokens.fc2.weight (64, 32) vs (32, 64)" in msg
    assert "looks like a paramixer or asymmixer, the model is a symmixer" in msg
    with pytest.raises(ValueError, match=r"shape mismatches.*blocks\.0\.norm\.weight \(64, 64\) vs \(64, 32\)") as e:
        load_official_state_dict(hl.create_model("paramixer_cifar_tiny", embed_dim=32), sd)
    assert "'embed_dim': 64" in str(e.value) and "'embed_dim': 32" in str(e.value)
    assert "looks like" not in str(e.value)
    with pytest.raises(ValueError, match="missing in the state_dict.*norm1"):
        load_official_state_dict(hl.create_model("vanillamixer_cifar_tiny"), sd)
    with pytest.raises(ValueError, match="trained as 'symmixer_s16_224'"):
        load_official_state_dict(hl.create_model("paramixer_cifar_tiny"),
                                 {"arch": "symmixer_s16_224", "state_dict": sd})
    with pytest.raises(ValueError, match="no tensors"):
        load_official_state_dict(hl.create_model("paramixer_cifar_tiny"), {"epoch": 1})
    # strict=False tolerates missing keys (e.g. a different head) but never wrong shapes
    part = {k: v for k, v in sd.items() if not k.startswith("head")}
    load_official_state_dict(hl.create_model("paramixer_cifar_tiny"), part, strict=False)


def test_describe_state_dict():
    d = describe_state_dict(hl.create_model("vanillamixer_cifar_small").state_dict())
    assert d["family"] == "vanillamixer" and d["embed_dim"] == 256 and d["num_blocks"] == 8
    assert d["seq_len"] == 64 and d["tokens_hidden"] == 128 and d["channels_hidden"] == 1024
    assert d["num_classes"] == 10 and d["patch_size"] == (4, 4) and d["norm_shape"] == (64, 256)
    assert describe_state_dict(hl.create_model("symmixer_cifar_tiny").state_dict())["family"] == "symmixer"


# ------------------------------------------------------------------ against the official code
def _compare_module():
    path = Path(__file__).resolve().parents[1] / "tools" / "compare_official.py"
    spec = importlib.util.spec_from_file_location("compare_official", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def official():
    src = os.environ.get("PARAMIXER_SRC")
    if not src:
        pytest.skip("PARAMIXER_SRC is not set: point it to a checkout of Toshihiro-Ota/paramixer "
                    "to compare with the official code")
    co = _compare_module()
    try:
        timm, mixers, layers = co.import_official(src, os.environ.get("PARAMIXER_TIMM_PATH"))
    except ImportError as err:
        pytest.skip(f"official code not importable: {err}")
    return co, timm, mixers, layers


@pytest.mark.parametrize("n_iter", [1, 2])
@pytest.mark.parametrize("family", [name for name, f in FAMILIES.items() if f.official is not None])
def test_official_state_dict_gives_same_logits(official, family, n_iter):
    co, _, mixers, layers = official
    cfg = dict(co.SMALL, **({"lam": 1e-2} if FAMILIES[family].has_breaking else {}))
    diff = co.compare_logits(mixers, layers, family, n_iter, cfg, batch=4, seed=n_iter)
    assert diff <= 1e-5, f"max |logits difference| {diff:.3e}"


def test_official_registry_matches_ours(official):
    co, timm, _, _ = official
    reg = co.compare_registry(timm)
    bad = {k: v for k, v in reg.items() if v not in ("ok", "not in the official registry")}
    assert not bad, bad
    assert sum(v == "ok" for v in reg.values()) >= 19


def test_official_s16_model_loads_via_registry(official):
    co, timm, _, _ = official
    torch.manual_seed(0)
    off = timm.create_model("symmixer_s16_224", num_classes=10).eval()
    co.randomize_(off, 0)
    buf = io.BytesIO()
    torch.save(off.state_dict(), buf)
    buf.seek(0)
    ours = load_official_state_dict(hl.create_model("symmixer_s16_224", num_classes=10).eval(),
                                    torch.load(buf, weights_only=True))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (off(x) - ours(x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("damage, says", [("empty", "is empty"), ("truncated", "not a readable PyTorch checkpoint"),
                                          ("garbage", "not a readable PyTorch checkpoint")])
def test_a_damaged_official_checkpoint_is_one_line(tmp_path, damage, says):
    model = hl.create_model("paramixer_cifar_tiny", img_size=16)
    good = tmp_path / "good.pth"
    torch.save({"state_dict": model.state_dict()}, good)
    blob = good.read_bytes()
    bad = tmp_path / "bad.pth"
    bad.write_bytes({"empty": b"", "truncated": blob[: len(blob) // 2], "garbage": bytes(range(256)) * 8}[damage])
    with pytest.raises(ValueError, match=says) as exc:
        load_official_state_dict(model, bad)
    assert str(bad) in str(exc.value) and "download or copy the checkpoint again" in str(exc.value)
    assert "\n" not in str(exc.value)
    with pytest.raises(FileNotFoundError, match="no checkpoint file .*missing.pth: check the path"):
        load_official_state_dict(model, tmp_path / "missing.pth")
