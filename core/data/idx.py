"""MNIST-style IDX files: reading them, gzipped or not, and finding a data set's four files.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian 32-bit size per dimension, then the values in C order. MNIST and
Fashion-MNIST ship as four of them (training and test images and labels), often gzipped.

Where the files are looked for (first complete set wins):

* ``data.root`` as given, when it is set: torchvision's layout (``ROOT/FashionMNIST/raw``),
  the files directly in ``ROOT``, or a sub-folder named like the Debian package's
  (``ROOT/fashion-mnist``);
* otherwise the user's data set folder in the same layouts, then the system's
  (``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist`` package
  installs Fashion-MNIST).

Every problem with a file (not IDX, truncated, damaged gzip, the wrong shape) is a one-line
:class:`~learndrop.core.errors.DataError` that names the file.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..environment import memory_limit
from ..errors import DataError

__all__ = ["IDX_SETS", "SYSTEM_FOLDERS", "IdxSet", "read_idx", "find_idx_set", "load_idx_set"]

#: IDX type code -> numpy dtype (big-endian where it matters)
_TYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                          0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
#: a sane upper bound for one file's values (MNIST-style sets are far below it)
_MAX_VALUES = 2**31
#: the most a gzip file can expand (deflate's limit is 1032:1; a little room for headers)
_MAX_RATIO = 1100
#: how much of a file is read at a time
_CHUNK = 1 << 20

#: the folder names each set goes by: torchvision's class folder, then the usual others
IDX_SETS: dict[str, tuple[str, ...]] = {
    "mnist": ("MNIST", "mnist"),
    "fashionmnist": ("FashionMNIST", "fashion-mnist", "fashion_mnist", "fashionmnist"),
}
#: system-wide folders searched when ``data.root`` is not set
SYSTEM_FOLDERS: dict[str, tuple[Path, ...]] = {
    "mnist": (Path("/usr/share/datasets/mnist"),),
    "fashionmnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_PARTS = {"train_images": ("train", "images", 3), "train_labels": ("train", "labels", 1),
          "test_images": ("t10k", "images", 3), "test_labels": ("t10k", "labels", 1)}


@dataclass(frozen=True)
class IdxSet:
    """The four files of an MNIST-style data set."""

    folder: Path
    train_images: Path
    train_labels: Path
    test_images: Path
    test_labels: Path


def _damaged_gzip(path: Path, exc: BaseException) -> DataError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(f"{path} is a damaged gzip file ({detail[:80]}): download it again")


def _read_exactly(stream: io.BufferedIOBase, size: int) -> bytes:
    """Up to ``size`` bytes (fewer only at the end of the stream)."""
    parts: list[bytes] = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _read_values(p: Path, stream: io.BufferedIOBase, *, packed: bool,
                 file_size: int) -> np.ndarray:
    """The values of the IDX file that ``stream`` reads, header first: never more bytes than
    the header promises plus one chunk, so a file that expands far beyond its header (a
    decompression bomb) is refused at the first byte too many."""
    magic = _read_exactly(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES:
        raise DataError(f"{p} is damaged or not an IDX file (its first bytes are not an IDX "
                        f"header): download it again")
    ndim = magic[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{p} is damaged or not an IDX file ({ndim} dimensions in its "
                        f"header): download it again")
    sizes = _read_exactly(stream, 4 * ndim)
    head = 4 + 4 * ndim
    if len(sizes) < 4 * ndim:
        raise DataError(f"{p} is damaged (truncated: its header ends after "
                        f"{4 + len(sizes)} bytes): download it again")
    shape = tuple(int.from_bytes(sizes[4 * k:4 * k + 4], "big") for k in range(ndim))
    dtype = np.dtype(_TYPES[magic[2]])
    values = 1
    for n in shape:
        values *= n
    if values > _MAX_VALUES:
        raise DataError(f"{p} is damaged or not an IDX file (its header claims {values:,} "
                        f"values)")
    expected = values * dtype.itemsize
    if packed and expected > _MAX_RATIO * file_size:  # deflate expands 1032-fold at most
        raise DataError(f"{p} is damaged or not an IDX file (its header claims {expected:,} "
                        f"bytes of data, more than a gzip file of {file_size:,} bytes can "
                        f"hold): download it again")
    if not packed and file_size != head + expected:
        found = max(file_size - head, 0)
        if found < expected:
            raise DataError(f"{p} is damaged (truncated: {found:,} bytes of data where its "
                            f"header promises {expected:,}): download it again")
        raise DataError(f"{p} is damaged or not an IDX file ({found - expected:,} bytes more "
                        f"than its header promises)")
    limit = memory_limit()
    if limit is not None and expected > limit // 2:
        raise DataError(f"{p} is damaged or too large for this machine (its header claims "
                        f"{expected:,} bytes of data; this process may use "
                        f"{limit:,} bytes of memory in all)")
    data = bytearray(expected)
    view = memoryview(data)
    found = 0
    while found < expected:
        got = stream.readinto(view[found:found + _CHUNK])
        if not got:
            raise DataError(f"{p} is damaged (truncated: {found:,} bytes of data where its "
                            f"header promises {expected:,}): download it again")
        found += got
    if stream.read(1):
        raise DataError(f"{p} is damaged or not an IDX file (more bytes than its header "
                        f"promises)")
    return np.frombuffer(data, dtype=dtype, count=values).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (gzipped or not, told by its first bytes, not its name). The
    header is read first; then exactly the bytes it promises, chunk by chunk."""
    p = Path(path)
    try:
        fh = p.open("rb")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise DataError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from None
    with fh:
        try:
            file_size = os.fstat(fh.fileno()).st_size
            packed = fh.read(2) == _GZIP_MAGIC
            fh.seek(0)
        except OSError as exc:
            raise DataError(f"cannot read {p}: {exc.strerror or type(exc).__name__}") from None
        if not packed:
            try:
                return _read_values(p, fh, packed=False, file_size=file_size)
            except OSError as exc:
                raise DataError(f"cannot read {p}: {exc.strerror or type(exc).__name__}"
                                ) from None
        with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
            try:
                return _read_values(p, stream, packed=True, file_size=file_size)
            except (OSError, EOFError, zlib.error) as exc:
                raise _damaged_gzip(p, exc) from None


def _file(folder: Path, prefix: str, kind: str, ndim: int) -> Path | None:
    """The file for one part in ``folder``: ``train-images-idx3-ubyte`` or the original
    site's ``train-images.idx3-ubyte``, gzipped or not."""
    for stem in (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"):
        for name in (stem, stem + ".gz"):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _complete(folder: Path) -> IdxSet | None:
    found = {key: _file(folder, *spec) for key, spec in _PARTS.items()}
    if any(v is None for v in found.values()):
        return None
    return IdxSet(folder=folder, **found)  # type: ignore[arg-type]


def candidate_folders(name: str, root: Path | None, home: Path) -> list[Path]:
    """Where ``name``'s files are looked for, in order (see the module docstring)."""
    bases = [root] if root is not None else [home]
    out: list[Path] = []
    for base in bases:
        out += [base / sub / "raw" for sub in IDX_SETS[name][:1]]
        out.append(base)
        out += [base / sub for sub in IDX_SETS[name]]
    if root is None:
        out += list(SYSTEM_FOLDERS.get(name, ()))
    return out


def find_idx_set(name: str, root: Path | None, home: Path) -> IdxSet | None:
    """The first folder holding all four of ``name``'s files, or ``None``."""
    for folder in candidate_folders(name, root, home):
        found = _complete(folder) if folder.is_dir() else None
        if found is not None:
            return found
    return None


def load_idx_set(files: IdxSet, num_classes: int = 10
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels): images uint8 (N, H, W),
    labels int64; each file checked for its shape and the labels for their range."""
    out: list[np.ndarray] = []
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        path: Path = getattr(files, key)
        array = read_idx(path)
        ndim = _PARTS[key][2]
        if array.ndim != ndim or array.dtype != np.uint8:
            what = "images (N, rows, columns)" if ndim == 3 else "labels (N)"
            raise DataError(f"{path} is damaged or misnamed: it does not hold {what} as "
                            f"unsigned bytes (it holds {array.dtype} of shape {array.shape})")
        if ndim == 3 and 0 in array.shape[1:]:
            raise DataError(f"{path} is damaged or not an image file: its header says its "
                            f"images are {array.shape[1]}x{array.shape[2]} pixels; download "
                            f"it again")
        out.append(array)
    for images, labels, images_path, labels_path in (
            (out[0], out[1], files.train_images, files.train_labels),
            (out[2], out[3], files.test_images, files.test_labels)):
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{labels_path} is damaged or not the labels of {images_path}: "
                            f"{labels.shape[0]:,} labels for {images.shape[0]:,} images")
        if labels.size and int(labels.max()) >= num_classes:
            raise DataError(f"{labels_path} is damaged: it holds label {int(labels.max())}, "
                            f"expected 0 to {num_classes - 1}")
    return out[0], out[1].astype(np.int64), out[2], out[3].astype(np.int64)
