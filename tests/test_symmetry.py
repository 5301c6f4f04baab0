"""Symmetry metrics of the two-layer MLPs: exact values on constructed weights, baselines, report format."""
import json
import math

import pytest
import torch
from torch import nn

import hopfield_lab as hl
from hopfield_lab.symmetry import pair_metrics, summarize, symmetry_report


def test_symmixer_is_exactly_symmetric():
    torch.manual_seed(0)
    rep = hl.symmetry_report(hl.create_model("symmixer_cifar_tiny"))
    assert len(rep) == 2 * 2 and [(r["block"], r["branch"]) for r in rep] == [
        (0, "tokens"), (0, "channels"), (1, "tokens"), (1, "channels")]
    for r in rep:
        assert r["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert r["rel_distance"] == 0.0 and r["norm_ratio"] == pytest.approx(1.0, abs=1e-12)
        assert r["product_sym_share"] == pytest.approx(1.0, abs=1e-12)
        assert r["product_psd_share"] == pytest.approx(1.0, abs=1e-9)   # P = A^T A is PSD
    assert rep[0]["in_features"] == 64 and rep[0]["hidden_features"] == 32
    assert rep[1]["in_features"] == 64 and rep[1]["hidden_features"] == 256


def test_hand_computed_example():
    W1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])             # (hidden 3, in 2)
    W2 = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0]])               # (in 2, hidden 3)
    m = pair_metrics(W1, W2)
    # <W2, W1^T> = 1 + 0 + 0 + 0 + 4 + 0 = 5, ||W1||^2 = 7, ||W2||^2 = 6
    assert m["cosine"] == pytest.approx(5 / math.sqrt(42))
    # W2 - W1^T = [[0, 1, -1], [0, 0, -1]] -> norm sqrt(3)
    assert m["rel_distance"] == pytest.approx(math.sqrt(3) / (math.sqrt(7) + math.sqrt(6)))
    assert m["norm_ratio"] == pytest.approx(math.sqrt(6 / 7))
    # P = W2 W1 = [[1, 2], [0, 4]]: sym = [[1, 1], [1, 4]] -> 19 / 21
    assert m["product_sym_share"] == pytest.approx(19 / 21)
    # eigenvalues of [[1,1],[1,4]] are (5 ± sqrt 13)/2, both > 0
    assert m["product_psd_share"] == pytest.approx(1.0)


def test_anti_tied_and_random_baselines():
    g = torch.Generator().manual_seed(0)
    W1 = torch.randn(300, 200, generator=g)
    anti = pair_metrics(W1, -W1.T)
    assert anti["cosine"] == pytest.approx(-1.0) and anti["rel_distance"] == pytest.approx(1.0)
    assert anti["product_sym_share"] == pytest.approx(1.0) and anti["product_psd_share"] == pytest.approx(0.0)
    rnd = pair_metrics(W1, torch.randn(200, 300, generator=g))
    assert abs(rnd["cosine"]) < 5 / math.sqrt(300 * 200)
    assert rnd["rel_distance"] == pytest.approx(1 / math.sqrt(2), abs=0.01)
    assert rnd["product_sym_share"] == pytest.approx(0.5, abs=0.03)
    assert rnd["product_psd_share"] == pytest.approx(0.5, abs=0.05)
    scaled = pair_metrics(3 * W1, 0.5 * W1.T)                            # scale-free except norm_ratio
    assert scaled["cosine"] == pytest.approx(1.0) and scaled["norm_ratio"] == pytest.approx(1 / 6)


def test_vanilla_init_is_far_from_symmetric_and_asym_reports_v():
    torch.manual_seed(0)
    rep = symmetry_report(hl.create_model("paramixer_cifar_small", num_blocks=1))
    for r in rep:
        assert abs(r["cosine"]) < 5 / math.sqrt(r["in_features"] * r["hidden_features"])
        assert r["product_sym_share"] < 0.6
        assert "norm_v" not in r
    m = hl.create_model("asymmixer_cifar_tiny")
    with torch.no_grad():
        for b in m.blocks:
            b.mlp_tokens.fc2.weight.zero_()                           # V = 0 on the token branch
    rep = symmetry_report(m)
    tok = [r for r in rep if r["branch"] == "tokens"]
    ch = [r for r in rep if r["branch"] == "channels"]
    assert all(r["cosine"] == pytest.approx(1.0, abs=1e-12) and r["norm_v"] == 0.0 for r in tok)
    V = m.blocks[0].mlp_channels.fc2.weight.double()
    A = m.blocks[0].mlp_channels.fc1.weight.double()
    W2 = A.T + V
    assert ch[0]["norm_v"] == pytest.approx(V.norm().item())
    assert ch[0]["v_ratio"] == pytest.approx((V.norm() / A.norm()).item())
    assert ch[0]["cosine"] == pytest.approx(((W2 * A.T).sum() / (W2.norm() * A.norm())).item())


def test_report_is_json_and_summary_averages():
    m = hl.create_model("vanillamixer_cifar_tiny")
    rep = symmetry_report(m)
    json.dumps(rep)                                                  # plain Python values
    assert all(isinstance(v, (int, float, str)) for r in rep for v in r.values())
    s = summarize(rep)
    tok = [r["cosine"] for r in rep if r["branch"] == "tokens"]
    assert s["tokens"]["cosine"] == pytest.approx(sum(tok) / len(tok))
    assert set(s) == {"tokens", "channels", "all"}
    assert math.isnan(symmetry_report(m, spectral=False)[0]["product_psd_share"])


def test_official_style_modules_and_wrappers():
    # classes named like the official ones, laid out like them: vMlp (fc1, fc2), sMlp (fc2 = A), aMlp
    class sMlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc2 = nn.Linear(6, 4, bias=False)

    class aMlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(6, 4, bias=False)
            self.fc2 = nn.Linear(4, 6, bias=False)

    class Block(nn.Module):
        def __init__(self, mlp):
            super().__init__()
            self.mlp_tokens, self.mlp_channels = mlp(), mlp()

    class Model(nn.Module):
        def __init__(self, mlp):
            super().__init__()
            self.blocks = nn.Sequential(Block(mlp), Block(mlp))

    rep = symmetry_report(Model(sMlp))
    assert all(r["cosine"] == pytest.approx(1.0, abs=1e-12) for r in rep)
    rep = symmetry_report(Model(aMlp))
    assert all("norm_v" in r for r in rep)

    class Wrapper(nn.Module):                                        # like DDP: .module
        def __init__(self, m):
            super().__init__()
            self.module = m

    assert len(symmetry_report(Wrapper(hl.create_model("symmixer_cifar_tiny")))) == 4
    with pytest.raises(TypeError, match="no .blocks"):
        symmetry_report(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="expected W1"):
        pair_metrics(torch.zeros(3, 2), torch.zeros(3, 2))
