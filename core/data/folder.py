"""Images in class folders: the user's own data (``imagefolder``) and local Imagenette."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import DataError, first_line
from ._sets import IndexedView
from ._split import apply_limit, shuffled, stratified_split
from ._types import DataBundle

if TYPE_CHECKING:  # the data catalogue sits below config: type hints only
    from ..config import DataConfig

__all__ = [
    "GRAY_MEAN",
    "GRAY_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VAL_NAMES",
    "FileImages",
    "build_imagefolder",
    "image_folder_problem",
    "image_transform",
    "scan_folder",
]

VAL_NAMES = ("val", "valid", "validation", "test")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = (0.449,)
GRAY_STD = (0.226,)
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_FIX = "give a folder with one sub-folder of images per class (or train/ and val/ holding those)"


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Image files anywhere below ``folder``, walked with a list rather than recursion (folders
    nested thousands deep), never following a link to a folder (no loops)."""
    found: list[Path] = []
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file() and Path(entry.name).suffix.lower() in IMG_EXTENSIONS:
                    found.append(Path(entry.path))
            except OSError:
                continue
    return sorted(found)


#: what PIL raises for a file that is not a readable image (a decompression bomb too)
_BAD_IMAGE = (OSError, UnidentifiedImageError, SyntaxError, ValueError,
              Image.DecompressionBombError, EOFError, struct.error, IndexError, TypeError,
              MemoryError)


def _check_image(path: Path) -> str | None:
    """The image's PIL mode, or None when the file cannot be read as an image. A JPEG is
    decoded (at a reduced scale, which is fast) so a truncated one is found here, not in the
    middle of training."""
    try:
        with Image.open(path) as img:
            mode = str(img.mode)
            if img.format == "JPEG":
                img.draft(img.mode, (8, 8))
                img.load()
            else:
                img.verify()
        return mode
    except _BAD_IMAGE:
        return None


class _Scan:
    """Files found in class folders: samples, class names, bad files, whether all gray."""

    def __init__(self) -> None:
        self.samples: list[tuple[str, int]] = []
        self.bad: list[Path] = []
        self.empty: list[str] = []  # class folders left without images
        self.all_gray = True


def scan_folder(folder: Path, classes: Sequence[str] | None, *, bad_files: str,
                verify: bool = True) -> tuple[_Scan, list[str]]:
    """Scan ``folder/<class>/...``; with ``classes`` given, the folder's must be among them."""
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist: {_FIX}")
    found = [d.name for d in _class_dirs(folder)]
    if not found:
        raise DataError(f"{folder} has no class sub-folders: {_FIX}")
    names = list(classes) if classes is not None else found
    unknown = [c for c in found if c not in names]
    if unknown:
        raise DataError(f"{folder} has class folder {unknown[0]!r} that the training folder "
                        f"lacks: use the same class folders in train/ and val/")
    scan = _Scan()
    index = {c: i for i, c in enumerate(names)}
    for c in found:
        before = len(scan.samples)
        for path in _image_files(folder / c):
            mode = _check_image(path) if verify else "RGB"
            if mode is None:
                if bad_files == "stop":
                    raise DataError(f"cannot read image {path}: remove or replace it, or set "
                                    f"data.bad_files to skip")
                scan.bad.append(path)
                continue
            scan.all_gray = scan.all_gray and mode in _GRAY_MODES
            scan.samples.append((str(path), index[c]))
        if len(scan.samples) == before:
            scan.empty.append(str(folder / c))
    if not scan.samples:
        raise DataError(f"{folder} holds no readable images ({', '.join(IMG_EXTENSIONS)}): "
                        f"{_FIX}")
    return scan, names


def image_transform(size: int, channels: int, mean: Sequence[float], std: Sequence[float],
                    augment: bool) -> T.Compose:
    """PIL image -> normalised tensor of ``size`` x ``size`` (centre crop; random crop/flip)."""
    steps: list[Any] = [T.Grayscale(1) if channels == 1 else _ToRGB(), T.Resize(size),
                        T.CenterCrop(size)]
    if augment:
        steps += [T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


class _ToRGB:
    """Convert a PIL image to RGB (a picklable transform)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == "RGB" else img.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


class FileImages(Dataset):
    """Image files with labels, read with PIL and transformed; items ``(x, y)``."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Any) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                img.load()
                x = self.transform(img)
        except _BAD_IMAGE as exc:
            raise DataError(f"cannot read image {path} ({first_line(exc)[:120]}): remove or "
                            f"replace it") from None
        return x, label


def _find_val(root: Path) -> Path | None:
    if not (root / "train").is_dir():
        return None
    for name in VAL_NAMES:
        if (root / name).is_dir():
            return root / name
    return None


def folder_bundle(name: str, root: Path, cfg: DataConfig, *, seed: int, image_size: int,
                  display: dict[str, str] | None = None, verify: bool = True) -> DataBundle:
    """Bundle from ``root/train`` + ``root/val``, else class folders split by val_fraction.

    The class folders are those in ``root/train`` when it exists (with no validation folder),
    otherwise those in ``root``.
    """
    val_dir = _find_val(root)
    if val_dir is not None:
        train_scan, classes = scan_folder(root / "train", None, bad_files=cfg.bad_files,
                                          verify=verify)
        val_scan, _ = scan_folder(val_dir, classes, bad_files=cfg.bad_files, verify=verify)
        train_samples, val_samples = train_scan.samples, val_scan.samples
        order = shuffled(len(train_samples), seed)
        scans = [train_scan, val_scan]
    else:
        source = root / "train" if (root / "train").is_dir() else root
        scan, classes = scan_folder(source, None, bad_files=cfg.bad_files, verify=verify)
        labels = torch.tensor([y for _, y in scan.samples])
        order, val_idx = stratified_split(labels, cfg.val_fraction, seed)
        train_samples = scan.samples
        val_samples = [scan.samples[i] for i in val_idx.tolist()]
        scans = [scan]
    if len(classes) < 2:
        raise DataError(f"{root} has only one class folder ({classes[0]!r}): a classifier "
                        f"needs at least two classes")
    if not val_samples:
        raise DataError(f"{root}: no images left for validation; add images or raise "
                        f"data.val_fraction")
    bad = [p for s in scans for p in s.bad]
    warnings: list[str] = []
    if bad:
        warnings.append(f"skipped {len(bad)} unreadable image file(s) in {root} "
                        f"(e.g. {bad[0]})")
    empty = [e for s in scans for e in s.empty]
    if empty:
        warnings.append(f"{len(empty)} class folder(s) hold no readable images "
                        f"(e.g. {empty[0]})")
    channels = 1 if all(s.all_gray for s in scans) else 3
    mean, std = (GRAY_MEAN, GRAY_STD) if channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)
    order = apply_limit(order, cfg.limit)
    train_files = FileImages(train_samples, image_transform(image_size, channels, mean, std,
                                                            cfg.augment))
    val_files = FileImages(val_samples, image_transform(image_size, channels, mean, std, False))
    names = tuple((display or {}).get(c, c) for c in classes)
    return DataBundle(name=name, train=IndexedView(train_files, order.tolist(), with_index=True),
                      val=IndexedView(val_files, None, with_index=False),
                      num_classes=len(classes), in_channels=channels, image_size=image_size,
                      class_names=names, deterministic_train=not cfg.augment,
                      warnings=tuple(warnings))


def image_folder_problem(root: str | Path) -> str | None:
    """Why ``root`` cannot be a folder of the user's images (it is not there, is a file, or
    its name is refused), in one line; None when it is a folder. The run and the app's form
    both say it."""
    path = Path(root).expanduser()
    try:
        if not path.exists():
            return f"data folder {path} does not exist: {_FIX}"
        if not path.is_dir():
            return f"data.root {path} is a file, not a folder: {_FIX}"
    except OSError as exc:  # a name the system refuses (too long, say)
        return f"data folder {path} cannot be read ({exc.strerror or exc}): {_FIX}"
    return None


def build_imagefolder(cfg: DataConfig, *, seed: int, image_size: int) -> DataBundle:
    """The user's images in ``cfg.root``."""
    if not cfg.root:
        raise DataError(f"data.dataset=imagefolder needs data.root: {_FIX}")
    problem = image_folder_problem(cfg.root)
    if problem:
        raise DataError(problem)
    root = Path(cfg.root).expanduser()
    return folder_bundle("imagefolder", root, cfg, seed=seed, image_size=image_size)
