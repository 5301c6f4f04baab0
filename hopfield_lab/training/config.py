"""What defines a training run: :class:`TrainConfig` (plain data, stored in checkpoints and result files).

Each field carries the help text of its command-line option (``python -m hopfield_lab train
--help``); :meth:`TrainConfig.validate` says what to change when a field is out of range.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass, field

from . import data as hd
from . import distributed as D
from . import recipes
from ..mixer import check_lam, unknown_overrides

__all__ = ["TrainConfig", "SCHEDULES", "RECIPES", "RESUME_FREE"]

SCHEDULES = ("cosine", "onecycle")
RECIPES = ("none", *recipes.RECIPES)
#: fields that may differ between a checkpoint and the run that resumes it
RESUME_FREE = frozenset({"out_dir", "resume", "stop_after_epochs", "progress", "result_path", "compile",
                         "keep_checkpoint", "eval_every", "symmetry_every", "checkpoint_every", "device",
                         "data_root", "download", "workers"})


def _f(default, help: str, **kw):
    """A dataclass field with a help text (used by the CLI)."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything that defines a training run (all plain data: it is stored in the result JSON).

    The defaults are the CIFAR-10 set-up of the book's chapter 8 (its GPU study: hopfield_lab/results/cifar10/README.md).
    """

    model: str = _f("paramixer_cifar_small", "model preset name (see hopfield_lab.list_models())")
    lam: float | None = _f(None, "symmetry-breaking penalty lambda of AsymMixer models "
                                 "(loss += lam * sum ||V||^2); only for asym* models")
    dataset: str = _f("cifar10", " | ".join(hd.DATASETS) + " | path of an ImageFolder directory or .tar.gz")
    data_root: str | None = _f(None, "data root (downloads, offline archives); default "
                                     "$HOPFIELD_LAB_DATA or ~/.cache/hopfield_lab")
    download: bool = _f(True, "let torchvision download missing data")
    recipe: str = _f("none", "none: the fields as given, GPU-resident data (DeviceLoader) | paper: the "
                             "paper's 224-px recipe (hopfield_lab.recipes.PAPER): streaming loaders with "
                             "torchvision transforms and mixup/cutmix (needs torchvision); on the command "
                             "line its hyperparameters become the defaults", choices=RECIPES)
    recipe_overrides: dict = _f({}, "data-pipeline fields of the recipe that differ from it (e.g. mixup_alpha=0 "
                                    "random_erasing=0); see hopfield_lab.recipes.PIPELINE_FIELDS")
    workers: int | None = _f(None, "loader processes per rank of the streaming loader (recipe paper); "
                                   "default: the CPU cores shared by the local ranks, less one")
    epochs: int = _f(30, "number of training epochs")
    batch_size: int = _f(512, "global batch size (split over ranks under torchrun)")
    lr: float = _f(1e-3, "peak learning rate of AdamW")
    weight_decay: float = _f(0.05, "AdamW weight decay (not applied to 1-D parameters: norms, biases)")
    schedule: str = _f("onecycle", "learning-rate schedule, stepped every batch: onecycle | cosine")
    warmup_epochs: float | None = _f(None, "warm-up length in epochs (may be fractional); default: "
                                           "30%% of the run for onecycle, 0 for cosine")
    label_smoothing: float = _f(0.1, "label smoothing of the training cross-entropy")
    grad_clip: float | None = _f(None, "clip the gradient norm to this value (off by default)")
    crop_padding: int = _f(4, "random-crop augmentation: pad each side by this many pixels (0: off)")
    pad_mode: str = _f("reflect", "padding of the random crop: reflect | zeros")
    flip: bool = _f(True, "random horizontal flips")
    img_size: int | None = _f(None, "resize images on the device to this size and build the model "
                                    "for it (default: the data's size)")
    train_subset: int | None = _f(None, "use only N training images, a fixed random subset (quick runs)")
    test_subset: int | None = _f(None, "use only N test images, a fixed random subset (quick runs)")
    amp: bool = _f(True, "bf16 autocast on CUDA (on CPU only with HOPFIELD_LAB_CPU_BF16=1 on a CPU "
                         "with bf16 units; see hopfield_lab.perf)")
    compile: bool | None = _f(None, "torch.compile the model; default: on CUDA, off on CPU. A compile "
                                    "error warns and falls back to eager (hopfield_lab.perf)")
    device: str | None = _f(None, "cuda | cpu | cuda:1 ... (default: CUDA if present)")
    seed: int = _f(0, "seed of initialisation, shuffling and augmentation")
    deterministic: bool = _f(False, "use deterministic algorithms only (slower on GPU)")
    eval_every: int = _f(1, "evaluate on the test split every N epochs (and always after the last)")
    symmetry_every: int = _f(1, "record symmetry metrics every N epochs (0: only at the end)")
    symmetry_metrics: bool = _f(True, "record the symmetry metrics of the weights")
    out_dir: str | None = _f(None, "folder for the checkpoint and result.json (none: nothing written)")
    resume: bool = _f(True, "continue from out_dir/checkpoint.pt when it exists")
    checkpoint_every: int = _f(1, "write the checkpoint every N epochs (and after the last)")
    keep_checkpoint: bool = _f(True, "keep the checkpoint after the run has finished")
    stop_after_epochs: int | None = _f(None, "stop (as if interrupted) once this many epochs are "
                                             "done; the run can be resumed later")
    result_path: str | None = _f(None, "where to write the result JSON (default out_dir/result.json)")
    progress: bool = _f(True, "show a tqdm progress bar")
    model_overrides: dict = _f({}, "extra keyword arguments for create_model (e.g. num_blocks=4 n_iter=2)")
    dataset_options: dict = _f({}, "options of a data set that takes them (" + "; ".join(
        f"{d.name}: {', '.join(d.options)}" for d in hd.DATASETS.values() if d.options) + ")")

    def __post_init__(self):
        for name in ("out_dir", "result_path", "data_root"):  # "~/runs" means the home folder's runs
            v = getattr(self, name)
            if isinstance(v, str) and v.startswith("~"):
                setattr(self, name, os.path.expanduser(v))

    def validate(self) -> "TrainConfig":
        """Raise a ValueError that says what to change when a field is out of range."""
        def need(cond, msg):
            if not cond:
                raise ValueError(f"Bad TrainConfig: {msg}")
        need(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be an integer >= 1, got {self.epochs!r}.")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        need(self.lr > 0 and math.isfinite(self.lr), f"lr must be positive, got {self.lr!r}.")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        need(self.recipe in RECIPES, f"recipe must be one of {RECIPES}, got {self.recipe!r}.")
        need(self.recipe != "paper" or (self.crop_padding == 0 and not self.flip),
             "recipe 'paper' augments with its own transforms (random-resized crop, flip, RandAugment, "
             f"erasing, mixup/cutmix), so crop_padding={self.crop_padding!r} and flip={self.flip!r} would be "
             "ignored: set crop_padding=0 and flip=False (the recipe's defaults), or use recipe 'none'.")
        need(self.recipe != "none" or not self.recipe_overrides,
             f"recipe_overrides {self.recipe_overrides} need a recipe: add recipe='paper' (--recipe paper).")
        problem = recipes.check_recipe_overrides(self.recipe_overrides)
        need(problem is None, f"{problem}.")
        need(self.workers is None or (isinstance(self.workers, int) and self.workers >= 0),
             f"workers must be an integer >= 0, got {self.workers!r}.")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        need(self.warmup_epochs is None or 0 <= self.warmup_epochs < self.epochs,
             f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs!r}.")
        need(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}.")
        need(isinstance(self.seed, int) and 0 <= self.seed < 2 ** 32,
             f"seed must be an integer in [0, 2**32), got {self.seed!r}.")
        if self.device is not None:
            try:
                D.parse_device(self.device)
            except ValueError as exc:
                need(False, f"{exc}.")
        problem = unknown_overrides(self.model_overrides)
        need(problem is None, f"model_overrides: {problem}.")
        n_cls = self.model_overrides.get("num_classes")
        need(n_cls is None or (isinstance(n_cls, int) and n_cls >= 1),
             f"model_overrides num_classes must be an integer >= 1 (the classifier's outputs), got {n_cls!r}; "
             "leave it out to use the data's number of classes.")
        need(self.pad_mode in ("reflect", "zeros"), f"pad_mode must be 'reflect' or 'zeros', got {self.pad_mode!r}.")
        need(self.crop_padding >= 0, f"crop_padding must be >= 0, got {self.crop_padding!r}.")
        need(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every!r}.")
        need(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every!r}.")
        need(self.stop_after_epochs is None or self.stop_after_epochs >= 1,
             f"stop_after_epochs must be >= 1, got {self.stop_after_epochs!r}.")
        need(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be positive, got {self.grad_clip!r}.")
        for name in ("train_subset", "test_subset", "img_size"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 1), f"{name} must be a positive integer, got {v!r}.")
        try:  # λ: the model's option, checked by the model's rules (mixer.check_lam)
            lam = self.model_options().get("lam")
            if lam is not None:
                check_lam(lam, self.model)
        except ValueError as exc:
            need(False, f"{exc}.")
        return self

    def model_options(self) -> dict:
        """The :func:`~hopfield_lab.mixer.create_model` options of this run: ``model_overrides``, with
        ``lam`` (``--lam``, sugar for the model option) added when set; the one place where the
        run's λ becomes the model's. Raises a ValueError when both name different λ."""
        options = dict(self.model_overrides)
        if self.lam is not None:
            if "lam" in options and options["lam"] != self.lam:
                raise ValueError(f"lam={self.lam!r} and model_overrides lam={options['lam']!r} disagree: "
                                 "give λ once (--lam)")
            options["lam"] = self.lam
        return options

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"Unknown TrainConfig fields {unknown}; valid fields: {sorted(names)}.")
        return cls(**d)

