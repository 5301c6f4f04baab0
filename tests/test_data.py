"""Data sets and the device-resident loader (tiny data only; no download, no shared archives)."""
import io
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from hopfield_lab import data as hd


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Caches and data roots in a temp folder; no $HOPFIELD_LAB_DATA from the environment."""
    monkeypatch.setenv(hd.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(hd.DATA_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    hd._MEMO.clear()


def _png(arr: np.ndarray, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _image_tree(root, splits=("train", "test"), classes=("cat", "ant", "dog"), per_class=3, size=6):
    """ImageFolder tree root/<prefix>/<split>/<class>/<i>.png; pixel value encodes (class, i)."""
    truth = {}
    for s in splits:
        for ci, c in enumerate(classes):
            d = root / s / c if s else root / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = np.full((size, size, 3), 10 * ci + i + (100 if s == "test" else 0), np.uint8)
                (d / f"{i:03d}.png").write_bytes(_png(arr))
                truth.setdefault(s, []).append((c, arr))
    return truth


def test_synthetic_shapes_seeded_and_learnable():
    x, y = hd.load_dataset("synthetic", "train", n=200, size=12, channels=3, num_classes=5, seed=3)
    assert x.dtype == torch.uint8 and x.shape == (200, 3, 12, 12)
    assert y.dtype == torch.int64 and y.shape == (200,) and set(y.tolist()) == set(range(5))
    x2, y2 = hd.load_dataset("synthetic", "train", n=200, size=12, channels=3, num_classes=5, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    xt, yt = hd.load_dataset("synthetic", "test", n=200, n_test=60, size=12, num_classes=5, seed=3)
    assert xt.shape == (60, 3, 12, 12) and not torch.equal(xt[:10], x[:10])
    # class means of train and test agree better with their own class than with others
    mtr = torch.stack([x[y == k].float().mean(0) for k in range(5)]).flatten(1)
    mte = torch.stack([xt[yt == k].float().mean(0) for k in range(5)]).flatten(1)
    assert torch.equal(torch.cdist(mte, mtr).argmin(1), torch.arange(5))


def test_digits_split_shapes():
    xtr, ytr = hd.load_dataset("digits", "train")
    xte, yte = hd.load_dataset("digits", "test")
    assert xtr.shape == (1437, 1, 8, 8) and xte.shape == (360, 1, 8, 8)
    assert xtr.dtype == torch.uint8 and int(xtr.max()) == 255 and ytr.dtype == torch.int64
    assert hd.num_classes("digits") == 10 and set(yte.tolist()) == set(range(10))


def test_image_folder_directory_and_cache(tmp_path, capsys):
    root = tmp_path / "imgs"
    truth = _image_tree(root)
    x, y = hd.load_dataset(str(root), "train")
    assert x.shape == (9, 3, 6, 6) and x.dtype == torch.uint8
    # classes are numbered in sorted order (ant=0, cat=1, dog=2), as in torchvision's ImageFolder
    names = sorted({c for c, _ in truth["train"]})
    for img, lab in zip(x, y):
        v = int(img[0, 0, 0])
        cls = ("cat", "ant", "dog")[v // 10]
        assert names[int(lab)] == cls
    assert "decoding" in capsys.readouterr().out
    hd._MEMO.clear()
    x2, y2 = hd.load_dataset(str(root), "test")  # served from the cache now
    assert "decoding" not in capsys.readouterr().out
    assert x2.shape == (9, 3, 6, 6) and int(x2.min()) >= 100
    assert list((tmp_path / "cache" / "decoded").glob("imgs-*.pt"))


def test_archive_found_by_name_in_data_root(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _image_tree(src / "cifar10", classes=("airplane", "truck"), per_class=2, size=4)
    droot = tmp_path / "data"
    droot.mkdir()
    with tarfile.open(droot / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar10", arcname="cifar10")
    x, y = hd.load_dataset("cifar10", "test", root=droot)
    assert x.shape == (4, 3, 4, 4) and sorted(y.tolist()) == [0, 0, 1, 1]
    hd._MEMO.clear()
    monkeypatch.setenv(hd.DATA_ENV, str(droot))  # found through $HOPFIELD_LAB_DATA as well
    x2, _ = hd.load_dataset("cifar10", "train")
    assert x2.shape == (4, 3, 4, 4)


def test_csv_labelled_png_archive(tmp_path):
    d = tmp_path / "m" / "mnist-test10k" / "imgs"
    d.mkdir(parents=True)
    rows = ["file,target"]
    for i in range(20):
        (d / f"{i:06d}.png").write_bytes(_png(np.full((5, 5), i, np.uint8)))
        rows.append(f"imgs/{i:06d}.png,{i % 4}")
    (d.parent / "labels.csv").write_text("\n".join(rows))
    arch = tmp_path / "mnist-test10k-png.tar.gz"
    with tarfile.open(arch, "w:gz") as tar:
        tar.add(tmp_path / "m" / "mnist-test10k", arcname="mnist-test10k")
    tree = hd.load_image_tree(arch)
    x, y = tree["splits"]["all"]
    assert x.shape == (20, 1, 5, 5)
    assert torch.equal(y, x[:, 0, 0, 0].long() % 4)  # labels follow the CSV, grey stays 1 channel


def test_missing_data_gives_instructions(tmp_path):
    with pytest.raises(hd.DataUnavailableError, match="HOPFIELD_LAB_DATA"):
        hd.load_dataset("cifar100", "train", root=tmp_path, download=False)
    with pytest.raises(hd.DataUnavailableError, match="mnist-test10k"):
        hd.load_dataset("mnist-test10k", "train", root=tmp_path)
    with pytest.raises(hd.DataUnavailableError, match="Unknown data set"):
        hd.load_dataset("no-such-set", "train")
    with pytest.raises(ValueError, match="split"):
        hd.load_dataset("digits", "validation")


def test_quick_dataset_says_what_it_uses(tmp_path, capsys):
    assert hd.quick_dataset("cifar10", root=tmp_path) == "synthetic"
    assert "synthetic" in capsys.readouterr().out
    assert hd.quick_dataset("mnist", root=tmp_path) == "digits"
    assert "digits" in capsys.readouterr().out


def test_device_loader_batches_epochs_and_normalisation():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (103, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(103)
    mean, std = hd.normalization("custom", x)
    tr = hd.DeviceLoader(x, y, 16, train=True, mean=mean, std=std, seed=1)
    assert len(tr) == 6 and tr.image_shape == (3, 8, 8)
    tr.set_epoch(0)
    b0 = list(tr)
    assert all(xb.shape == (16, 3, 8, 8) and xb.dtype == torch.float32 for xb, _ in b0)
    seen = torch.cat([yb for _, yb in b0])
    assert len(set(seen.tolist())) == 96  # a permutation, last partial batch dropped
    # images follow their labels through the shuffle; normalisation is (u8/255 - mean)/std
    xb, yb = b0[0]
    ref = (x[yb].float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(xb, ref)
    tr.set_epoch(0)
    assert torch.equal(torch.cat([yb for _, yb in tr]), seen)  # an epoch is reproducible
    tr.set_epoch(1)
    assert not torch.equal(torch.cat([yb for _, yb in tr]), seen)  # and reshuffled next epoch
    te = hd.DeviceLoader(x, y, 16, train=False)
    assert len(te) == 7 and torch.equal(torch.cat([yb for _, yb in te]), y)  # all, in order


def test_random_crop_is_a_window_of_the_padded_image_and_flip_mirrors():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 2, 6, 6, generator=g)
    for mode in ("reflect", "zeros"):
        aug = hd.Augment(crop_padding=2, pad_mode=mode)
        out = hd.random_crop_flip(x, aug, torch.Generator().manual_seed(1))
        xp = torch.nn.functional.pad(x, (2,) * 4, mode="reflect" if mode == "reflect" else "constant")
        offsets = set()
        for b in range(12):
            hits = [(i, j) for i in range(5) for j in range(5)
                    if torch.equal(out[b], xp[b, :, i:i + 6, j:j + 6])]
            assert hits, "every crop is a 6x6 window of the padded image"
            offsets.add(hits[0])
        assert len(offsets) > 1
    out = hd.random_crop_flip(x, hd.Augment(flip=True), torch.Generator().manual_seed(2))
    flipped = [torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_device_loader_shards_are_disjoint():
    x = torch.zeros(40, 1, 4, 4, dtype=torch.uint8)
    y = torch.arange(40)
    parts = []
    for rank in range(2):
        ld = hd.DeviceLoader(x, y, 5, train=True, seed=0, shard=lambda idx, r=rank: idx[r::2][:20])
        ld.set_epoch(3)
        parts.append(torch.cat([yb for _, yb in ld]))
    assert len(parts[0]) == 20 and not set(parts[0].tolist()) & set(parts[1].tolist())


def test_device_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        hd.DeviceLoader(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="batch_size"):
        hd.DeviceLoader(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 8, train=True)
    with pytest.raises(ValueError, match="pad_mode"):
        hd.Augment(crop_padding=2, pad_mode="edge")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_loader_on_cuda():
    x, y = hd.load_dataset("synthetic", "train", n=256, size=16)
    ld = hd.DeviceLoader(x, y, 64, device="cuda", train=True, augment=hd.Augment(4, "reflect", True),
                         mean=(0.5,) * 3, std=(0.25,) * 3)
    ld.set_epoch(0)
    xb, yb = next(iter(ld))
    assert xb.is_cuda and yb.is_cuda and xb.shape == (64, 3, 16, 16) and yb.dtype == torch.int64


def test_device_loader_augmentation_is_per_sample_whatever_the_batch_and_world_size():
    x = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(48)  # labels name the samples
    aug = hd.Augment(crop_padding=2, pad_mode="zeros", flip=True)

    def by_sample(batch, world):
        out = {}
        for r in range(world):
            ld = hd.DeviceLoader(x, y, batch, train=True, seed=3, augment=aug,
                                 shard=(lambda idx, r=r: idx[r::world][: len(idx) // world]) if world > 1 else None)
            ld.set_epoch(2)
            out.update({int(i): img for xb, yb in ld for img, i in zip(xb, yb)})
        return out

    one = by_sample(12, 1)
    assert one.keys() == set(range(48))
    for batch, world in ((6, 2), (4, 3), (48, 1)):
        other = by_sample(batch, world)
        assert other.keys() == one.keys() and all(torch.equal(other[i], one[i]) for i in one), (batch, world)
    # augmentation is on, and each image is one of its crops/mirrors
    plain = {i: x[i].float() / 255 for i in range(48)}
    assert sum(not torch.equal(one[i], plain[i]) for i in one) > 40
    ld = hd.DeviceLoader(x, y, 12, train=True, seed=3, augment=aug)
    ld.set_epoch(3)
    assert not all(torch.equal(a, one[int(i)]) for xb, yb in ld for a, i in zip(xb, yb))  # new epoch, new draws
    before = torch.get_rng_state()
    ld.set_epoch(2)
    assert all(torch.equal(a, one[int(i)]) for xb, yb in ld for a, i in zip(xb, yb))  # resumable: (seed, epoch)
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left alone


# ---------------------------------------------------------------------------------------------
# the decoded cache follows the folder's content; bad folders and archives are named errors
# ---------------------------------------------------------------------------------------------
def _labels_by_class(root, split="train"):
    hd._MEMO.clear()
    tree = hd.load_image_tree(root, verbose=False)
    x, y = tree["splits"][split]
    return tree["classes"], x, y


def _touch(path, ns):
    os.utime(path, ns=(ns, ns))


@pytest.mark.parametrize("edit", ["add image", "change image", "remove image", "add class"])
def test_cache_notices_every_edit_inside_the_class_folders(tmp_path, edit):
    root = tmp_path / "imgs"
    _image_tree(root, per_class=3)
    top = root.stat().st_mtime_ns
    classes, x, _ = _labels_by_class(root)
    assert classes == ["ant", "cat", "dog"] and len(x) == 9
    cat = root / "train" / "cat"
    if edit == "add image":
        (cat / "100.png").write_bytes(_png(np.full((6, 6, 3), 77, np.uint8)))
    elif edit == "change image":
        (cat / "000.png").write_bytes(_png(np.full((6, 6, 3), 77, np.uint8)))
        _touch(cat / "000.png", 10**18)   # a new mtime, whatever the file system's resolution
    elif edit == "remove image":
        (cat / "000.png").unlink()
    else:
        for split, v in (("train", 50), ("test", 150)):
            (root / split / "eel").mkdir()
            (root / split / "eel" / "0.png").write_bytes(_png(np.full((6, 6, 3), v, np.uint8)))
    _touch(root, top)          # the top folder looks untouched: the old key would have hit the cache
    _touch(root / "train", top)
    classes2, x2, y2 = _labels_by_class(root)
    if edit == "add image":
        assert len(x2) == 10 and 77 in x2[:, 0, 0, 0].tolist()
    elif edit == "change image":
        assert len(x2) == 9 and 77 in x2[:, 0, 0, 0].tolist()
    elif edit == "remove image":
        assert len(x2) == 8
    else:
        assert classes2 == ["ant", "cat", "dog", "eel"] and len(x2) == 10 and int(y2.max()) == 3
    # the edit made a new cache file, and the old version of this folder's cache is gone
    assert len(list((tmp_path / "cache" / "decoded").glob("imgs-*.pt"))) == 1


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = tmp_path / "imgs"
    _image_tree(root)
    (root / "train" / "bee").mkdir()          # sorts first: dropping it would shift every label
    (root / "test" / "bee").mkdir()
    with pytest.raises(hd.DataUnavailableError, match=r"Class folder .*imgs/t\w+/bee has no images"):
        hd.load_dataset(str(root), "train")
    tar = tmp_path / "imgs.tar.gz"            # the same inside an archive
    with tarfile.open(tar, "w:gz") as t:
        t.add(root, arcname="imgs")
    with pytest.raises(hd.DataUnavailableError, match=r"Class folder imgs/t\w+/bee in .*imgs.tar.gz has no images"):
        hd.load_dataset(str(tar), "train")


def test_class_without_test_images_is_an_error_naming_the_folder(tmp_path):
    root = tmp_path / "imgs"
    _image_tree(root)
    for f in (root / "test" / "dog").iterdir():
        f.unlink()
    (root / "test" / "dog").rmdir()
    with pytest.raises(hd.DataUnavailableError, match=r"'dog' has train images but no test images .*test/dog"):
        hd.load_dataset(str(root), "train")


def test_non_image_file_is_named_and_macos_metadata_is_skipped(tmp_path):
    root = tmp_path / "imgs"
    _image_tree(root)
    (root / "train" / "cat" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    with pytest.warns(UserWarning, match=r"skipped 1 macOS metadata file.*\._000\.png"):
        x, _ = hd.load_dataset(str(root), "train")
    assert len(x) == 9
    (root / "train" / "cat" / "broken.png").write_text("not a picture")
    with pytest.warns(UserWarning, match="macOS"), pytest.raises(hd.DataUnavailableError, match=r"train/cat/broken\.png is not an image"):
        hd.load_dataset(str(root), "train")


def test_truncated_archive_is_a_clear_error(tmp_path):
    src = tmp_path / "src"
    _image_tree(src, per_class=20, size=16)
    full = tmp_path / "full.tar.gz"
    with tarfile.open(full, "w:gz") as t:
        t.add(src, arcname="src")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(hd.DataUnavailableError, match=r"cut\.tar\.gz: it is truncated or damaged"):
        hd.load_dataset(str(cut), "train")


# ---------------------------------------------------------------------------------------------
# the registry, both splits of a run, the one subset rule
# ---------------------------------------------------------------------------------------------
def test_subsets_are_a_fixed_random_sample_not_a_prefix():
    a, b = hd.subset_indices(1000, 50), hd.subset_indices(1000, 50)
    assert torch.equal(a, b) and len(set(a.tolist())) == 50 and torch.equal(a, a.sort().values)
    assert not torch.equal(a, torch.arange(50))  # a prefix of a class-sorted archive is one class
    assert torch.equal(hd.subset_indices(7, None), torch.arange(7)) and torch.equal(hd.subset_indices(7, 9), torch.arange(7))
    y = torch.arange(10).repeat_interleave(100)  # archives list their images class by class
    assert len(set(y[hd.subset_indices(1000, 50)].tolist())) >= 8


def test_load_splits_takes_both_splits_and_the_subsets_by_the_one_rule():
    from types import SimpleNamespace

    cfg = SimpleNamespace(dataset="synthetic", data_root=None, download=False, train_subset=40, test_subset=None,
                          dataset_options={"n": 100, "n_test": 30, "num_classes": 4, "size": 8})
    s = hd.load_splits(cfg)
    x, y = hd.load_dataset("synthetic", "train", n=100, n_test=30, num_classes=4, size=8)
    keep = hd.subset_indices(100, 40)
    assert torch.equal(s.x_train, x[keep]) and torch.equal(s.y_train, y[keep]) and len(s.y_test) == 30
    meta = s.meta()
    assert s.num_classes == 4 and meta.pop("data")["source"].startswith("synthetic") and meta == {
        "num_classes": 4, "in_chans": 3, "img_size": 8, "n_train": 40, "n_test": 30}
    assert s.meta(img_size=16)["img_size"] == 16 and (s.mean, s.std) == hd.normalization("synthetic", x[keep])
    digits = hd.load_splits(SimpleNamespace(dataset="digits", data_root=None, download=False, train_subset=None,
                                            test_subset=100, dataset_options={}))
    assert digits.num_classes == 10 and len(digits.y_train) == 1437 and len(digits.y_test) == 100


def test_registry_names_every_data_set_once_and_drives_messages():
    assert list(hd.DATASETS)[:6] == ["mnist", "cifar10", "cifar100", "digits", "synthetic", "mnist-test10k"]
    for name, spec in hd.DATASETS.items():
        assert spec.name == name and f"``{name!r}``" in hd.__doc__ and spec.about
    assert hd.num_classes("cifar100") == 100 and hd.num_classes("synthetic", options={"num_classes": 3}) == 3
    assert hd.normalization("/somewhere/cifar10-jpeg.tar.gz") == hd.DATASETS["cifar10"].normalization
    with pytest.raises(hd.DataUnavailableError, match="Unknown data set 'imagenet'.*'digits', 'synthetic'"):
        hd.load_dataset("imagenet")
    with pytest.raises(hd.DataUnavailableError, match="No such file or folder: .*nowhere/data.tar.gz"):
        hd.load_dataset("/nowhere/data.tar.gz")
    with pytest.raises(ValueError, match="not understood by the 'digits' data set \\(it takes none\\)"):
        hd.load_dataset("digits", n=10)
    with pytest.raises(ValueError, match=r"\['nn'\] are not understood by the 'synthetic' data set \(its options: n, "):
        hd.load_dataset("synthetic", nn=10)


# ---------------------------------------------------------------------------------------------
# issue 20: image trees that used to give silent wrong results
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("packed", [False, True], ids=["folder", "tar.gz"])
def test_nested_folders_belong_to_the_class_folder_below_the_split(tmp_path, packed):
    # train/<class>/<sub>/*.png: the class is <class> (torchvision's ImageFolder finds 3 classes
    # here); the innermost folder "all" used to be taken as the one class, and accuracy read 1.0
    root = tmp_path / "tree"
    for split in ("train", "test"):
        for ci, c in enumerate(("ant", "cat", "dog")):
            for j, sub in enumerate(("all", "all/deeper")):
                d = root / split / c / sub
                d.mkdir(parents=True, exist_ok=True)
                (d / "0.png").write_bytes(_png(np.full((4, 4, 3), 10 * ci + j, np.uint8)))
    source = root
    if packed:
        source = tmp_path / "tree.tar.gz"
        with tarfile.open(source, "w:gz") as t:
            t.add(root, arcname="wrapped")
    tree = hd.load_image_tree(source, verbose=False)
    x, y = tree["splits"]["train"]
    assert tree["classes"] == ["ant", "cat", "dog"] and len(y) == 6
    assert (x[:, 0, 0, 0] // 10).tolist() == y.tolist()  # every image carries its own class's label
    assert tree["folders"] == {s: ("wrapped/" if packed else "") + s for s in ("train", "test")}


def test_bare_class_tree_with_subfolders_keeps_the_top_folders_as_classes(tmp_path):
    for ci, c in enumerate(("ant", "cat")):
        for sub in ("a", "b/c"):
            d = tmp_path / "bare" / c / sub
            d.mkdir(parents=True)
            for i in range(5):
                (d / f"{i}.png").write_bytes(_png(np.full((4, 4, 3), 10 * ci, np.uint8)))
    tree = hd.load_image_tree(tmp_path / "bare", verbose=False)
    x, y = tree["splits"]["train"]
    assert tree["classes"] == ["ant", "cat"] and (x[:, 0, 0, 0] // 10).tolist() == y.tolist()


def test_val_and_test_folders_are_never_merged(tmp_path, capsys):
    root = tmp_path / "tree"
    _image_tree(root, splits=("train", "val", "test"))
    with pytest.raises(hd.DataUnavailableError, match=r"both a validation folder .*val.* and a test folder"):
        hd.load_image_tree(root, verbose=False)
    # a val/ folder alone is the held-out split, and the tree says so (printed and recorded)
    only_val = tmp_path / "only_val"
    _image_tree(only_val, splits=("train", "val"))
    tree = hd.load_image_tree(only_val)
    assert tree["folders"] == {"train": "train", "test": "val"} and len(tree["splits"]["test"][1]) == 9
    assert "test = val" in capsys.readouterr().out
    assert hd.data_source(str(only_val))["folders"] == {"train": "train", "test": "val"}


def test_images_outside_the_split_folders_are_refused(tmp_path):
    root = tmp_path / "tree"
    _image_tree(root)
    (root / "extra" / "cat").mkdir(parents=True)
    (root / "extra" / "cat" / "0.png").write_bytes(_png(np.zeros((6, 6, 3), np.uint8)))
    with pytest.raises(hd.DataUnavailableError, match=r"extra/cat/0.png lies outside the split folders"):
        hd.load_image_tree(root, verbose=False)


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    for split in ("train", "test"):
        for c, v in (("a", 1000), ("b", 60000)):
            d = tmp_path / "deep" / split / c
            d.mkdir(parents=True)
            Image.fromarray(np.full((4, 4), v, np.uint16)).save(d / "0.png")
    assert Image.open(tmp_path / "deep" / "train" / "a" / "0.png").mode.startswith("I;16")
    x, y = hd.load_image_tree(tmp_path / "deep", verbose=False)["splits"]["train"]
    # 1000 and 60000 of 65535: 4 and 233 of 255 (clipping made both 255)
    assert x.shape == (2, 1, 4, 4) and x[:, 0, 0, 0].tolist() == [4, 233]


def test_empty_test_split_and_options_for_a_folder_are_refused(tmp_path):
    from types import SimpleNamespace

    cfg = SimpleNamespace(dataset="synthetic", data_root=None, download=False, train_subset=None, test_subset=None,
                          dataset_options={"n": 20, "n_test": 0, "size": 8})
    with pytest.raises(ValueError, match=r"test split of 'synthetic' has no images.*n_test >= 1"):
        hd.load_splits(cfg)
    _image_tree(tmp_path / "tree")
    with pytest.raises(ValueError, match=r"an image folder or archive .* takes none: drop them"):
        hd.load_dataset(str(tmp_path / "tree"), "train", n=3)


def test_the_data_source_and_fingerprint_say_which_copy_was_read(tmp_path, monkeypatch):
    from types import SimpleNamespace

    droot = tmp_path / "data"
    _image_tree(droot / "cifar10", size=32, per_class=2)  # an unpacked copy found by name
    cfg = SimpleNamespace(dataset="cifar10", data_root=str(droot), download=False, train_subset=None,
                          test_subset=None, dataset_options={})
    meta = hd.load_splits(cfg).meta()
    assert meta["data"]["source"] == str((droot / "cifar10").resolve())
    assert meta["data"]["folders"] == {"train": "train", "test": "test"}
    assert len(meta["data"]["fingerprint"]) == 16
    src = hd.data_source("cifar10", tmp_path / "elsewhere")  # no copy there: torchvision's PNG-exact files
    assert src["source"].startswith("torchvision CIFAR10")
    hd._MEMO.clear()
    (droot / "cifar10" / "train" / "cat" / "000.png").write_bytes(_png(np.full((32, 32, 3), 77, np.uint8)))
    _touch(droot / "cifar10" / "train" / "cat" / "000.png", 10**18)
    assert hd.load_splits(cfg).meta()["data"]["fingerprint"] != meta["data"]["fingerprint"]


def test_cache_of_killed_writers_and_older_versions_is_cleaned(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "imgs"
    _image_tree(root)
    hd.load_image_tree(root, verbose=False)
    decoded = tmp_path / "cache" / "decoded"
    (old,) = decoded.glob("imgs-*.pt")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    for name in (old.name, old.name.replace(old.stem.rsplit("-", 1)[1], "0" * 16)):
        (decoded / f".{name}.tmp{dead}").write_bytes(b"half a cache")  # a writer killed mid-write
    (decoded / f".{old.name}.tmp{os.getppid()}").write_bytes(b"a live writer")  # never removed
    (root / "train" / "cat" / "100.png").write_bytes(_png(np.full((6, 6, 3), 77, np.uint8)))
    hd.load_image_tree(root, verbose=False)
    left = sorted(p.name for p in decoded.iterdir())
    assert len(left) == 2 and old.name not in left and f".{old.name}.tmp{os.getppid()}" in left
