"""IDX files (MNIST, Fashion-MNIST): reading, finding, damaged files, class subsets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from factories import idx_bytes as _idx_bytes
from factories import write_idx_set as write_set
from learndrop.core.config import DataConfig, RunConfig
from learndrop.core.data import build_datasets, idx
from learndrop.core.data.idx import find_idx_set, read_idx
from learndrop.core.errors import ConfigError, DataError
from learndrop.core.training import check_config

SYSTEM_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_system_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The system folders point at an empty place."""
    empty = tmp_path / "no-system-copy"
    monkeypatch.setitem(idx.SYSTEM_FOLDERS, "fashionmnist", (empty,))
    monkeypatch.setitem(idx.SYSTEM_FOLDERS, "mnist", (empty,))
    return empty


# ---- reading -------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = _idx_bytes(array)
    path = tmp_path / "a.idx"  # gzip is told by the bytes, not the name
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert np.array_equal(out, array) and out.flags.writeable


def test_read_idx_other_types(tmp_path: Path) -> None:
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    path = tmp_path / "floats.idx"
    path.write_bytes(struct.pack(">I", 0x0D01) + struct.pack(">I", 3) + values.tobytes())
    assert read_idx(path).tolist() == [1.5, -2.0, 3.25]


def _one_line_naming(exc: DataError, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text and str(path) in text
    assert "damaged" in text.replace(str(path), "")  # not only in the file's name
    return text


@pytest.mark.parametrize("gz", [False, True])
def test_random_bytes_are_a_one_line_error(tmp_path: Path, gz: bool) -> None:
    junk = np.random.default_rng(1).integers(1, 256, 5000).astype(np.uint8).tobytes()
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(junk) if gz else junk)
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert "not an IDX file" in _one_line_naming(err.value, path)


@pytest.mark.parametrize("cut", [2, 10, 200])
def test_truncated_file_is_a_one_line_error(tmp_path: Path, cut: int) -> None:
    data = _idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(data[:cut] if cut < 16 else data[:-cut])
    with pytest.raises(DataError) as err:
        read_idx(path)
    text = _one_line_naming(err.value, path)
    assert "truncated" in text or "not an IDX file" in text
    if cut == 200:
        assert "truncated" in text and "header promises" in text


def test_truncated_gzip_is_a_one_line_error(tmp_path: Path) -> None:
    packed = gzip.compress(_idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert "damaged gzip" in _one_line_naming(err.value, path)


def test_extra_bytes_and_absurd_header(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    path.write_bytes(_idx_bytes(np.zeros((2, 2), np.uint8)) + b"\0\0")
    with pytest.raises(DataError, match="more than its header promises"):
        read_idx(path)
    path.write_bytes(struct.pack(">I", 0x0803) + struct.pack(">3I", 2**20, 2**20, 2**20))
    with pytest.raises(DataError, match="claims"):
        read_idx(path)


def test_wrong_contents_name_the_file(tmp_path: Path, no_system_copy: Path) -> None:
    write_set(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx_bytes(np.zeros((39,), np.uint8)))  # one label short
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset="mnist", root=str(tmp_path)))
    assert "39 labels for 40 images" in _one_line_naming(err.value, labels)
    labels.write_bytes(_idx_bytes(np.full((40,), 12, np.uint8)))
    with pytest.raises(DataError, match="label 12"):
        build_datasets(DataConfig(dataset="mnist", root=str(tmp_path)))
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(_idx_bytes(np.zeros((20,), np.uint8)))
    labels.write_bytes(_idx_bytes(np.zeros((40,), np.uint8)))
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset="mnist", root=str(tmp_path)))
    assert "does not hold images" in _one_line_naming(err.value, images)


def test_random_bytes_in_a_data_set_folder(tmp_path: Path, no_system_copy: Path) -> None:
    write_set(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset="fashionmnist", root=str(tmp_path)))
    _one_line_naming(err.value, path)


# ---- finding -------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["torchvision", "flat", "debian-name", "dot-names"])
@pytest.mark.parametrize("gz", [False, True])
def test_any_folder_layout(tmp_path: Path, layout: str, gz: bool,
                           no_system_copy: Path) -> None:
    folder = {"torchvision": tmp_path / "FashionMNIST" / "raw", "flat": tmp_path,
              "debian-name": tmp_path / "fashion-mnist", "dot-names": tmp_path}[layout]
    arrays = write_set(folder, gz=gz, dot_names=layout == "dot-names")
    b = build_datasets(DataConfig(dataset="fashionmnist", root=str(tmp_path)), seed=0)
    assert len(b.train) == 40 and len(b.val) == 20 and b.num_classes == 10
    assert b.class_names[0] == "T-shirt/top" and b.in_channels == 1 and b.image_size == 28
    # the validation set is the test files, in order and unchanged
    assert torch.equal(b.val.images[:, 0], torch.from_numpy(arrays["t10k-images"]))  # type: ignore[attr-defined]
    x, y, i = b.train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and i == 0


def test_default_folder_then_system_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    system = tmp_path / "usr-share"
    write_set(system, n_train=30, gz=True)
    monkeypatch.setitem(idx.SYSTEM_FOLDERS, "fashionmnist", (system,))
    home = tmp_path / "home"
    monkeypatch.setenv("LEARNDROP_HOME", str(home))
    b = build_datasets(DataConfig(dataset="fashionmnist"), seed=0)  # no flags
    assert len(b.train) == 30
    write_set(home / "datasets" / "FashionMNIST" / "raw", n_train=50)
    assert len(build_datasets(DataConfig(dataset="fashionmnist"), seed=0).train) == 50
    # a root given explicitly is the only place looked at
    found = find_idx_set("fashionmnist", tmp_path / "elsewhere", home / "datasets")
    assert found is None


def test_missing_fashionmnist_says_how_to_install(tmp_path: Path, no_system_copy: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNDROP_HOME", str(tmp_path / "home"))
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset="fashionmnist"))
    text = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in text and "\n" not in text
    assert str(no_system_copy) in text and "--data-root" in text


# ---- class subsets ---------------------------------------------------------------------------
def test_class_subset_relabels_in_order(tmp_path: Path, no_system_copy: Path) -> None:
    arrays = write_set(tmp_path, n_train=100, n_test=50)
    cfg = DataConfig(dataset="fashionmnist", root=str(tmp_path), classes="7,5-6")
    b = build_datasets(cfg, seed=0)
    assert b.num_classes == 3 and b.class_names == ("Sneaker", "Sandal", "Shirt")
    assert len(b.train) == 30 and len(b.val) == 15
    val_old = arrays["t10k-labels"]
    kept = np.isin(val_old, [5, 6, 7])
    expected = torch.tensor([{7: 0, 5: 1, 6: 2}[int(v)] for v in val_old[kept]])
    assert torch.equal(b.val.labels, expected)  # type: ignore[attr-defined]
    assert torch.equal(b.val.images[:, 0], torch.from_numpy(arrays["t10k-images"][kept]))  # type: ignore[attr-defined]
    # the limit counts the chosen classes' samples
    cfg.limit = 12
    assert len(build_datasets(cfg, seed=0).train) == 12


@pytest.mark.parametrize("spec, message", [
    ("4-2", "backwards"), ("1,1", "twice"), ("3", "fewer than two"), ("a-b", "not a class"),
    ("1,,2", "empty entry")])
def test_bad_class_lists_are_config_errors(spec: str, message: str) -> None:
    cfg = RunConfig()
    cfg.data.dataset = "fashionmnist"
    cfg.data.classes = spec
    with pytest.raises(ConfigError, match=message) as err:
        check_config(cfg)
    assert err.value.field == "data.classes"


def test_class_subset_only_for_labelled_in_memory_sets() -> None:
    cfg = RunConfig()
    cfg.data.classes = "0-4"  # digits
    with pytest.raises(ConfigError, match="works with mnist"):
        check_config(cfg)


def test_class_number_beyond_the_data_set(tmp_path: Path, no_system_copy: Path) -> None:
    write_set(tmp_path)
    with pytest.raises(DataError, match="class 12"):
        build_datasets(DataConfig(dataset="mnist", root=str(tmp_path), classes="8-12"))


# ---- the real files, when installed ----------------------------------------------------------
@pytest.mark.skipif(not SYSTEM_FMNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_system_fashion_mnist() -> None:
    b = build_datasets(DataConfig(dataset="fashionmnist", classes="5-9"), seed=0)
    assert (len(b.train), len(b.val), b.num_classes) == (30000, 5000, 5)
    counts = torch.bincount(b.train.labels)  # type: ignore[attr-defined]
    assert counts.tolist() == [6000] * 5
    x = b.train[0][0]
    assert x.shape == (1, 28, 28) and abs(float(b.val.images.float().mean()) / 255 - 0.29) < 0.05  # type: ignore[attr-defined]


# ---- hostile files: bounded memory -----------------------------------------------------------
def _bomb(path: Path, header: bytes, expands_to: int) -> None:
    """A gzip file: ``header`` then ``expands_to`` zero bytes, written a chunk at a time."""
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(header)
        chunk = bytes(1 << 20)
        for _ in range(expands_to // len(chunk)):
            fh.write(chunk)


def test_a_gzip_bomb_is_refused_holding_only_what_the_header_promises(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "train-images-idx3-ubyte.gz"
    promised = 10 * 28 * 28
    _bomb(path, struct.pack(">I", 0x0803) + struct.pack(">3I", 10, 28, 28), 48 << 20)
    assert path.stat().st_size < 100_000  # 48 MiB of zeros, packed
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "than its header promises" in _one_line_naming(err.value, path)
    assert peak < promised + (4 << 20), peak  # the promise plus a few chunks, not 48 MiB


def test_a_header_claiming_more_than_the_file_can_hold(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">I", 0x0803)
                                   + struct.pack(">3I", 60000, 280, 28)))  # 470 MB promised
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert "more than a gzip file of" in _one_line_naming(err.value, path)
    sparse = tmp_path / "t10k-images-idx3-ubyte"  # an 8 GiB file that takes no disk
    with sparse.open("wb") as fh:
        fh.write(struct.pack(">I", 0x0803) + struct.pack(">3I", 60000, 28, 28))
        fh.truncate(8 << 30)
    with pytest.raises(DataError, match="bytes more than its header promises"):
        read_idx(sparse)
    monkeypatch.setattr(idx, "memory_limit", lambda: 64 << 20)  # a 64 MiB memory cap
    sparse.write_bytes(b"")
    with sparse.open("wb") as fh:
        fh.write(struct.pack(">I", 0x0803) + struct.pack(">3I", 60000, 28, 28))
        fh.truncate(16 + 60000 * 28 * 28)
    with pytest.raises(DataError) as err:
        read_idx(sparse)
    assert "too large for this machine" in _one_line_naming(err.value, sparse)


@pytest.mark.parametrize("gz", [False, True])
def test_images_of_no_pixels_are_refused_naming_the_file(tmp_path: Path, gz: bool,
                                                         no_system_copy: Path) -> None:
    write_set(tmp_path, side=0, gz=gz)
    with pytest.raises(DataError) as err:
        build_datasets(DataConfig(dataset="mnist", root=str(tmp_path)))
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    assert "0x0 pixels" in _one_line_naming(err.value, path)
