"""What a training run leaves behind: its result record, and how runs and their λ are named
(re-exported by :mod:`hopfield_lab.results`).

* :class:`RunResult` -- the typed result (with :data:`SCHEMA_VERSION`) that
  :func:`hopfield_lab.train.train` returns and writes as JSON, :func:`load_result` reads back
  (older files are upgraded by :func:`upgrade`), and the book's chapter 8 plots.
* :func:`format_lam` -- the shortest scientific notation that reads back as exactly λ
  (``1e-02``, ``1.2e-02``); the one spelling of λ in file names and labels.
* :func:`run_name` -- the file stem of a sweep run, unique per (model, n_iter, λ, seed).
"""
from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from .checkpoint import plain

__all__ = ["RunResult", "SCHEMA_VERSION", "RESULT_NAME", "load_result", "upgrade", "format_lam", "run_name"]


def format_lam(lam: float) -> str:
    """λ in the shortest ``%e`` form that ``float()`` reads back exactly: ``0 -> "0"``,
    ``0.01 -> "1e-02"``, ``0.012 -> "1.2e-02"``, ``5e-4 -> "5e-04"``."""
    lam = float(lam)
    if lam == 0:
        return "0"
    for digits in range(17):
        text = f"{lam:.{digits}e}"
        if float(text) == lam:
            return text
    return repr(lam)  # inf / nan


def run_name(model: str, lam: float | None, seed: int, n_iter: int | None = None, init: str | None = None) -> str:
    """File stem of a sweep run, e.g. ``asymmixer_cifar_small_lam1.2e-2_seed0``
    (``paramixer_cifar_small_ni2_tied_seed0`` for n_iter 2 started from tied weights).

    λ is written by :func:`format_lam` with the exponent's leading zeros dropped (``1e-2``, the
    spelling of the committed hopfield_lab/results/cifar10 files), so distinct λ give distinct names and
    ``float(<text after "lam">)`` is λ again.
    """
    parts = [model]
    if n_iter is not None:
        parts.append(f"ni{n_iter}")
    if lam is not None:
        text = format_lam(lam)
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        parts.append(f"lam{text}")
    if init not in (None, "random"):
        parts.append(str(init))
    parts.append(f"seed{seed}")
    return "_".join(parts)


# ---------------------------------------------------------------------------------------------
# the result record
# ---------------------------------------------------------------------------------------------
SCHEMA_VERSION = 3
"""Version of :class:`RunResult`'s layout. 1: the files written before it had a number (the
committed hopfield_lab/results/cifar10 runs: no ``schema_version``, ``status``, ``diverged`` or ``recipe``);
2: adds those; 3: the run says what it is: ``family``, ``n_iter`` and ``init`` (older files get
them from their model name and configuration)."""

RESULT_NAME = "result.json"
"""The result file's name in a run's ``out_dir``."""

STATUSES = ("finished", "stopped", "diverged")


@dataclass(kw_only=True)
class RunResult:
    """What a training run reports: the file the trainer writes, the book reads and the tests build.

    All values are plain data (numbers, strings, lists, dicts; NaN and inf become None), so
    :meth:`to_dict` is the JSON file's content and :meth:`from_dict` reads it back, upgrading the
    layouts of older versions (:data:`SCHEMA_VERSION`). Accuracies are fractions; ``history``
    holds one dict per epoch (``epoch, train_loss, train_acc, penalty, lr, epoch_time_s,
    img_per_s, time_s`` and, when evaluated, ``test_loss, test_acc``); ``symmetry`` is the final
    :func:`hopfield_lab.symmetry.symmetry_report`, ``symmetry_history`` ``[{"epoch", "report"}]``.
    ``status``: ``"finished"``, ``"stopped"`` (``stop_after_epochs``) or ``"diverged"`` (then
    ``diverged = {"epoch", "what"}``); ``config`` is the run's TrainConfig as a dict.
    """

    model: str
    lam: float | None
    dataset: str
    family: str | None = None            # mixer.FAMILIES key, e.g. "asymmixer" (None: a custom model)
    n_iter: int = 1                       # iterations of every block (shared weights)
    init: str = "random"                  # mixer.INITS: "random" (official) or "tied" (W2 = W1ᵀ at step 0)
    epochs: int
    epochs_done: int
    seed: int
    config: dict
    history: list[dict]
    status: str = "finished"
    recipe: str = "none"
    diverged: dict | None = None
    test_acc: float | None = None
    test_loss: float | None = None
    train_acc: float | None = None
    train_loss: float | None = None
    best_test_acc: float | None = None
    params: int | None = None
    num_classes: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    img_size: int | None = None
    data: dict | None = None              # where the images came from: {"source", "fingerprint", "folders"}
    symmetry: list[dict] | None = None
    symmetry_history: list[dict] = field(default_factory=list)
    wall_time_s: float | None = None
    process_time_s: float | None = None
    train_time_s: float | None = None
    img_per_s: float | None = None
    device: str | None = None
    cpu: str | None = None               # the CPU's model name (runtime.provenance; None in older files)
    cpu_threads: int | None = None       # torch's intra-op threads
    world_size: int = 1
    amp: str | None = None
    compiled: str | None = None          # perf.compile_status: "compiled", "eager", "eager (compile failed: ...)"
    torch_version: str | None = None
    python_version: str | None = None
    hopfield_lab_version: str | None = None
    git_commit: str | None = None
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == "diverged") != (self.diverged is not None):
            raise ValueError("a diverged run carries diverged={'epoch', 'what'}, and only a diverged run does")
        if self.status == "finished" and self.test_acc is None:
            raise ValueError("a finished run has a test accuracy (test_acc)")

    @property
    def key(self) -> str:
        """The run's name, unique per (model, n_iter, λ, init, seed): :func:`run_name`, the file stem a sweep gives it."""
        return run_name(self.model, self.lam, self.seed, self.n_iter if self.n_iter != 1 else None, self.init)

    @property
    def finished(self) -> bool:
        """True when every epoch ran (``status == "finished"``)."""
        return self.status == "finished"

    def to_dict(self) -> dict:
        """The JSON-ready content of the result file (``finished`` included for readers of version 1)."""
        d = plain(asdict(self))
        d["finished"] = self.finished
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunResult":
        """Read a result file's content, upgrading older layouts; a ValueError says what is missing."""
        if not isinstance(d, dict):
            raise ValueError(f"a result is a JSON object, got {type(d).__name__}")
        d = upgrade(d)
        names = {f.name for f in fields(cls)}
        missing = sorted(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
                         and f.name not in d)
        if missing:
            raise ValueError(f"not a training result: missing {missing}")
        return cls(**{k: v for k, v in d.items() if k in names})


def upgrade(d: dict) -> dict:
    """A result dict of any known :data:`SCHEMA_VERSION` in the current layout (a new dict)."""
    d = dict(d)
    version = d.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(f"result schema version {version!r} is newer than this hopfield_lab knows "
                         f"({SCHEMA_VERSION}): update hopfield_lab to read it")
    if version == 1:  # before the status field: finished true/false; no divergence was recorded
        d["status"] = "finished" if d.get("finished", True) else "stopped"
        d.setdefault("recipe", (d.get("config") or {}).get("recipe", "none"))
        d["diverged"] = None
    if version < 3:  # before a run said what it is: read it off the model name and the configuration
        from ..mixer import _REGISTRY

        entry = _REGISTRY.get(d.get("model"), {})
        overrides = (d.get("config") or {}).get("model_overrides") or {}
        d.setdefault("family", entry.get("family"))
        d.setdefault("n_iter", int(overrides.get("n_iter", entry.get("n_iter", 1))))
        d.setdefault("init", overrides.get("init", "random"))
    d.pop("finished", None)
    d["schema_version"] = SCHEMA_VERSION
    return d


def load_result(path: str | os.PathLike) -> RunResult:
    """Read a result file (any known schema version)."""
    path = Path(path)
    try:
        return RunResult.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
