"""The paper's 224-px training recipe: hyperparameters, image transforms and batch mixing.

The official runs of :cite:`karakida2024hierarchical` train Mixer-S/16 models on CIFAR-10
upsampled to 224x224 for 300 epochs on 4 GPUs with a batch of 96 per GPU (the official training
command of the official code, github.com/Toshihiro-Ota/paramixer). This
module reproduces that configuration with PyTorch's own tools:

* :data:`PAPER` / :func:`paper_recipe` -- every hyperparameter in one frozen dataclass;
  :meth:`Recipe.lr` scales the learning rate linearly with the global batch
  :cite:`goyal2017accurate` (``5e-4 * batch / 512``, so 3.75e-4 at the official batch 384);
  :meth:`Recipe.train_config` gives the trainer's fields, :func:`recipe_of` the recipe back from
  them, and :func:`paper_loaders` the loaders.
* :func:`paper_transforms` -- the per-image train and test transforms built from
  ``torchvision.transforms.v2`` (random-resized crop, flip, RandAugment m9
  :cite:`cubuk2020randaugment`, normalisation, random erasing 0.25 :cite:`zhong2020random`).
  torchvision is imported lazily; without it a clear error says what to install.
* :class:`MixupCutmix` -- batch-level mixup :cite:`zhang2018mixup` (alpha 0.8) / cutmix
  :cite:`yun2019cutmix` (alpha 1.0) with label smoothing folded into the soft targets, written
  in plain torch so it runs on the GPU after the transfer; :func:`soft_target_cross_entropy` is
  the matching loss. (torchvision's own ``v2.MixUp`` / ``v2.CutMix`` do not smooth labels.)

Differences from the official timm pipeline, stated honestly: torchvision's RandAugment has no
per-op magnitude noise (timm's ``mstd0.5``) and a slightly different op list (no Invert /
SolarizeAdd); its magnitude scale is matched to timm's 0..10 levels by using 11 bins
(``magnitude=9`` of ``num_magnitude_bins=11`` = 90 % of each op's range, as timm's m9).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from ..mixer import FAMILIES

__all__ = [
    "Recipe",
    "PAPER",
    "RECIPES",
    "paper_recipe",
    "make_recipe",
    "recipe_of",
    "scaled_lr",
    "require_torchvision",
    "paper_transforms",
    "MixupCutmix",
    "soft_target_cross_entropy",
    "paper_loaders",
]


def scaled_lr(base_lr: float, global_batch: int, base_batch: int = 512) -> float:
    """Linear learning-rate scaling :cite:`goyal2017accurate`: ``base_lr * global_batch / base_batch``."""
    if global_batch < 1 or base_batch < 1:
        raise ValueError(f"Batch sizes must be positive, got global_batch={global_batch}, base_batch={base_batch}.")
    return base_lr * global_batch / base_batch


@dataclass(frozen=True)
class Recipe:
    """A complete training recipe. Defaults are the paper's official configuration (the training
    command of the official code, github.com/Toshihiro-Ota/paramixer, timm 0.9.2).

    Model: Mixer-S/16 at 224 px (``embed_dim`` 512, ``num_blocks`` 8, patch 16 -> 196 tokens, MLP
    ratios (0.5, 4)), ``drop_path_rate`` 0.1 (the model's own keyword names). Optimiser: AdamW,
    ``lr = base_lr * batch / base_batch``, weight decay 0.05, cosine schedule with a linear
    warm-up over ``warmup_epochs`` (timm's starts at 1e-6, ours at lr / steps: the same ramp up to
    a step). Data: random-resized crop (scale 0.08-1, bilinear or bicubic at random), horizontal
    flip, RandAugment (2 ops, magnitude 9 of 10), normalisation with mean = std = 0.5, random
    erasing (p 0.25, per-pixel Gaussian values); test: resize to ``img_size / crop_pct`` (bicubic)
    and centre crop. Batch: mixup alpha 0.8 or cutmix alpha 1.0 (one of the two per batch, 50/50),
    label smoothing 0.1 folded into the soft targets, soft-target cross-entropy.

    The recipe is one-way data: :meth:`train_config` turns it into the trainer's fields, with the
    recipe's two rescale rules (:meth:`lr` with the batch, :meth:`warmup` with the epochs), and
    :func:`recipe_of` rebuilds it from those fields (``recipe`` names the base of :data:`RECIPES`,
    ``recipe_overrides`` holds the data-pipeline fields that differ from it).
    """

    name: str = "paper"
    # model
    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 512
    num_blocks: int = 8
    mlp_ratio: tuple[float, float] = (0.5, 4.0)
    drop_path_rate: float = 0.1
    # optimisation
    epochs: int = 300
    batch_size: int = 384  # global: 4 GPUs x 96
    base_lr: float = 5e-4
    base_batch: int = 512
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup_epochs: int = 20
    label_smoothing: float = 0.1
    amp: bool = True
    # per-image augmentation
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    randaugment_levels: int = 10
    random_erasing: float = 0.25
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_pct: float = 0.875
    # batch mixing
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    # provenance
    notes: str = field(default="Karakida, Ota, Taki 2024, official train command (timm 0.9.2)", compare=False)

    def model_name(self, family: str) -> str:
        """The registry name the recipe's model is built from, e.g. ``"paramixer_s16_224"``.

        :meth:`model_kwargs` then sets the recipe's size (image, patch, width, depth, ratios),
        so the name only selects the family.
        """
        if family not in FAMILIES:
            raise ValueError(f"Unknown model family {family!r}; choose one of {', '.join(FAMILIES)}.")
        return f"{family}_s16_224"

    def model_kwargs(self, num_classes: int | None = None) -> dict:
        """Keyword overrides for :func:`hopfield_lab.mixer.create_model` (the recipe's fields of the same names)."""
        kw = {k: getattr(self, k) for k in MODEL_FIELDS}
        kw["mlp_ratio"] = tuple(self.mlp_ratio)
        if num_classes is not None:
            kw["num_classes"] = num_classes
        return kw

    def lr(self, batch_size: int | None = None) -> float:
        """Peak learning rate for a global batch (default: this recipe's), linearly scaled."""
        return scaled_lr(self.base_lr, self.batch_size if batch_size is None else batch_size, self.base_batch)

    def warmup(self, epochs: int | None = None) -> float:
        """Warm-up epochs for a run of ``epochs`` (default: this recipe's): the same fraction of the run,
        ``warmup_epochs * epochs / self.epochs`` (the paper's 20 of 300 become 2 of 30)."""
        return self.warmup_epochs if epochs is None else self.warmup_epochs * epochs / self.epochs

    @property
    def num_tokens(self) -> int:
        """Number of patches, ``(img_size // patch_size) ** 2`` (196 for 224 px, patch 16)."""
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}.")
        return (self.img_size // self.patch_size) ** 2

    @property
    def uses_mixing(self) -> bool:
        """True when mixup or cutmix is on (the loss then takes soft targets)."""
        return self.mix_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def mixup_cutmix(self, num_classes: int) -> "MixupCutmix | None":
        """The batch-level :class:`MixupCutmix` of this recipe, or None when mixing is off."""
        if not self.uses_mixing:
            return None
        return MixupCutmix(
            num_classes,
            mixup_alpha=self.mixup_alpha,
            cutmix_alpha=self.cutmix_alpha,
            prob=self.mix_prob,
            switch_prob=self.switch_prob,
            label_smoothing=self.label_smoothing,
        )

    def pipeline_overrides(self) -> dict:
        """The data-pipeline fields (:data:`PIPELINE_FIELDS`) that differ from the base recipe
        ``RECIPES[self.name]``, as plain data (tuples become lists): the ``recipe_overrides`` of
        :meth:`train_config`."""
        base = RECIPES[self.name]
        return {k: _plain(getattr(self, k)) for k in PIPELINE_FIELDS if getattr(self, k) != getattr(base, k)}

    def train_config(self, family: str = "paramixer", dataset: str = "cifar10", **overrides) -> dict:
        """Fields of :class:`hopfield_lab.train.TrainConfig` for this recipe (``TrainConfig(**d)`` accepts it).

        ``family``: a model family of :data:`hopfield_lab.mixer.FAMILIES` (the S/16 model at
        ``img_size``). With mixup/cutmix on, the label smoothing lives in the soft targets of
        :meth:`mixup_cutmix`, so the trainer's own ``label_smoothing`` is 0 (it would otherwise be
        applied twice). The trainer's on-device crop/flip is off: augmentation happens in
        :func:`paper_transforms`. ``recipe`` and ``recipe_overrides`` let the trainer rebuild this
        recipe (:func:`recipe_of`). Overrides win, e.g. ``epochs=30, lam=1e-2,
        out_dir="runs/paper"``. The recipe's two rescale rules: a ``batch_size`` given without
        ``lr`` rescales the lr (:meth:`lr`), ``epochs`` given without ``warmup_epochs`` keeps the
        warm-up's share of the run (:meth:`warmup`).
        """
        batch = int(overrides.get("batch_size", self.batch_size))
        epochs = overrides.get("epochs", self.epochs)
        model_overrides = self.model_kwargs()
        model_overrides.pop("img_size")  # the trainer takes it from the loaders' meta
        model_overrides.update(overrides.pop("model_overrides", {}) or {})
        cfg = dict(
            model=self.model_name(family),
            dataset=dataset,
            recipe=self.name,
            recipe_overrides=self.pipeline_overrides(),
            epochs=epochs,
            batch_size=batch,
            lr=self.lr(batch),
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            warmup_epochs=self.warmup(epochs),
            label_smoothing=0.0 if self.uses_mixing else self.label_smoothing,
            crop_padding=0,
            flip=False,
            img_size=self.img_size,
            amp=self.amp,
            model_overrides=model_overrides,
        )
        cfg.update(overrides)
        return cfg

    def as_dict(self) -> dict:
        """All fields as plain data (tuples become lists), e.g. for a result JSON."""
        return {k: _plain(v) for k, v in asdict(self).items()}


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


#: the recipe's fields that are the model's keywords (create_model overrides of the same names)
MODEL_FIELDS = ("img_size", "patch_size", "embed_dim", "num_blocks", "mlp_ratio", "drop_path_rate")

#: the recipe's fields read by the data pipeline (transforms, mixing), which a TrainConfig carries
#: as ``recipe_overrides``; the others become TrainConfig or model fields in :meth:`Recipe.train_config`
PIPELINE_FIELDS = ("crop_scale", "crop_ratio", "hflip", "randaugment_ops", "randaugment_magnitude",
                   "randaugment_levels", "random_erasing", "mean", "std", "crop_pct", "mixup_alpha",
                   "cutmix_alpha", "mix_prob", "switch_prob", "label_smoothing")

PAPER = Recipe()
"""The paper's official configuration (the training command of the official code)."""

#: named recipes (``--recipe NAME``; ``"none"`` is the trainer's own fields)
RECIPES: dict[str, Recipe] = {PAPER.name: PAPER}


def paper_recipe(**overrides) -> Recipe:
    """The paper's :class:`Recipe`, with any field overridden, e.g. ``paper_recipe(epochs=100, batch_size=256)``."""
    unknown = sorted(set(overrides) - set(Recipe.__dataclass_fields__))
    if unknown:
        raise TypeError(
            f"Unknown recipe field(s) {unknown}; the fields are: {', '.join(Recipe.__dataclass_fields__)}."
        )
    return replace(PAPER, **overrides)


def check_recipe_overrides(overrides: dict) -> str | None:
    """None when ``overrides`` names only data-pipeline fields (:data:`PIPELINE_FIELDS`), else what is wrong."""
    unknown = sorted(set(overrides) - set(PIPELINE_FIELDS))
    if not unknown:
        return None
    own = [k for k in unknown if k in Recipe.__dataclass_fields__]
    return (f"recipe_overrides takes the recipe's data-pipeline fields ({', '.join(PIPELINE_FIELDS)}), not "
            f"{unknown}" + (f"; {own} are set through the training options (e.g. --epochs) or --model-overrides"
                            if own else ""))


def make_recipe(name: str, overrides: dict | None = None, img_size: int | None = None) -> Recipe:
    """``RECIPES[name]`` with data-pipeline ``overrides`` (plain data: lists stand for tuples) and an
    image size; a ValueError names an unknown recipe or a field that is not a pipeline field."""
    if name not in RECIPES:
        raise ValueError(f"recipe {name!r} is not one of {', '.join(RECIPES)}.")
    problem = check_recipe_overrides(overrides or {})
    if problem:
        raise ValueError(problem)
    base = RECIPES[name]
    fields = {k: tuple(v) if isinstance(getattr(base, k), tuple) else v for k, v in (overrides or {}).items()}
    if img_size:
        fields["img_size"] = img_size
    return replace(base, **fields)


def recipe_of(cfg) -> Recipe:
    """The recipe a :class:`~hopfield_lab.train.TrainConfig` was made from (:meth:`Recipe.train_config`):
    ``RECIPES[cfg.recipe]`` with ``cfg.recipe_overrides`` and the run's ``cfg.img_size`` (when given)."""
    return make_recipe(cfg.recipe, cfg.recipe_overrides, cfg.img_size)


def require_torchvision():
    """Import and return ``torchvision`` (with ``transforms.v2``), or raise a clear ImportError."""
    try:
        import torchvision
        from torchvision.transforms import v2  # noqa: F401
    except Exception as exc:  # ImportError, or a binary mismatch raising RuntimeError/OSError
        raise ImportError(
            "The paper recipe's image transforms need torchvision (transforms.v2), which could not be "
            f"imported ({type(exc).__name__}: {exc}). Install the torchvision build that matches your "
            f"torch {torch.__version__}: `pip install torchvision` picks it on Colab/PyPI "
            "(see https://pytorch.org/get-started/previous-versions/ for pinned pairs). "
            "The GPU-resident 32-px pipeline of hopfield_lab.data does not need it."
        ) from exc
    return torchvision


def paper_transforms(recipe: Recipe = PAPER):
    """Per-image train and test transforms of the recipe, as ``torchvision.transforms.v2`` pipelines.

    Both accept a PIL image, a NumPy ``(H, W, 3)`` uint8 array or a ``(3, H, W)`` uint8 tensor and
    return a float32 tensor of shape ``(3, img_size, img_size)``, normalised with the recipe's
    mean and std. Train: random-resized crop (bilinear or bicubic, chosen at random as timm's
    ``random`` interpolation) -> horizontal flip -> RandAugment -> to float -> normalise ->
    random erasing. Test: resize the short side to ``floor(img_size / crop_pct)`` (bicubic) ->
    centre crop -> to float -> normalise.

    Returns:
        ``(train_transform, test_transform)``.
    """
    require_torchvision()
    from torchvision.transforms import InterpolationMode, v2

    size = recipe.img_size
    crops = [
        v2.RandomResizedCrop(size, scale=recipe.crop_scale, ratio=recipe.crop_ratio, interpolation=mode, antialias=True)
        for mode in (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC)
    ]
    fill = [round(255 * m) for m in recipe.mean]  # RandAugment works on uint8: fill with the mean colour
    train = [v2.ToImage(), v2.RandomChoice(crops)]
    if recipe.hflip > 0:
        train.append(v2.RandomHorizontalFlip(recipe.hflip))
    if recipe.randaugment_ops > 0 and recipe.randaugment_magnitude > 0:
        train.append(
            v2.RandAugment(
                num_ops=recipe.randaugment_ops,
                magnitude=recipe.randaugment_magnitude,
                num_magnitude_bins=recipe.randaugment_levels + 1,
                interpolation=InterpolationMode.BILINEAR,
                fill=fill,
            )
        )
    train += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(recipe.mean, recipe.std)]
    if recipe.random_erasing > 0:
        train.append(v2.RandomErasing(p=recipe.random_erasing, scale=(0.02, 1 / 3), ratio=(0.3, 3.3), value="random"))
    test = [
        v2.ToImage(),
        v2.Resize(math.floor(size / recipe.crop_pct), interpolation=InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(recipe.mean, recipe.std),
    ]
    return v2.Compose(train), v2.Compose(test)


def _smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float, dtype: torch.dtype) -> torch.Tensor:
    off = smoothing / num_classes
    y = torch.full((labels.shape[0], num_classes), off, dtype=dtype, device=labels.device)
    return y.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


class MixupCutmix:
    """Batch-level mixup / cutmix with label smoothing, on whatever device the batch lives on.

    For each batch, with probability ``prob``: draw ``lam ~ Beta(alpha, alpha)`` and pair every
    image with the batch reversed (``x.flip(0)``). Cutmix (chosen with probability
    ``switch_prob`` when both are on) pastes a box of area ``(1 - lam) * H * W`` (clipped at the
    border, ``lam`` then recomputed from the pasted area); mixup blends
    ``lam * x + (1 - lam) * x.flip(0)``. Targets are label-smoothed one-hot vectors
    (``1 - eps + eps/K`` on the class, ``eps/K`` elsewhere) mixed with the same ``lam``, so every
    row is a probability vector (sums to 1). Random numbers come from torch's global CPU
    generator (saved and restored with the trainer's RNG state).

    Call with ``images`` of shape ``(B, C, H, W)`` (float) and integer ``labels`` of shape ``(B,)``;
    returns ``(mixed_images, soft_targets)`` with shapes ``(B, C, H, W)`` and ``(B, K)``.
    ``last_lam`` and ``last_mode`` (``"mixup"``, ``"cutmix"`` or ``"none"``) describe the last call.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
    ):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"alphas must be >= 0 (0 turns one off), got mixup {mixup_alpha}, cutmix {cutmix_alpha}.")
        for name, p in (("prob", prob), ("switch_prob", switch_prob), ("label_smoothing", label_smoothing)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {p}.")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.last_lam = 1.0
        self.last_mode = "none"

    def _draw(self) -> tuple[str, float]:
        if self.prob <= 0 or torch.rand(()).item() >= self.prob or (self.mixup_alpha == 0 and self.cutmix_alpha == 0):
            return "none", 1.0
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            mode = "cutmix" if torch.rand(()).item() < self.switch_prob else "mixup"
        else:
            mode = "cutmix" if self.cutmix_alpha > 0 else "mixup"
        alpha = self.cutmix_alpha if mode == "cutmix" else self.mixup_alpha
        a = torch.tensor(float(alpha), dtype=torch.float64)
        lam = float(torch.distributions.Beta(a, a).sample())
        return mode, lam

    @staticmethod
    def cutmix_box(lam: float, H: int, W: int) -> tuple[int, int, int, int]:
        """A box ``(y0, y1, x0, x1)`` of target area ``(1 - lam) H W`` with a uniform random centre, clipped."""
        r = math.sqrt(1.0 - lam)
        h, w = int(H * r), int(W * r)
        cy = int(torch.randint(H, ()).item())
        cx = int(torch.randint(W, ()).item())
        y0, y1 = max(cy - h // 2, 0), min(cy + h // 2, H)
        x0, x1 = max(cx - w // 2, 0), min(cx + w // 2, W)
        return y0, y1, x0, x1

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"Expected images (B, C, H, W) and labels (B,), got {tuple(images.shape)} and {tuple(labels.shape)}."
            )
        if not images.is_floating_point():
            raise TypeError(f"Mix float images (after normalisation), got {images.dtype}.")
        mode, lam = self._draw()
        if mode == "cutmix":
            H, W = images.shape[-2:]
            y0, y1, x0, x1 = self.cutmix_box(lam, H, W)
            images = images.clone()
            images[:, :, y0:y1, x0:x1] = images.flip(0)[:, :, y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(H * W)
        elif mode == "mixup":
            images = images.mul(lam).add_(images.flip(0), alpha=1.0 - lam)
        y = _smooth_one_hot(labels, self.num_classes, self.label_smoothing, images.dtype)
        if mode != "none":
            y = y.mul(lam).add_(y.flip(0), alpha=1.0 - lam)
        self.last_mode, self.last_lam = mode, lam
        return images, y


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k t_k log softmax(z)_k``; logits and targets of shape ``(B, K)``.

    Computed in float32 (safe under bf16 autocast). Equals ``F.cross_entropy`` with probability
    targets; with one-hot targets it is the ordinary cross-entropy.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and soft targets {tuple(targets.shape)} must have the same shape.")
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(targets.float() * logp).sum(-1).mean()


def paper_loaders(recipe: Recipe = PAPER, *, transforms: tuple | None = None, num_workers: int | None = None,
                  mixing: bool = True):
    """A ``loaders`` callable for :func:`hopfield_lab.train.train`: streaming loaders with the recipe's augmentation.

    Usage::

        from hopfield_lab.recipes import PAPER, paper_loaders
        from hopfield_lab.train import train
        train(PAPER.train_config("paramixer", "cifar10", out_dir="runs/paper"), loaders=paper_loaders())

    The returned function ``(config, dist_info) -> (train_loader, test_loader, meta)`` reads both
    splits named by ``config.dataset`` with :func:`hopfield_lab.data.load_splits` (uint8, kept
    on the CPU) -- or, when ``config.dataset`` is a folder with ``train/`` and ``val/`` (or
    ``test/``) class subfolders, opens it lazily with ``torchvision.datasets.ImageFolder`` (for
    ImageNet-size data that does not fit in memory) -- and streams it through
    :class:`~hopfield_lab.streaming.StreamingLoader` workers with the recipe's transforms; the
    train loader applies the recipe's :class:`MixupCutmix` on the device (``mixing=False``: off).
    ``train_subset`` / ``test_subset`` follow the one subset rule of
    :func:`hopfield_lab.data.subset_indices` in both cases.

    Args:
        transforms: ``(train_transform, test_transform)`` instead of :func:`paper_transforms`
            (each maps a ``(C, H, W)`` uint8 tensor or PIL image to a float ``(C, S, S)`` tensor).
        num_workers: loader processes per rank (default: the CPU cores shared by the local ranks).
    """

    def build(cfg, info):
        from pathlib import Path

        from . import data as hd
        from .distributed import local_batch_size
        from .streaming import StreamingLoader, TransformDataset

        train_tf, test_tf = transforms if transforms is not None else paper_transforms(recipe)
        folder = Path(str(cfg.dataset)).expanduser()
        if folder.is_dir() and (folder / "train").is_dir():
            tv = require_torchvision()
            test_dir = next((folder / d for d in ("val", "test") if (folder / d).is_dir()), None)
            if test_dir is None:
                raise FileNotFoundError(f"{folder} has train/ but neither val/ nor test/: add the test split.")
            tr = tv.datasets.ImageFolder(str(folder / "train"))
            te = tv.datasets.ImageFolder(str(test_dir))
            if cfg.train_subset or cfg.test_subset:
                from torch.utils.data import Subset

                tr = Subset(tr, hd.subset_indices(len(tr), cfg.train_subset).tolist())
                te = Subset(te, hd.subset_indices(len(te), cfg.test_subset).tolist())
            ds_tr, ds_te = TransformDataset(tr, transform=train_tf), TransformDataset(te, transform=test_tf)
            n_cls = len((tr.dataset if hasattr(tr, "dataset") else tr).classes)
            in_chans = 3
        else:
            data = hd.load_splits(cfg)
            ds_tr = TransformDataset(data.x_train, data.y_train, transform=train_tf)
            ds_te = TransformDataset(data.x_test, data.y_test, transform=test_tf)
            n_cls, in_chans = data.num_classes, int(data.x_train.shape[1])
        bs = local_batch_size(cfg.batch_size, info)
        mix = recipe.mixup_cutmix(n_cls) if mixing else None
        train_loader = StreamingLoader(ds_tr, bs, device=info.device, train=True, seed=cfg.seed, info=info,
                                       num_workers=num_workers, batch_transform=mix)
        test_loader = StreamingLoader(ds_te, bs, device=info.device, train=False, info=info, num_workers=num_workers)
        meta = {"num_classes": n_cls, "in_chans": in_chans, "img_size": recipe.img_size,
                "n_train": len(ds_tr), "n_test": len(ds_te)}
        return train_loader, test_loader, meta

    return build
