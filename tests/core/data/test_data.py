"""Data sets: offline bundles, splits, folders of images, and missing downloads."""

from __future__ import annotations

import errno
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from factories import write_images
from learndrop.core.config import DataConfig
from learndrop.core.data import (
    DataBundle,
    DatasetInfo,
    build_datasets,
    dataset_info,
    list_datasets,
    make_synthetic,
)
from learndrop.core.errors import DataError

DOWNLOADABLE = ["cifar10", "cifar100", "fashionmnist", "imagenette", "mnist"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to open a network connection."""
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _pixels(ds: torch.utils.data.Dataset) -> list[bytes]:
    return [ds[i][0].numpy().tobytes() for i in range(len(ds))]  # type: ignore[arg-type]


# ---- catalogue ----------------------------------------------------------------------------
def test_list_datasets() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "digits", "fashionmnist", "imagefolder",
                               "imagenette", "mnist", "synthetic"]


@pytest.mark.parametrize("name,channels,image_size,num_classes", [
    ("cifar10", 3, 32, 10), ("cifar100", 3, 32, 100), ("digits", 1, 32, 10),
    ("fashionmnist", 1, 28, 10), ("imagefolder", 3, 128, None), ("imagenette", 3, 160, 10),
    ("mnist", 1, 28, 10), ("synthetic", 3, 32, None)])  # None: set by the data found
def test_dataset_info(name: str, channels: int, image_size: int,
                      num_classes: int | None) -> None:
    info = dataset_info(name)
    assert isinstance(info, DatasetInfo) and info.name == name
    assert info.downloadable == (name in DOWNLOADABLE)
    assert (info.channels, info.image_size, info.num_classes) == (
        channels, image_size, num_classes)


def test_unknown_dataset() -> None:
    with pytest.raises(DataError, match="digits"):
        build_datasets(DataConfig(dataset="nope"))


# ---- digits -------------------------------------------------------------------------------
def test_digits_bundle() -> None:
    b = build_datasets(DataConfig(), seed=0)
    assert isinstance(b, DataBundle)
    assert (b.name, b.num_classes, b.in_channels, b.image_size) == ("digits", 10, 1, 32)
    assert b.class_names == tuple("0123456789")
    assert b.deterministic_train and b.warnings == ()
    assert len(b.train) + len(b.val) == 1797
    assert abs(len(b.val) - 0.2 * 1797) <= 10
    x, y, index = b.train[5]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < 10 and index == 5
    xv, yv = b.val[0]
    assert xv.shape == (1, 32, 32) and isinstance(yv, int)
    assert torch.equal(b.train[5][0], x)  # stable without augmentation
    val_labels = torch.tensor([b.val[i][1] for i in range(len(b.val))])
    assert torch.bincount(val_labels, minlength=10).min() >= 30  # stratified


def test_digits_split_is_disjoint_and_seeded() -> None:
    b = build_datasets(DataConfig(), seed=0)
    train, val = set(_pixels(b.train)), set(_pixels(b.val))
    assert not train & val and len(train | val) == 1797
    again = build_datasets(DataConfig(), seed=0)
    assert torch.equal(again.train[0][0], b.train[0][0])
    other = build_datasets(DataConfig(), seed=1)
    assert set(_pixels(other.val)) != val


def test_digits_size_limit_and_augment() -> None:
    b = build_datasets(DataConfig(image_size=16, limit=100, augment=True), seed=0)
    assert len(b.train) == 100 and b.image_size == 16
    assert not b.deterministic_train
    x, _, index = b.train[99]
    assert x.shape == (1, 16, 16) and index == 99


def test_train_loader_batches_carry_indices() -> None:
    b = build_datasets(DataConfig(limit=40), seed=0)
    x, y, index = next(iter(DataLoader(b.train, batch_size=16, shuffle=False)))
    assert x.shape == (16, 1, 32, 32) and y.dtype == torch.int64
    assert index.tolist() == list(range(16))


# ---- synthetic ----------------------------------------------------------------------------
def _synthetic(seed: int, **kw: object) -> DataBundle:
    cfg = DataConfig(dataset="synthetic", synthetic_samples=200, synthetic_classes=4,
                     synthetic_size=16, **kw)  # type: ignore[arg-type]
    return build_datasets(cfg, seed=seed)


def test_synthetic_bundle_and_balance() -> None:
    b = _synthetic(0)
    assert (b.num_classes, b.in_channels, b.image_size) == (4, 3, 16)
    assert len(b.train) == 160 and len(b.val) == 40
    labels = [b.train[i][1] for i in range(len(b.train))] + [y for _, y in
                                                             (b.val[i] for i in range(40))]
    assert torch.bincount(torch.tensor(labels)).tolist() == [50, 50, 50, 50]
    val_labels = torch.tensor([b.val[i][1] for i in range(40)])
    assert torch.bincount(val_labels).tolist() == [10, 10, 10, 10]
    x, _, index = b.train[3]
    assert x.shape == (3, 16, 16) and index == 3 and torch.isfinite(x).all()


def test_synthetic_is_deterministic_per_seed() -> None:
    a, b, c = _synthetic(0), _synthetic(0), _synthetic(1)
    assert all(torch.equal(a.train[i][0], b.train[i][0]) for i in range(10))
    assert [a.train[i][1] for i in range(50)] == [b.train[i][1] for i in range(50)]
    assert not torch.equal(a.train[0][0], c.train[0][0])
    xa, ya = make_synthetic(40, 4, 16, 1.0, seed=7)
    xb, yb = make_synthetic(40, 4, 16, 1.0, seed=7)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_synthetic_resize_and_augment() -> None:
    b = _synthetic(0, image_size=24, augment=True)
    assert b.train[0][0].shape == (3, 24, 24) and not b.deterministic_train


# ---- image folders ------------------------------------------------------------------------
def _class_tree(root: Path, mode: str = "RGB") -> Path:
    for name in ("cat", "dog"):
        write_images(root / name, 6, mode)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really an image")
    (root / "dog" / "notes.txt").write_text("not an image, ignored")
    return root


def test_imagefolder_skips_bad_files_with_a_warning(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "pets")
    b = build_datasets(DataConfig(dataset="imagefolder", root=str(root), image_size=16,
                                  val_fraction=0.25), seed=0)
    assert b.class_names == ("cat", "dog") and b.num_classes == 2 and b.in_channels == 3
    assert len(b.train) + len(b.val) == 12 and len(b.val) == 4
    assert len(b.warnings) == 1
    assert "1 " in b.warnings[0] and "broken.png" in b.warnings[0]
    x, y, index = b.train[2]
    assert x.shape == (3, 16, 16) and y in (0, 1) and index == 2
    assert b.val[0][0].shape == (3, 16, 16)
    clone = pickle.loads(pickle.dumps(b.train))  # worker processes get a pickled copy
    assert torch.equal(clone[2][0], x)


def test_imagefolder_stop_on_bad_file(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "pets")
    with pytest.raises(DataError, match="broken.png"):
        build_datasets(DataConfig(dataset="imagefolder", root=str(root), bad_files="stop"))


def test_imagefolder_grayscale_train_val_layout(tmp_path: Path) -> None:
    for split, count in (("train", 5), ("val", 2)):
        for name in ("a", "b", "c"):
            write_images(tmp_path / split / name, count, mode="L")
    b = build_datasets(DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8,
                                  limit=10), seed=0)
    assert b.in_channels == 1 and b.num_classes == 3 and b.warnings == ()
    assert len(b.train) == 10 and len(b.val) == 6
    assert b.train[9][0].shape == (1, 8, 8) and b.train[9][2] == 9


def test_imagefolder_train_folder_without_val_is_split(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_images(tmp_path / "train" / name, 5)
    b = build_datasets(DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8,
                                  val_fraction=0.2), seed=0)
    assert b.class_names == ("a", "b") and len(b.train) == 8 and len(b.val) == 2


def test_imagefolder_warns_about_empty_class_folders(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_images(tmp_path / name, 4)
    (tmp_path / "c").mkdir()
    b = build_datasets(DataConfig(dataset="imagefolder", root=str(tmp_path), image_size=8))
    assert b.num_classes == 3 and len(b.warnings) == 1 and "no readable images" in b.warnings[0]


@pytest.mark.parametrize("layout,fragment", [
    ("missing", "data folder {root} does not exist"),
    ("file", "data.root {root} is a file, not a folder"),
    ("empty", "{root} has no class sub-folders"),
    ("no_classes", "{root} has no class sub-folders"),
    ("no_images", "{root} holds no readable images"),
    ("one_class", "{root} has only one class folder ('cat')"),
    ("no_root", "data.dataset=imagefolder needs data.root")])
def test_imagefolder_problems(tmp_path: Path, layout: str, fragment: str) -> None:
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        root.mkdir()
    elif layout == "no_classes":
        root.mkdir()
        (root / "a.png").write_bytes(b"")
    elif layout == "no_images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "readme.txt").write_text("x")
    elif layout == "one_class":
        write_images(root / "cat", 4)
    cfg = DataConfig(dataset="imagefolder", root="" if layout == "no_root" else str(root))
    with pytest.raises(DataError) as err:
        build_datasets(cfg)
    assert "\n" not in str(err.value)
    assert fragment.format(root=root) in str(err.value)


# ---- torchvision data sets ----------------------------------------------------------------
@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_missing_download_is_a_clear_error(tmp_path: Path, name: str, no_network: None) -> None:
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset=name, root=str(tmp_path), download=False))
    message = str(err.value)
    assert str(tmp_path) in message and "--data.download true" in message
    assert "--data-root" in message and "\n" not in message


@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_a_download_without_network_says_so(tmp_path: Path, name: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """--data.download true on a machine that cannot reach the network: one line that
    says the download failed, never that the (absent) files are damaged and should be
    deleted."""
    def unreachable(*_a: object, **_k: object) -> None:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", unreachable)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset=name, root=str(root), download=True))
    message = str(err.value)
    assert "\n" not in message and str(root) in message, message
    assert "network" in message and "damaged" not in message and "delete" not in message


def _idx(path: Path, array: np.ndarray) -> None:
    """Write an array in MNIST's idx format (unsigned bytes, big-endian header)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I",
                                                                  *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_local_files(tmp_path: Path, no_network: None) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    b = build_datasets(DataConfig(dataset="mnist", root=str(tmp_path), limit=20,
                                  image_size=32), seed=0)
    assert (b.num_classes, b.in_channels, b.image_size) == (10, 1, 32)
    assert len(b.train) == 20 and len(b.val) == 10
    x, y, index = b.train[19]
    assert x.shape == (1, 32, 32) and 0 <= y < 10 and index == 19


def test_imagenette_from_local_folder(tmp_path: Path, no_network: None) -> None:
    for split in ("train", "val"):
        for wnid in ("n01440764", "n02102040"):
            folder = tmp_path / split / wnid
            write_images(folder, 3)
            for png in folder.glob("*.png"):
                Image.open(png).convert("RGB").save(png.with_suffix(".JPEG"))
                png.unlink()
    b = build_datasets(DataConfig(dataset="imagenette", root=str(tmp_path), image_size=16),
                       seed=0)
    assert b.class_names == ("tench", "English springer") and b.num_classes == 2
    assert len(b.train) == 6 and len(b.val) == 6
    assert b.train[0][0].shape == (3, 16, 16)
