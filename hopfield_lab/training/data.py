"""Data sets and the GPU-resident loader.

Every data set is returned the same way, as a whole split held in memory::

    images, labels = load_dataset("cifar10", split="train")
    # images: uint8 (N, C, H, W), labels: int64 (N,)

Sources, by ``name``: a data set of the registry :data:`DATASETS` (one :class:`DatasetSpec`
per name: loader, classes, normalisation, offline archive; the table at the end of this text
lists them), or the path of a local ImageFolder directory (``<split>/<class>/*.png`` or
``<class>/*.png``) or of a ``.tar.gz`` of one, e.g. ``/work/shared/data/cifar10-jpeg.tar.gz``.
:func:`load_splits` loads both splits of a run with the one subset rule (:func:`subset_indices`).

Archives are decoded once (Pillow) and cached as a ``.pt`` file of uint8 tensors under
``$HOPFIELD_LAB_CACHE`` (default ``~/.cache/hopfield_lab``), so the second load takes well under
a second. Nothing ever switches data silently: when a download fails the error says what to do; :func:`quick_dataset` chooses offline data
*explicitly* and prints its choice.

:class:`DeviceLoader` keeps a whole split as uint8 on the device (CIFAR-10 train is 150 MB) and
does normalisation and augmentation there, in a handful of batched tensor operations.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import atomic_save, remove_stale_temp_files

DATA_ENV = "HOPFIELD_LAB_DATA"
"""Environment variable naming the data root (downloads and offline archives)."""

CACHE_ENV = "HOPFIELD_LAB_CACHE"
"""Environment variable naming where decoded archives are cached (default ``~/.cache/hopfield_lab``)."""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

SPLITS = ("train", "test")


class DataUnavailableError(RuntimeError):
    """The requested data set cannot be loaded here (no internet, no torchvision, no archive)."""


# ---------------------------------------------------------------------------------------------
# roots and caches
# ---------------------------------------------------------------------------------------------
def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$HOPFIELD_LAB_DATA``, else ``~/.cache/hopfield_lab``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or (Path.home() / ".cache" / "hopfield_lab")
    return Path(root).expanduser()


def _search_dirs(root: str | os.PathLike | None) -> list[Path]:
    """Directories searched for offline archives: ``root``, ``$HOPFIELD_LAB_DATA``, the default root."""
    dirs = []
    for d in (root, os.environ.get(DATA_ENV), Path.home() / ".cache" / "hopfield_lab"):
        if d:
            p = Path(d).expanduser()
            if p not in dirs:
                dirs.append(p)
    return dirs


def find_archive(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The offline archive (or its unpacked directory) of data set ``name`` in the search dirs, or None."""
    spec = DATASETS.get(str(name).lower())
    fname = spec.archive if spec is not None else None
    if fname is None:
        return None
    for d in _search_dirs(root):
        if (d / fname).is_file():
            return d / fname
        unpacked = d / name  # an already unpacked copy: <dir>/cifar10/{train,test}/<class>/...
        if (unpacked / "train").is_dir() and (unpacked / "test").is_dir():
            return unpacked
    return None


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where decoded archives are cached: ``path``, else ``$HOPFIELD_LAB_CACHE``, else
    ``~/.cache/hopfield_lab``.

    Kept apart from the data root so that read-only data folders are never written to.
    """
    if path is None:
        path = os.environ.get(CACHE_ENV) or (Path.home() / ".cache" / "hopfield_lab")
    return Path(path).expanduser()


#: Bump when the decoded-cache content or its key changes, so that old caches are never reused.
_CACHE_FORMAT = 3


def _fingerprint(source: Path) -> str:
    """What the decoded cache of ``source`` depends on, as a short hash.

    A directory: every file below it (relative path, size, modification time in ns), so that
    adding, changing or removing an image, or adding a class folder, gives another key. An
    archive: its path, size and modification time.
    """
    h = hashlib.sha1(f"{_CACHE_FORMAT}|{source.resolve()}".encode())
    if source.is_dir():
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            rel = Path(dirpath).relative_to(source)
            h.update(f"d|{rel.as_posix()}\n".encode())
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                h.update(f"f|{(rel / f).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    else:
        st = source.stat()
        h.update(f"a|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cache_prefix(source: Path) -> str:
    """The part of a cache file's name that names ``source`` (its name and a hash of its path):
    every version of one source's cache starts with it."""
    where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:8]
    return f"{source.name.split('.')[0]}-{where}-"


def _cache_file(source: Path, cache_dir: Path) -> Path:
    return cache_dir / "decoded" / f"{_cache_prefix(source)}{_fingerprint(source)}.pt"


def _clean_cache(cache: Path, source: Path) -> list[Path]:
    """Remove what earlier decodes of ``source`` left in the cache folder: temp files of writers
    that were killed mid-write (any version; :func:`~hopfield_lab.checkpoint.remove_stale_temp_files`
    keeps those of live processes) and the cache files of older versions of the same source (the
    folder or archive has been edited since), except ``cache`` itself. Returns what was removed."""
    removed = []
    prefix = _cache_prefix(source)
    for old in cache.parent.glob(f"{prefix}*.pt"):
        if old.name != cache.name:
            removed += remove_stale_temp_files(old)
            try:
                old.unlink()
                removed.append(old)
            except OSError:
                pass
    for tmp in cache.parent.glob(f".{prefix}*.pt.tmp*"):
        removed += remove_stale_temp_files(tmp.parent / tmp.name[1:tmp.name.rindex(".tmp")])
    return removed


# ---------------------------------------------------------------------------------------------
# decoding image folders and archives
# ---------------------------------------------------------------------------------------------
def _decode(items: list[tuple[str, bytes]]) -> torch.Tensor:
    """Decode ``(name, encoded image)`` pairs (all the same size) into one uint8 tensor (N, C, H, W).

    ``name`` (the file's path) is only used in errors, which name the file at fault.
    """
    from PIL import Image, UnidentifiedImageError

    if not items:
        raise DataUnavailableError("No images were found to decode.")

    def open_image(name, blob):
        try:
            img = Image.open(io.BytesIO(blob))
            img.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataUnavailableError(
                f"{name} is not an image that Pillow can read ({type(exc).__name__}: {exc}): "
                "remove it from the image folder (or replace it by a valid image).") from exc
        return img

    def pixels(name, img, mode):  # (h, w, c) uint8; 16-bit grey scaled to 8 bits, never clipped
        if img.mode.startswith("I"):  # "I;16*" (16-bit PNG/TIFF) or "I" (32-bit integers)
            a = np.asarray(img, dtype=np.int64)
            if a.size and (a.min() < 0 or a.max() > 65535):
                raise DataUnavailableError(
                    f"{name} holds {img.mode!r} pixels outside 0..65535 (from {a.min()} to {a.max()}), which "
                    "cannot be read as 16-bit grey: convert the images to 8 or 16 bits per channel first.")
            a = np.rint(a * (255.0 / 65535.0)).astype(np.uint8)
            return a.reshape(h, w, 1) if mode == "L" else np.repeat(a.reshape(h, w, 1), 3, axis=2)
        if img.mode == "F":
            raise DataUnavailableError(
                f"{name} holds floating-point pixels (mode 'F'), whose range is unknown: convert the images "
                "to 8 or 16 bits per channel first.")
        return np.asarray(img.convert(mode)).reshape(h, w, c)

    first_name, first = items[0][0], open_image(*items[0])
    mode = "L" if first.mode in ("L", "1", "LA", "F") or first.mode.startswith("I") else "RGB"
    w, h = first.size
    c = 1 if mode == "L" else 3
    out = np.empty((len(items), h, w, c), dtype=np.uint8)
    for i, (name, blob) in enumerate(items):
        img = first if i == 0 else open_image(name, blob)
        if img.size != (w, h):
            raise DataUnavailableError(
                f"Images differ in size: {name} is {img.size[0]}x{img.size[1]}, {first_name} is {w}x{h}; "
                "this loader keeps whole splits in one tensor, so resize the images to a common size first."
            )
        out[i] = pixels(name, img, mode)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _split_of(name: str) -> str | None:
    """The split a folder name stands for (``train``/``training``; ``test``/``testing``;
    ``val``/``valid``/``validation``), or None."""
    q = name.lower()
    if q in ("train", "training"):
        return "train"
    if q in ("test", "testing"):
        return "test"
    if q in ("val", "valid", "validation"):
        return "val"
    return None


def _where(source: Path, parts: tuple[str, ...]) -> str:
    return str(source.joinpath(*parts)) if source.is_dir() else f"{'/'.join(parts)} in {source}"


def _class_of(parts: tuple[str, ...], root: tuple[str, ...]) -> str:
    """The class of the image at ``parts``: the first folder below ``root`` (deeper folders belong to it)."""
    return parts[len(root)]


def _layout(entries: list[tuple[tuple[str, ...], bytes]], source: Path) -> dict:
    """Where the splits of an ImageFolder tree are: ``{split: folder parts}`` (split: ``train``,
    ``test``, ``val``), or ``{None: class root}`` for a tree without split folders.

    A split folder is the first folder on an image's path named after a split; its class is the
    folder right below it (so ``train/<class>/<sub>/<image>`` belongs to ``<class>``, as in
    torchvision's ImageFolder). Without split folders the class root is the folder the images
    share (an archive's top folder), or the tree itself.
    """
    roots: dict[str | None, set] = {}
    outside = []
    for parts, _ in entries:
        dirs = parts[:-1]
        at = next((i for i, p in enumerate(dirs[:-1]) if _split_of(p)), None)
        if at is None:
            outside.append(parts)
        else:
            roots.setdefault(_split_of(dirs[at]), set()).add(dirs[:at + 1])
    if not roots:
        common = entries[0][0][:-1]
        for parts, _ in entries:
            n = 0
            while n < min(len(common), len(parts) - 1) and common[n] == parts[n]:
                n += 1
            common = common[:n]
        depth = min(len(p) for p, _ in entries) - 2  # the class folder stays below the root
        root = () if source.is_dir() else common[:max(0, min(len(common), depth))]
        return {None: root}
    if outside:
        raise DataUnavailableError(
            f"{_where(source, outside[0])} lies outside the split folders ({', '.join(sorted(roots))}) of "
            f"{source}" + (f", and so do {len(outside) - 1} more images" if len(outside) > 1 else "")
            + ": move them into a split folder's class folder (<split>/<class>/...) or remove them.")
    for split, found in roots.items():
        if len(found) > 1:
            a, b = sorted(found)[:2]
            raise DataUnavailableError(
                f"{source} has two {split} folders ({_where(source, a)} and {_where(source, b)}): "
                "keep one tree with one folder per split.")
    if "val" in roots and "test" in roots:
        raise DataUnavailableError(
            f"{source} has both a validation folder ({_where(source, next(iter(roots['val'])))}) and a test "
            f"folder ({_where(source, next(iter(roots['test'])))}); hopfield_lab has one held-out split and "
            "never merges two silently: move the validation images into the training folder (or elsewhere), "
            "or rename the folder to use as the test split 'test' and move the other out of the tree.")
    return {("test" if s == "val" else s): next(iter(found)) for s, found in roots.items()}


def _group(entries: list[tuple[tuple[str, ...], bytes]], dirs: set[tuple[str, ...]], source: Path) -> dict:
    """Turn (path parts, bytes) of an ImageFolder tree into {split: (images, labels)} + classes.

    Layout ``.../<split>/<class>/.../<file>`` gives the splits (:func:`_layout`: ``train``, and
    ``test`` or ``val`` as the held-out split, never both); a bare ``<class>/.../<file>`` tree
    (no split folders) is split 85/15 with a fixed seed. Files in subfolders of a class folder
    belong to that class. ``dirs`` are the tree's folders: a class folder without images is an
    error (dropping it would shift every later label), and so is a class with images in one
    split but none in the other. ``folders`` of the result says which folder formed each split.
    """
    entries = [e for e in entries if len(e[0]) >= 2]
    if not entries:
        raise DataUnavailableError(f"No images in a <class>/<image> layout were found in {source}.")
    roots = _layout(entries, source)
    by_split: dict[str | None, list[tuple[str, tuple[str, ...], bytes]]] = {}
    for parts, blob in entries:
        split = next((s for s, r in roots.items() if parts[:len(r)] == r), None)
        by_split.setdefault(split, []).append((_class_of(parts, roots[split]), parts, blob))
    image_dirs = {parts[:-1] for parts, _ in entries}
    empty = sorted(d for d in dirs if any(len(d) == len(r) + 1 and d[:len(r)] == r for r in roots.values())
                   and not d[-1].startswith(".") and not any(e[:len(d)] == d for e in image_dirs))
    if empty:
        raise DataUnavailableError(
            f"Class folder {_where(source, empty[0])} has no images"
            + (f" (and {len(empty) - 1} more empty: {', '.join('/'.join(d) for d in empty[1:4])})" if len(empty) > 1 else "")
            + ": add images or remove the folder (an empty class would shift the labels of every later class).")
    classes = sorted({cls for items in by_split.values() for cls, _, _ in items})
    index = {c: i for i, c in enumerate(classes)}

    def tensors(items):
        return (_decode([(_where(source, p), b) for _, p, b in items]),
                torch.tensor([index[c] for c, _, _ in items], dtype=torch.int64))

    result = {}
    if None not in roots:
        present = {s: {c for c, _, _ in by_split.get(s, [])} for s in SPLITS}
        for split, other in (("test", "train"), ("train", "test")):
            missing = sorted(present[other] - present[split]) if split in roots else []
            if missing:
                where = _where(source, roots[split] + (missing[0],))
                raise DataUnavailableError(
                    f"Class {missing[0]!r} has {other} images but no {split} images (expected in {where})"
                    + (f"; so do {', '.join(missing[1:4])}" if len(missing) > 1 else "")
                    + f": add {split} images for every class, or remove the class from both splits.")
        for split in SPLITS:
            if by_split.get(split):
                result[split] = tensors(by_split[split])
        folders = {s: "/".join(r) for s, r in roots.items()}
    else:
        images, labels = tensors(by_split[None])
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        n_test = max(1, int(round(0.15 * len(labels))))
        result["test"] = (images[perm[:n_test]], labels[perm[:n_test]])
        result["train"] = (images[perm[n_test:]], labels[perm[n_test:]])
        where = "/".join(roots[None]) or "."
        folders = {s: f"{where} (fixed 85/15 split, seed 0)" for s in SPLITS}
    return {"splits": result, "classes": classes, "folders": folders}


def _is_resource_fork(name: str) -> bool:
    """macOS metadata files (``._photo.png`` AppleDouble files), which carry an image suffix."""
    return Path(name).name.startswith("._")


def _read_tree(source: Path) -> dict:
    """Read an ImageFolder directory or a ``.tar.gz`` of one (or the MNIST-PNG archive with its CSV)."""
    entries: list[tuple[tuple[str, ...], bytes]] = []
    dirs: set[tuple[str, ...]] = set()
    skipped: list[str] = []
    csv_text = None
    if source.is_dir():
        for p in sorted(source.rglob("*")):
            parts = p.relative_to(source).parts
            if p.is_dir():
                dirs.add(parts)
            elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                if _is_resource_fork(p.name):
                    skipped.append(str(p))
                else:
                    entries.append((parts, p.read_bytes()))
            elif p.is_file() and p.suffix.lower() == ".csv" and csv_text is None:
                csv_text = (parts, p.read_text())
    else:
        try:
            with tarfile.open(source, "r:*") as tar:
                for m in tar:
                    parts = tuple(Path(m.name).parts)
                    if m.isdir():
                        dirs.add(parts)
                        continue
                    if not m.isfile():
                        continue
                    suffix = Path(m.name).suffix.lower()
                    if suffix in IMAGE_SUFFIXES:
                        if _is_resource_fork(m.name):
                            skipped.append(f"{m.name} in {source}")
                        else:
                            entries.append((parts, tar.extractfile(m).read()))
                    elif suffix == ".csv" and csv_text is None:
                        csv_text = (parts, tar.extractfile(m).read().decode())
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataUnavailableError(
                f"Could not read the archive {source}: it is truncated or damaged ({type(exc).__name__}: "
                f"{exc}). Copy or download it again (or pass the unpacked folder).") from exc
    if skipped:
        warnings.warn(f"skipped {len(skipped)} macOS metadata file(s) (._* AppleDouble files, not images), "
                      f"e.g. {skipped[0]}", stacklevel=3)
    entries.sort(key=lambda e: e[0])
    if csv_text is not None:  # flat image directory + "file,target" CSV (the MNIST-PNG archive)
        parts, text = csv_text
        base = parts[:-1]
        labels_of = {}
        for line in text.strip().splitlines()[1:]:
            f, t = line.rsplit(",", 1)
            labels_of[base + tuple(Path(f).parts)] = int(t)
        labelled = [(p, b) for p, b in entries if p in labels_of]
        if labelled:
            images = _decode([(_where(source, p), b) for p, b in labelled])
            labels = torch.tensor([labels_of[p] for p, _ in labelled], dtype=torch.int64)
            classes = [str(i) for i in range(int(labels.max()) + 1)]
            return {"splits": {"all": (images, labels)}, "classes": classes}
    return _group(entries, dirs, source)


def load_image_tree(source: str | os.PathLike, cache: str | os.PathLike | None = None,
                    verbose: bool = True) -> dict:
    """Decode an ImageFolder directory or ``.tar.gz`` once and cache it as uint8 tensors.

    Returns ``{"splits": {split: (images uint8 (N,C,H,W), labels int64 (N,))}, "classes": [...]}``.
    The cache (``<cache>/decoded/<name>-<key>.pt``, see :func:`cache_dir`) is keyed by the
    source's content as seen by the file system: for a directory every file's path, size and
    modification time, for an archive its size and modification time. Any edit therefore decodes
    afresh. It is written atomically.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise DataUnavailableError(f"{source} does not exist: pass an existing ImageFolder "
                                   "directory or a .tar.gz of one.")
    cache = _cache_file(source, cache_dir(cache))
    if cache.is_file():
        try:
            tree = torch.load(cache, weights_only=True)
            _FOLDERS[source.resolve()] = tree.get("folders")
            return tree
        except Exception:  # a damaged cache is rebuilt
            pass
    if verbose:
        print(f"hopfield_lab.data: decoding {source} once (cached at {cache})", flush=True)
    tree = _read_tree(source)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _clean_cache(cache, source)
        atomic_save(tree, cache)
    except OSError as exc:  # read-only cache: still usable, just slower next time
        if verbose:
            print(f"hopfield_lab.data: could not write the cache {cache}: {exc}")
    _FOLDERS[source.resolve()] = tree.get("folders")
    if verbose and tree.get("folders"):
        print("hopfield_lab.data: splits of " + str(source) + ": "
              + ", ".join(f"{s} = {f}" for s, f in tree["folders"].items()), flush=True)
    return tree


_FOLDERS: dict[Path, dict | None] = {}  # source -> which folder formed each split (load_image_tree)


# ---------------------------------------------------------------------------------------------
# built-in data sets
# ---------------------------------------------------------------------------------------------
def synthetic_dataset(n: int = 2048, num_classes: int = 10, channels: int = 3, size: int = 32,
                      noise: float = 0.35, seed: int = 0, split: str = "train"):
    """Seeded class-conditional patterns: each class a smooth random prototype, plus pixel noise.

    Train and test share the prototypes (drawn from ``seed``) and differ in the noise (the test
    split uses another stream), so a model can generalise. Returns uint8 images
    ``(n, channels, size, size)`` and int64 labels ``(n,)`` (balanced, shuffled).
    """
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(num_classes, channels, 4, 4, generator=g)
    protos = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    protos = (protos - protos.mean()) / (protos.std() + 1e-8)
    gs = torch.Generator().manual_seed(seed * 7919 + (1 if split == "train" else 2))
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=gs)]
    x = protos[labels] + noise * 2.5 * torch.randn(n, channels, size, size, generator=gs)
    images = (128 + 40 * x).round().clamp(0, 255).to(torch.uint8)
    return images, labels.to(torch.int64)


def _load_synthetic(spec, split, root, download, options):
    if split == "test":
        options = {**options, "n": options.get("n_test", options.get("n", 2048) // 4)}
    options = {k: v for k, v in options.items() if k != "n_test"}
    return synthetic_dataset(split=split, **options)


def _load_digits(spec, split, root, download, options):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8))[:, None]
    labels = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = 360
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    return images[idx].contiguous(), labels[idx].contiguous()


def _load_archive_or_torchvision(spec, split, root, download, options):
    """The offline archive when one is found in the data roots, else torchvision (may download)."""
    src = find_archive(spec.name, root)
    if src is not None:
        return load_image_tree(src)["splits"][split]
    if spec.torchvision is None:
        raise DataUnavailableError(
            f"{spec.name!r} needs the archive {spec.archive} in the data root "
            f"({', '.join(map(str, _search_dirs(root)))}); set {DATA_ENV} to the folder that holds it.")
    return _torchvision(spec, split, data_root(root) / "torchvision", download)


def _load_mnist_test10k(spec, split, root, download, options):
    """The 10,000 MNIST test images of the PNG archive, split 8k/2k with a fixed permutation."""
    src = find_archive(spec.name, root)
    if src is None:
        raise DataUnavailableError(
            f"'mnist-test10k' needs the archive {spec.archive} in the data root "
            f"({', '.join(map(str, _search_dirs(root)))}); set {DATA_ENV} to the folder that "
            "holds it, or use dataset='mnist' (torchvision download)."
        )
    images, labels = load_image_tree(src)["splits"]["all"]
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    idx = perm[:2000] if split == "test" else perm[2000:]
    return images[idx].contiguous(), labels[idx].contiguous()


def _torchvision(spec, split: str, root: Path, download: bool):
    name = spec.name
    help_text = (
        f"To use {name!r} without a download: set {DATA_ENV} to a folder holding the data "
        f"(torchvision's layout{', or ' + spec.archive if spec.archive else ''}), pass "
        "an ImageFolder directory or .tar.gz as the data set, or use quick mode "
        "(hopfield_lab.data.quick_dataset / dataset='synthetic' or 'digits')."
    )
    try:
        import torchvision.datasets as tvd
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise DataUnavailableError(
            f"Loading {name!r} needs torchvision, which cannot be imported here ({type(exc).__name__}: "
            f"{exc}). Install a torchvision matching your torch (pip install torchvision). {help_text}"
        ) from exc
    cls = getattr(tvd, spec.torchvision)
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
    except Exception as exc:  # URLError, RuntimeError("Dataset not found")...
        raise DataUnavailableError(
            f"Could not load {name!r} ({split}) with torchvision into {root} "
            f"(download={download}): {type(exc).__name__}: {exc}. {help_text}"
        ) from exc
    data = ds.data
    data = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.asarray(data))
    if data.ndim == 3:
        data = data[:, None]
    else:
        data = data.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return data.contiguous().to(torch.uint8), labels


@dataclass(frozen=True)
class DatasetSpec:
    """One named data set of :data:`DATASETS`.

    ``load(spec, split, root, download, options)`` returns a split as uint8 ``(N, C, H, W)`` and
    int64 ``(N,)``; ``about`` is the one line the docs, help texts and messages show;
    ``num_classes`` (None: the ``num_classes`` option, default 10); ``normalization`` the
    per-channel ``(mean, std)`` of the training images as fractions of 255 (None: measured);
    ``archive`` the file name of an offline copy looked for in the data roots; ``torchvision``
    the ``torchvision.datasets`` class used without one; ``offline``: bundled, nothing to
    download; ``stand_ins``: offline data sets quick mode may choose instead, in order;
    ``options``: the names of the ``dataset_options`` it accepts.
    """

    name: str
    about: str
    load: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    num_classes: int | None = None
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    archive: str | None = None
    torchvision: str | None = None
    offline: bool = False
    stand_ins: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def classes(self, options: dict | None = None) -> int:
        """The number of classes (for a data set with options, from ``options``)."""
        return self.num_classes if self.num_classes is not None else int((options or {}).get("num_classes", 10))


_MNIST_NORM = ((0.1307,), (0.3081,))

#: The named data sets (the one list of them: add a data set here).
DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (
    DatasetSpec("mnist", "torchvision's MNIST (train 60k / test 10k, 1x28x28)", _load_archive_or_torchvision,
                10, _MNIST_NORM, torchvision="MNIST", stand_ins=("mnist-test10k", "digits")),
    DatasetSpec("cifar10", "CIFAR-10 (50k / 10k, 3x32x32): the archive cifar10-jpeg.tar.gz when found in the "
                "data root, else torchvision", _load_archive_or_torchvision, 10,
                ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), archive="cifar10-jpeg.tar.gz",
                torchvision="CIFAR10"),
    DatasetSpec("cifar100", "torchvision's CIFAR-100 (50k / 10k, 3x32x32)", _load_archive_or_torchvision, 100,
                ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)), torchvision="CIFAR100"),
    DatasetSpec("digits", "scikit-learn's bundled 8x8 digits (1797 images, no download), a fixed 80/20 split",
                _load_digits, 10, offline=True),
    DatasetSpec("synthetic", "seeded class-conditional patterns of any size, no download", _load_synthetic,
                offline=True, options=("n", "n_test", "num_classes", "channels", "size", "noise", "seed")),
    DatasetSpec("mnist-test10k", "the 10,000 MNIST test images of mnist-test10k-png.tar.gz, split 8k/2k (an "
                "offline stand-in, never chosen silently)", _load_mnist_test10k, 10, _MNIST_NORM,
                archive="mnist-test10k-png.tar.gz"),
)}


def describe_datasets() -> str:
    """One line per data set of :data:`DATASETS` (name: what it is)."""
    return "\n".join(f"* ``{d.name!r}``: {d.about}" + (f" (options: {', '.join(d.options)})" if d.options else "")
                     for d in DATASETS.values())


__doc__ = (__doc__ or "") + "\nThe named data sets:\n\n" + describe_datasets() + "\n"

_MEMO: dict = {}


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = True, **options):
    """Load a whole split as ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    Parameters
    ----------
    name:
        A data set of :data:`DATASETS` (:func:`describe_datasets`), or a path to an ImageFolder
        directory / ``.tar.gz`` of one.
    split:
        ``"train"`` or ``"test"``.
    root:
        Data root for downloads and offline archives; default ``$HOPFIELD_LAB_DATA`` or
        ``~/.cache/hopfield_lab``. A data set's archive (e.g. ``cifar10-jpeg.tar.gz``) found in
        ``root`` or ``$HOPFIELD_LAB_DATA`` is used before torchvision.
    download:
        Let torchvision download missing files.
    options:
        For data sets that take options (``"synthetic"``: ``n``, ``n_test``, ``num_classes``,
        ``channels``, ``size``, ``noise``, ``seed``).

    Raises :class:`DataUnavailableError` with instructions when the data cannot be had; it never
    substitutes other data.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}.")
    spec = DATASETS.get(str(name).lower())
    if spec is None:
        if options:
            raise ValueError(f"dataset_options {sorted(options)} are for named data sets; an image folder or "
                             f"archive ({name}) takes none: drop them (--dataset-options).")
        return _load_path(str(name), split)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(f"Options {unknown} are not understood by the {spec.name!r} data set ("
                         + (f"its options: {', '.join(spec.options)}" if spec.options else "it takes none")
                         + "): fix or drop them in dataset_options (--dataset-options).")
    # Named sets are kept for the process (folders and archives are looked at again on every call:
    # load_image_tree's cache key notices edits); data sets with options are cheap to remake.
    key = (spec.name, split, str(root))
    if not spec.options and key in _MEMO:
        return _MEMO[key]
    out = spec.load(spec, split, root, download, dict(options))
    if not spec.options:
        _MEMO[key] = out
    return out


def _load_path(name: str, split: str):
    path = Path(name).expanduser()
    if path.exists():
        tree = load_image_tree(path)
        if split not in tree["splits"]:
            raise DataUnavailableError(f"{path} has no {split!r} split (found {sorted(tree['splits'])}).")
        return tree["splits"][split]
    named = ", ".join(repr(d) for d in DATASETS)
    if os.sep in name or "/" in name or name.endswith((".tar.gz", ".tgz", ".tar")):
        raise DataUnavailableError(f"No such file or folder: {path}. Pass an existing ImageFolder directory or "
                                   f".tar.gz of one, or a named data set ({named}).")
    raise DataUnavailableError(f"Unknown data set {name!r}: use one of {named}, or the path of an ImageFolder "
                               "directory or .tar.gz.")


def num_classes(name: str, labels: torch.Tensor | None = None, options: dict | None = None) -> int:
    """Number of classes of a named data set (with its ``options``), else 1 + the largest label seen."""
    spec = DATASETS.get(str(name).lower())
    if spec is not None:
        return spec.classes(options)
    if labels is None:
        raise ValueError(f"Cannot tell the number of classes of {name!r} without its labels.")
    return int(labels.max()) + 1


def normalization(name: str, images: torch.Tensor | None = None):
    """Per-channel ``(mean, std)`` as fractions of 255: the data set's known values (a path named
    after a data set, e.g. ``cifar10-jpeg.tar.gz``, counts as it), else measured on ``images``."""
    base = Path(str(name)).name.split(".")[0].split("-")[0].lower()
    for key in (str(name).lower(), base):
        spec = DATASETS.get(key)
        if spec is not None and spec.normalization is not None:
            mean, std = spec.normalization
            if images is None or len(mean) == images.shape[1]:
                return mean, std
    if images is None:
        raise ValueError(f"No known normalisation for {name!r}: pass the training images.")
    x = images[: 20000].to(torch.float32) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def quick_dataset(preferred: str = "cifar10", root: str | os.PathLike | None = None,
                  verbose: bool = True) -> str:
    """Choose a data set that is available offline, *explicitly*, and print the choice.

    ``preferred`` itself when it is bundled or its archive is found (no download), else its first
    available offline stand-in (:attr:`DatasetSpec.stand_ins`), else ``"synthetic"``. Returns the
    name to pass to :func:`load_dataset`.
    """
    spec = DATASETS.get(str(preferred).lower())
    choice, why = "synthetic", f"no offline copy of {preferred!r} found"
    if spec is not None and spec.offline:
        choice, why = spec.name, "bundled, no download"
    elif spec is not None and find_archive(spec.name, root) is not None:
        choice, why = spec.name, f"local archive {find_archive(spec.name, root)}"
    elif spec is not None:
        for alt in map(DATASETS.get, spec.stand_ins):
            if alt.offline or find_archive(alt.name, root) is not None:
                choice, why = alt.name, f"{alt.about}; offline stand-in for {spec.name}"
                break
    if verbose:
        print(f"hopfield_lab.data: quick mode uses {choice!r} ({why}).", flush=True)
    return choice


# ---------------------------------------------------------------------------------------------
# both splits of a run
# ---------------------------------------------------------------------------------------------
def subset_indices(n: int, k: int | None) -> torch.Tensor:
    """The one subset rule (``train_subset`` / ``test_subset``): a fixed random choice of ``k`` of
    ``n`` indices (seed 0), in increasing order; all ``n`` when ``k`` is None or at least ``n``.

    Not the first ``k``: image-folder archives list their samples class by class, so a prefix
    can hold a single class.
    """
    if not k or k >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k].sort().values


@dataclass
class Splits:
    """Both splits of a run: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` (CPU), the number
    of classes and the per-channel normalisation (fractions of 255) of the training images."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: dict | None = None

    def meta(self, img_size: int | None = None) -> dict:
        """What the trainer needs to build a model and record the data: ``num_classes, in_chans,
        img_size, n_train, n_test`` and ``data`` (:attr:`source` with the :meth:`fingerprint`)."""
        return {"num_classes": self.num_classes, "in_chans": int(self.x_train.shape[1]),
                "img_size": int(img_size or self.x_train.shape[-1]), "n_train": len(self.y_train),
                "n_test": len(self.y_test), "data": {**(self.source or {}), "fingerprint": self.fingerprint()}}

    def fingerprint(self) -> str:
        """A hash of both splits' images and labels (16 hex digits; ~0.5 s for CIFAR-10): another
        copy of a data set, an edited folder or another subset gives another fingerprint."""
        h = hashlib.sha1()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.contiguous().numpy().data)
        return h.hexdigest()[:16]


def load_splits(cfg) -> Splits:
    """Both splits named by a run's configuration (a :class:`~hopfield_lab.train.TrainConfig`, or
    anything with its fields ``dataset, data_root, download, dataset_options, train_subset,
    test_subset``), subsets taken by :func:`subset_indices`.

    Raises a ValueError when a label lies outside the data set's classes or a split is empty.
    """
    opts = dict(cfg.dataset_options or {})
    x_tr, y_tr = load_dataset(cfg.dataset, "train", root=cfg.data_root, download=cfg.download, **opts)
    x_te, y_te = load_dataset(cfg.dataset, "test", root=cfg.data_root, download=cfg.download, **opts)
    for split, y in (("training", y_tr), ("test", y_te)):
        if len(y) == 0:
            raise ValueError(f"the {split} split of {cfg.dataset!r} has no images, so the run could not "
                             + ("learn anything" if split == "training" else "be evaluated (its accuracy would read 0)")
                             + ": give it images" + (" (dataset_options n / n_test >= 1)" if opts else "") + ".")
    keep_tr, keep_te = subset_indices(len(y_tr), cfg.train_subset), subset_indices(len(y_te), cfg.test_subset)
    x_tr, y_tr, x_te, y_te = x_tr[keep_tr], y_tr[keep_tr], x_te[keep_te], y_te[keep_te]
    labels = torch.cat([y_tr, y_te])
    n_cls = num_classes(cfg.dataset, labels, opts)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= n_cls):
        raise ValueError(f"{cfg.dataset!r} has labels outside 0..{n_cls - 1} "
                         f"(from {int(labels.min())} to {int(labels.max())}).")
    mean, std = normalization(cfg.dataset, x_tr)
    return Splits(x_tr, y_tr, x_te, y_te, n_cls, mean, std, data_source(cfg.dataset, cfg.data_root, **opts))


def data_source(name: str, root: str | os.PathLike | None = None, **options) -> dict:
    """Where :func:`load_dataset` takes data set ``name`` from: ``{"source": str, "folders": ...}``.

    ``source`` is the archive or folder read (e.g. ``/data/cifar10-jpeg.tar.gz``: the JPEG copy of
    CIFAR-10), ``"torchvision CIFAR10 (<root>)"`` for torchvision's PNG-exact files, or the
    generator and its options; ``folders`` (image trees) says which folder formed each split.
    """
    spec = DATASETS.get(str(name).lower())
    path = Path(str(name)).expanduser() if spec is None else find_archive(spec.name, root)
    if spec is not None and spec.offline:
        return {"source": f"{spec.name}: {spec.about}" + (f", options {options}" if options else "")}
    if path is None:
        return {"source": f"torchvision {spec.torchvision} ({data_root(root) / 'torchvision'})"}
    path = path.resolve()
    return {"source": str(path), "folders": _FOLDERS.get(path)}


# ---------------------------------------------------------------------------------------------
# the device-resident loader
# ---------------------------------------------------------------------------------------------
@dataclass
class Augment:
    """On-device augmentation options.

    crop_padding: pad each side by this many pixels, then crop back at a random offset (0: off).
    pad_mode: ``"reflect"`` or ``"zeros"``.
    flip: random horizontal flip with probability 1/2.
    """

    crop_padding: int = 0
    pad_mode: str = "reflect"
    flip: bool = False

    def __post_init__(self):
        if self.pad_mode not in ("reflect", "zeros"):
            raise ValueError(f"pad_mode must be 'reflect' or 'zeros', not {self.pad_mode!r}.")
        if self.crop_padding < 0:
            raise ValueError("crop_padding must be >= 0.")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip


def crop_flip_params(n: int, aug: Augment, generator: torch.Generator | None = None,
                     device: str | torch.device | None = None):
    """Random parameters of :func:`random_crop_flip` for ``n`` images: ``(offsets, flips)``.

    ``offsets``: int64 ``(2, n)``, the crop's ``(dy, dx)`` in ``[0, 2p]`` (None when cropping is
    off); ``flips``: bool ``(n,)``, True = mirror (None when flipping is off). Drawn in this order
    from ``generator`` (on ``device``).
    """
    p = aug.crop_padding
    off = torch.randint(0, 2 * p + 1, (2, n), device=device, generator=generator) if p > 0 else None
    coin = (torch.rand(n, device=device, generator=generator) < 0.5) if aug.flip else None
    return off, coin


def random_crop_flip(x: torch.Tensor, aug: Augment, generator: torch.Generator | None = None, *,
                     offsets: torch.Tensor | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Batched random crop (with padding) and horizontal flip of float images ``(B, C, H, W)``.

    Each image gets its own offsets ``(dy, dx)`` in ``[0, 2p]`` and its own coin; two gathers do
    the crops for the whole batch at once. ``offsets`` (int ``(2, B)``) and ``flips`` (bool
    ``(B,)``), e.g. rows of :func:`crop_flip_params`, fix them; otherwise they are drawn from
    ``generator``.
    """
    B, C, H, W = x.shape
    dev = x.device
    p = aug.crop_padding
    if (p > 0 and offsets is None) or (aug.flip and flips is None):
        drawn = crop_flip_params(B, aug, generator, dev)
        offsets = drawn[0] if offsets is None else offsets
        flips = drawn[1] if flips is None else flips
    if p > 0:
        if aug.pad_mode == "reflect" and (p >= H or p >= W):
            raise ValueError(f"reflect padding {p} needs images larger than {p} pixels.")
        xp = F.pad(x, (p, p, p, p), mode="reflect" if aug.pad_mode == "reflect" else "constant")
        off = offsets.to(dev)
        rows = off[0][:, None] + torch.arange(H, device=dev)  # (B, H)
        cols = off[1][:, None] + torch.arange(W, device=dev)  # (B, W)
        xp = xp.gather(2, rows[:, None, :, None].expand(B, C, H, W + 2 * p))
        x = xp.gather(3, cols[:, None, None, :].expand(B, C, H, W))
    if aug.flip:
        x = torch.where(flips.to(dev)[:, None, None, None], x.flip(3), x)
    return x


class DeviceLoader:
    """Batches of a whole split held on the device as uint8, normalised and augmented there.

    Parameters
    ----------
    images, labels:
        uint8 ``(N, C, H, W)`` and int64 ``(N,)``; moved to ``device`` once.
    batch_size:
        Images per batch (per process under DDP).
    device:
        Where data and batches live (``"cuda"``, ``"cpu"``...).
    train:
        Shuffle each epoch and (by default) drop the last incomplete batch so every batch has the
        same shape (no recompilation under ``torch.compile``).
    mean, std:
        Per-channel normalisation as fractions of 255 (default: no normalisation beyond /255).
    augment:
        An :class:`Augment` (random crop with padding, flip), applied only when ``train``.
    img_size:
        Resize batches to this size on the device (bilinear, antialiased); ``None`` keeps the size.
    seed:
        The shuffle and augmentation streams of epoch ``e`` are seeded with ``(seed, e)``, so an
        epoch's batches depend only on ``seed`` and ``e``: resuming at an epoch boundary is exact.
        The crop offsets and flips of an epoch are drawn once for every sample and looked up by
        sample index, so an image's augmentation does not depend on the batch size, the shard or
        the world size either.
    shard:
        Under DDP, a function mapping the global permutation (same on all ranks) to this rank's
        equal-size part (:func:`hopfield_lab.distributed.shard`).
    dtype:
        Floating dtype of the image batches.

    Iterating yields ``(images float (B, C, H', W'), labels int64 (B,))`` on ``device``.
    Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 device: str | torch.device = "cpu", train: bool = False,
                 mean=None, std=None, augment: Augment | None = None,
                 img_size: int | None = None, drop_last: bool | None = None, seed: int = 0,
                 shard: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 dtype: torch.dtype = torch.float32):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}.")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels must be (N,) with N = {len(images)}, got {tuple(labels.shape)}.")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1.")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.augment = augment if (augment is not None and self.train) else Augment()
        self.img_size = img_size
        self.seed = int(seed)
        self.shard = shard
        self.dtype = dtype
        C = images.shape[1]
        mean = (0.0,) * C if mean is None else tuple(mean)
        std = (1.0,) * C if std is None else tuple(std)
        if len(mean) != C or len(std) != C:
            raise ValueError(f"mean/std need {C} values (one per channel), got {len(mean)}/{len(std)}.")
        # x_norm = (u8 / 255 - mean) / std  =  u8 * scale + shift
        self._scale = (1.0 / (255.0 * torch.tensor(std))).view(1, C, 1, 1).to(self.device, dtype)
        self._shift = (-torch.tensor(mean) / torch.tensor(std)).view(1, C, 1, 1).to(self.device, dtype)
        self.epoch = 0
        if self.drop_last and self.num_samples < self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds the {self.num_samples} training images "
                "(per process); lower the batch size.")

    # -- sizes ------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Images this process sees per epoch."""
        n = len(self.labels)
        if self.shard is not None:
            n = len(self.shard(torch.arange(n)))
        return n

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        C, H, W = self.images.shape[1:]
        if self.img_size is not None:
            H = W = self.img_size
        return (C, H, W)

    # -- epochs -----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle/augmentation streams of ``epoch``."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        if self.train:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.shard is not None:
            order = self.shard(order)
        return order.to(self.device)

    def _aug_generator(self) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed * 1_000_003 + self.epoch + 7_777_777)
        return g

    def augment_params(self):
        """This epoch's ``(offsets (2, N), flips (N,))`` for all N samples (:func:`crop_flip_params`),
        indexed by sample id; the same on every rank."""
        return crop_flip_params(len(self.labels), self.augment, self._aug_generator(), self.device)

    def transform(self, u8: torch.Tensor, generator: torch.Generator | None = None, *,
                  offsets: torch.Tensor | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 batch ``(B, C, H, W)`` -> normalised, augmented float batch (crop ``offsets``
        ``(2, B)`` and ``flips`` ``(B,)`` given, or drawn from ``generator``)."""
        x = u8.to(self.dtype)
        if self.augment.active:  # before normalising, so zero padding is black
            x = random_crop_flip(x, self.augment, generator, offsets=offsets, flips=flips)
        x = x * self._scale + self._shift
        if self.img_size is not None and tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        off, flip = self.augment_params() if self.augment.active else (None, None)
        n = len(order)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield (self.transform(self.images[idx], offsets=None if off is None else off[:, idx],
                                  flips=None if flip is None else flip[idx]), self.labels[idx])
