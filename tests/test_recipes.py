"""The paper recipe: the official training command's hyperparameters, lr scaling, transforms, mixup/cutmix maths."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hopfield_lab import recipes
from hopfield_lab.recipes import PAPER, MixupCutmix, paper_recipe, scaled_lr, soft_target_cross_entropy


def _torchvision_ok() -> bool:
    try:
        recipes.require_torchvision()
        return True
    except ImportError:
        return False


HAS_TV = _torchvision_ok()
needs_tv = pytest.mark.skipif(
    not HAS_TV, reason="torchvision (transforms.v2) does not import with this torch; `pip install torchvision` matching torch"
)


def test_paper_hyperparameters_match_the_official_configuration():
    r = PAPER
    assert (r.img_size, r.patch_size, r.embed_dim, r.num_blocks, r.mlp_ratio) == (224, 16, 512, 8, (0.5, 4.0))
    assert r.num_tokens == 196
    assert r.epochs == 300 and r.warmup_epochs == 20 and r.schedule == "cosine"  # AdamW: the trainer's only optimiser
    assert r.batch_size == 4 * 96
    assert r.weight_decay == 0.05 and r.label_smoothing == 0.1 and r.drop_path_rate == 0.1
    assert (r.randaugment_ops, r.randaugment_magnitude, r.randaugment_levels) == (2, 9, 10)
    assert r.random_erasing == 0.25
    assert (r.mixup_alpha, r.cutmix_alpha, r.switch_prob, r.mix_prob) == (0.8, 1.0, 0.5, 1.0)
    assert r.mean == r.std == (0.5, 0.5, 0.5) and r.crop_pct == 0.875
    # the official command: --lr-base 5e-4 --lr-base-size 512, linear scaling, 4 GPUs x 96
    assert math.isclose(r.lr(), 3.75e-4, rel_tol=1e-12)


@pytest.mark.parametrize("batch", [1, 96, 384, 512, 1024, 4096])
def test_lr_scales_linearly_with_the_global_batch(batch):
    assert math.isclose(PAPER.lr(batch), 5e-4 * batch / 512, rel_tol=1e-12)
    assert math.isclose(scaled_lr(1.0, 2 * batch, 512) / scaled_lr(1.0, batch, 512), 2.0)


def test_overrides_and_bad_fields():
    r = paper_recipe(epochs=10, batch_size=128)
    assert r.epochs == 10 and math.isclose(r.lr(), 1.25e-4) and r.weight_decay == PAPER.weight_decay
    with pytest.raises(TypeError, match="Unknown recipe field"):
        paper_recipe(learning_rate=1.0)
    with pytest.raises(ValueError, match="positive"):
        scaled_lr(5e-4, 0)
    assert r.as_dict()["mean"] == [0.5, 0.5, 0.5]


def test_paper_models_have_the_official_parameter_counts():
    from hopfield_lab.mixer import create_model

    # the official SymMixer S/16 with 10 classes has 10,795,530 parameters (official code, models/mixers.py)
    m = create_model(PAPER.model_name("symmixer"), **PAPER.model_kwargs(10))
    assert sum(p.numel() for p in m.parameters()) == 10_795_530
    with pytest.raises(ValueError, match="Unknown model family"):
        PAPER.model_name("resnet")


@pytest.mark.skipif(HAS_TV, reason="torchvision is installed here; the missing-torchvision error cannot be shown")
def test_missing_torchvision_gives_a_clear_error():
    with pytest.raises(ImportError, match="pip install torchvision"):
        recipes.paper_transforms()


@needs_tv
def test_paper_transforms_shapes_and_normalisation():
    train_tf, test_tf = recipes.paper_transforms(paper_recipe(img_size=64))
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    x = train_tf(img)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    y = test_tf(img)
    assert y.shape == (3, 64, 64)
    # constant grey 255 * 0.5 maps to ~0 after (x - 0.5) / 0.5; resizing keeps a constant image constant
    grey = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    assert torch.allclose(test_tf(grey), torch.ones(3, 64, 64), atol=1e-5)


def _batch(B=16, K=10, C=3, H=12, W=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    return x, y


@pytest.mark.parametrize("mode", ["mixup", "cutmix", "both", "off"])
def test_soft_targets_are_probability_vectors(mode):
    alphas = {"mixup": (0.8, 0.0), "cutmix": (0.0, 1.0), "both": (0.8, 1.0), "off": (0.0, 0.0)}[mode]
    mix = MixupCutmix(10, mixup_alpha=alphas[0], cutmix_alpha=alphas[1], label_smoothing=0.1)
    torch.manual_seed(1)
    for seed in range(20):
        x, y = _batch(seed=seed)
        xm, t = mix(x, y)
        assert xm.shape == x.shape and t.shape == (16, 10)
        assert torch.allclose(t.sum(1), torch.ones(16), atol=1e-6)  # label mass sums to 1
        assert (t >= 0).all()
        assert 0.0 <= mix.last_lam <= 1.0
        if mode != "both":
            assert mix.last_mode == ("none" if mode == "off" else mode)


def test_mixup_blends_images_and_targets_with_the_same_lambda():
    mix = MixupCutmix(10, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    x, y = _batch()
    torch.manual_seed(3)
    xm, t = mix(x, y)
    lam = mix.last_lam
    assert torch.allclose(xm, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
    expected = lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(y.flip(0), 10).float()
    assert torch.allclose(t, expected, atol=1e-6)


def test_cutmix_pastes_a_box_whose_area_fraction_is_one_minus_lambda():
    mix = MixupCutmix(10, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    torch.manual_seed(0)
    for seed in range(10):
        x, y = _batch(H=20, W=24, seed=seed)
        y = torch.arange(16) % 10  # y != y.flip(0) for every row
        xm, t = mix(x, y)
        lam = mix.last_lam
        from_self = (xm == x).all(1)  # (B, H, W)
        from_partner = (xm == x.flip(0)).all(1)
        assert (from_self | from_partner).all()  # every pixel comes from one of the two images
        pasted = (~from_self[0]).double().mean().item()
        assert math.isclose(pasted, 1 - lam, abs_tol=1e-9)  # lambda corrected to the pasted area
        assert torch.allclose(t[torch.arange(16), y], torch.full((16,), lam), atol=1e-6)


def test_label_smoothing_values_and_loss_identities():
    K, eps = 10, 0.1
    mix = MixupCutmix(K, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.0, label_smoothing=eps)
    x, y = _batch(K=K)
    xm, t = mix(x, y)
    assert torch.equal(xm, x) and mix.last_mode == "none"
    assert torch.allclose(t[torch.arange(16), y], torch.full((16,), 1 - eps + eps / K))
    assert torch.allclose(t.sum(1), torch.ones(16))
    logits = torch.randn(16, K)
    # soft-target CE of smoothed one-hot targets == PyTorch's label-smoothed CE
    assert torch.allclose(soft_target_cross_entropy(logits, t), F.cross_entropy(logits, y, label_smoothing=eps), atol=1e-6)
    # and it is linear in the targets: mixed targets give the lambda-mixed losses
    mix2 = MixupCutmix(K, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=eps)
    torch.manual_seed(5)
    _, t2 = mix2(x, y)
    lam = mix2.last_lam
    ce = lambda lab: F.cross_entropy(logits, lab, label_smoothing=eps)  # noqa: E731
    assert torch.allclose(soft_target_cross_entropy(logits, t2), lam * ce(y) + (1 - lam) * ce(y.flip(0)), atol=1e-6)


def test_mixing_runs_on_the_recipe_and_rejects_bad_input():
    mix = PAPER.mixup_cutmix(10)
    assert isinstance(mix, MixupCutmix) and mix.label_smoothing == 0.1
    assert paper_recipe(mixup_alpha=0.0, cutmix_alpha=0.0).mixup_cutmix(10) is None
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        mix(torch.zeros(4, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="float"):
        mix(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="same shape"):
        soft_target_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))


# ---------------------------------------------------------------------------------------------
# the recipe in the trainer
# ---------------------------------------------------------------------------------------------
def test_train_config_is_a_valid_trainconfig_with_the_official_model():
    from hopfield_lab import train as T

    cfg = T.TrainConfig(**PAPER.train_config("asymmixer", "cifar10", lam=1e-2)).validate()
    assert cfg.model == "asymmixer_s16_224" and cfg.epochs == 300 and cfg.batch_size == 384
    assert math.isclose(cfg.lr, 3.75e-4) and cfg.weight_decay == 0.05 and cfg.schedule == "cosine"
    assert cfg.warmup_epochs == 20 and cfg.label_smoothing == 0.0  # smoothing lives in the mixed targets
    assert paper_recipe(mixup_alpha=0, cutmix_alpha=0).train_config()["label_smoothing"] == 0.1
    assert math.isclose(PAPER.train_config(batch_size=256)["lr"], 2.5e-4)  # rescaled with the batch
    assert PAPER.train_config(lr=1e-3, batch_size=256)["lr"] == 1e-3  # an explicit lr wins
    model = T.build_model(cfg, num_classes=10, in_chans=3, img_size=224)
    assert sum(p.numel() for p in model.parameters()) == 19_585_546  # the official AsymMixer S/16
    assert max(m.p for m in model.modules() if type(m).__name__ == "DropPath") == 0.1


def _small_transform(u8: torch.Tensor) -> torch.Tensor:
    """Torch-only stand-in for the torchvision pipeline: random flip, scale to [-1, 1]."""
    x = u8.float() / 127.5 - 1.0
    return x.flip(-1) if torch.rand(()) < 0.5 else x


def _trainer_takes_soft_targets() -> bool:
    from hopfield_lab import train as T

    m = torch.nn.Linear(4, 3)
    try:
        T.train_step(m, torch.randn(5, 4), torch.full((5, 3), 1 / 3), torch.optim.SGD(m.parameters(), lr=0.1))
        return True
    except RuntimeError:
        return False


def test_paper_loaders_train_and_resume_exactly(tmp_path):
    from hopfield_lab import train as T

    soft = _trainer_takes_soft_targets()  # mixup/cutmix needs soft-target support in train_step
    tiny = paper_recipe(img_size=16, patch_size=4, embed_dim=16, num_blocks=2, epochs=2, batch_size=16, warmup_epochs=1)
    cfg = tiny.train_config("paramixer", "synthetic", dataset_options=dict(n=48, n_test=16, size=16, num_classes=4),
                            device="cpu", progress=False, symmetry_metrics=False)
    loaders = recipes.paper_loaders(tiny, transforms=(_small_transform, _small_transform), num_workers=0, mixing=soft)
    torch.manual_seed(0)
    full = T.train(dict(cfg, out_dir=str(tmp_path / "full")), loaders=loaders)
    T.train(dict(cfg, out_dir=str(tmp_path / "part"), stop_after_epochs=1), loaders=loaders)
    resumed = T.train(dict(cfg, out_dir=str(tmp_path / "part")), loaders=loaders)
    assert full.finished and full.n_train == 48 and full.img_size == 16
    losses = [r["train_loss"] for r in full.history]
    assert all(math.isfinite(v) for v in losses)
    assert [r["train_loss"] for r in resumed.history] == losses  # per-sample seeds + saved RNG: exact
    assert resumed.test_acc == full.test_acc


def test_one_warmup_rule_in_python_and_on_the_command_line(capsys):
    import json

    from hopfield_lab import cli

    assert PAPER.warmup() == 20 and PAPER.warmup(30) == pytest.approx(2.0) and PAPER.warmup(600) == pytest.approx(40)
    assert PAPER.train_config(epochs=30)["warmup_epochs"] == pytest.approx(2.0)
    assert PAPER.train_config(epochs=30, warmup_epochs=5)["warmup_epochs"] == 5  # an explicit value wins
    assert paper_recipe(epochs=10, warmup_epochs=1).train_config(epochs=30)["warmup_epochs"] == pytest.approx(3.0)
    for epochs in (30, 150):
        assert cli.main(["train", "--recipe", "paper", "--epochs", str(epochs), "--dry-run"]) == 0
        assert json.loads(capsys.readouterr().out)["warmup_epochs"] == PAPER.train_config(epochs=epochs)["warmup_epochs"]


def test_the_config_carries_the_recipe_and_gives_it_back(monkeypatch, capsys):
    import json

    from hopfield_lab import cli
    from hopfield_lab import train as T

    custom = paper_recipe(mixup_alpha=0.0, random_erasing=0.1, crop_scale=(0.5, 1.0), img_size=160)
    cfg = T.TrainConfig(**custom.train_config("symmixer", "synthetic")).validate()
    assert cfg.recipe == "paper" and cfg.recipe_overrides == {"crop_scale": [0.5, 1.0], "random_erasing": 0.1,
                                                              "mixup_alpha": 0.0}
    assert recipes.recipe_of(cfg) == custom                     # not PAPER re-resolved from its name
    assert recipes.recipe_of(T.TrainConfig(**PAPER.train_config())) == PAPER
    assert recipes.recipe_of(T.TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))) == custom  # via JSON
    assert T.TrainConfig(**PAPER.train_config()).recipe_overrides == {}
    # the trainer builds its loaders from that recipe
    seen = []
    monkeypatch.setattr(recipes, "require_torchvision", lambda: None)
    monkeypatch.setattr(recipes, "paper_loaders", lambda recipe, num_workers=None: seen.append(recipe))
    T.recipe_loaders(cfg)
    assert seen == [custom] and seen[0].mixup_cutmix(10).mixup_alpha == 0.0
    # on the command line: --recipe-overrides
    assert cli.main(["train", "--recipe", "paper", "--recipe-overrides", "mixup_alpha=0.0", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe_overrides"] == {"mixup_alpha": 0.0}
    for bad, match in (({"epochs": 5}, "set through the training options"), ({"mixup": 0}, "not \\['mixup'\\]")):
        with pytest.raises(ValueError, match=match):
            T.TrainConfig(**{**PAPER.train_config(), "recipe_overrides": bad}).validate()
    with pytest.raises(ValueError, match="need a recipe"):
        T.TrainConfig(recipe_overrides={"mixup_alpha": 0.0}).validate()


def test_the_recipe_has_no_unused_fields_and_uses_the_models_names():
    import dataclasses

    names = {f.name for f in dataclasses.fields(recipes.Recipe)}
    assert not names & {"optimizer", "warmup_lr", "min_lr", "dim", "depth", "drop_path"}
    from hopfield_lab.mixer import OVERRIDES

    assert set(recipes.MODEL_FIELDS) <= set(OVERRIDES) and set(recipes.PIPELINE_FIELDS) <= names
