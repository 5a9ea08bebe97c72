"""torchvision's downloadable data sets: MNIST, Fashion-MNIST, CIFAR-10/100, Imagenette.

MNIST and Fashion-MNIST are read from their IDX files by :mod:`.idx` (any folder of them,
gzipped or not, in torchvision's layout or flat, and the system's copy: Debian's
``dataset-fashion-mnist`` package); torchvision only downloads them when asked to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torchvision import datasets as tvd

from ..errors import DataError
from ..paths import datasets_home
from ._classes import parse_classes, select_classes
from ._sets import CropFlip, IndexedView, TensorImages, resize_batch
from ._split import apply_limit, shuffled
from ._types import DataBundle
from .folder import IMAGENET_MEAN, IMAGENET_STD, folder_bundle, image_transform
from .idx import SYSTEM_FOLDERS, find_idx_set, load_idx_set

if TYPE_CHECKING:  # the data catalogue sits below config: type hints only
    from ..config import DataConfig

__all__ = ["STATS", "INSTALL_HINTS", "build_imagenette", "build_tensor_set", "data_root",
           "found_locally"]

# Per-channel mean and std of each training set, used for normalisation.
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_CLASSES: dict[str, Any] = {"mnist": tvd.MNIST, "fashionmnist": tvd.FashionMNIST,
                            "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}
_FLIPS = {"mnist": False, "fashionmnist": True, "cifar10": True, "cifar100": True}
#: how to get a data set without the network, where a system package holds it
INSTALL_HINTS: dict[str, str] = {
    "fashionmnist": "install it with 'sudo apt-get install dataset-fashion-mnist'"}
_IMAGENETTE_SIZE = "160px"
_IMAGENETTE_FOLDER = "imagenette2-160"


def data_root(cfg: DataConfig) -> Path:
    """``cfg.root`` or the user's data set folder."""
    return Path(cfg.root).expanduser() if cfg.root else datasets_home()


def found_locally(name: str, root: Path) -> bool:
    """Whether torchvision's data set ``name`` is in ``root`` already (its files, without
    checking their content), so that it needs no download."""
    if name in ("mnist", "fashionmnist"):  # the user's folder also finds the system's copy
        home = datasets_home()
        return find_idx_set(name, None if root == home else root, home) is not None
    if name in ("cifar10", "cifar100"):
        cls = _CLASSES[name]
        return all((root / cls.base_folder / f).is_file() for f, _md5 in cls.train_list)
    if name == "imagenette":
        return (root / _IMAGENETTE_FOLDER).is_dir() or (
            (root / "train").is_dir() and (root / "val").is_dir())
    return True


def _missing(name: str, root: Path, also: tuple[Path, ...] = ()) -> DataError:
    where = " or ".join(str(p) for p in (root, *also))
    hint = f"{INSTALL_HINTS[name]}, " if name in INSTALL_HINTS else ""
    return DataError(f"{name} not found in {where}: {hint}pass --data.download true or "
                     f"point --data-root at a folder holding it")


def _damaged(name: str, root: Path, exc: BaseException) -> DataError:
    detail = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else type(exc).__name__
    return DataError(f"the {name} files in {root} are damaged ({detail}): delete them and "
                     f"download again with --data.download true, or point --data-root at "
                     f"a good copy")


def _download_failure(exc: RuntimeError) -> str:
    """The last mirror's error from torchvision's "Error downloading FILE: Tried MIRROR,
    got: ERROR ..." paragraph."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    tried = [i for i, ln in enumerate(lines) if ln.startswith("Tried ")]
    reason = lines[tried[-1] + 1] if tried and tried[-1] + 1 < len(lines) else lines[0]
    return reason[:100]


def _open(name: str, root: Path, download: bool, **kwargs: Any) -> Any:
    """Construct a torchvision data set, turning its failures into one-line DataErrors."""
    cls = _CLASSES.get(name, tvd.Imagenette)
    try:
        if download:
            root.mkdir(parents=True, exist_ok=True)
        return cls(str(root), download=download, **kwargs)
    except RuntimeError as exc:
        if download and str(exc).startswith("Error downloading"):  # every mirror failed
            raise DataError(f"could not download {name} into {root} "
                            f"({_download_failure(exc)}): check the network, or download it "
                            f"by hand and point --data-root at it") from None
        if "not found" not in str(exc) and "corrupted" not in str(exc):
            raise _damaged(name, root, exc) from None  # files there that cannot be read
        if not download:
            raise _missing(name, root) from None
        raise DataError(f"could not download {name} into {root}: check the network, or "
                        f"download it by hand and point --data-root at it") from None
    except (AssertionError, ValueError, EOFError, IndexError, TypeError, KeyError,
            MemoryError, OverflowError) as exc:  # what torchvision's readers trip over
        raise _damaged(name, root, exc) from None
    except OSError as exc:
        raise DataError(f"could not get {name} into {root} ({exc}): check the network and "
                        f"the folder, or download it by hand and point --data-root at it"
                        ) from None


def _as_tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, C, H, W), labels) of an MNIST- or CIFAR-style torchvision set."""
    data = ds.data
    images = torch.as_tensor(np.asarray(data)) if not isinstance(data, torch.Tensor) else data
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
    return images.contiguous(), labels


def _idx_tensors(name: str, cfg: DataConfig
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST or Fashion-MNIST from IDX files (downloaded first when asked to):
    uint8 images (N, 1, H, W) and labels, then the same for the test set."""
    root = Path(cfg.root).expanduser() if cfg.root else None
    home = datasets_home()
    files = find_idx_set(name, root, home)
    if files is None and cfg.download:
        _open(name, root or home, True, train=True)  # torchvision fetches into ROOT/X/raw
        files = find_idx_set(name, root, home)
    if files is None:
        also = SYSTEM_FOLDERS.get(name, ()) if root is None else ()
        raise _missing(name, root or home, also)
    train_x, train_y, val_x, val_y = load_idx_set(files)
    return (torch.from_numpy(train_x).unsqueeze(1), torch.from_numpy(train_y),
            torch.from_numpy(val_x).unsqueeze(1), torch.from_numpy(val_y))


def _torchvision_tensors(name: str, cfg: DataConfig
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                    tuple[str, ...]]:
    root = data_root(cfg)
    train_ds = _open(name, root, cfg.download, train=True)
    train_x, train_y = _as_tensors(train_ds)
    val_x, val_y = _as_tensors(_open(name, root, cfg.download, train=False))
    return train_x, train_y, val_x, val_y, tuple(str(c) for c in train_ds.classes)


def build_tensor_set(name: str, cfg: DataConfig, *, seed: int, image_size: int) -> DataBundle:
    """MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100, held in memory as uint8; with
    ``cfg.classes`` only those classes, numbered from 0 in the order given."""
    if name in ("mnist", "fashionmnist"):
        train_x, train_y, val_x, val_y = _idx_tensors(name, cfg)
        names = tuple(str(c) for c in _CLASSES[name].classes)
    else:
        train_x, train_y, val_x, val_y, names = _torchvision_tensors(name, cfg)
    num_classes = len(names)
    if cfg.classes:
        keep = parse_classes(cfg.classes, num_classes)
        train_x, train_y = select_classes(train_x, train_y, keep)
        val_x, val_y = select_classes(val_x, val_y, keep)
        names = tuple(names[c] for c in keep)
        num_classes = len(keep)
    order = apply_limit(shuffled(train_x.shape[0], seed), cfg.limit)
    train_x, train_y = resize_batch(train_x[order], image_size), train_y[order]
    val_x = resize_batch(val_x, image_size)
    mean, std = STATS[name]
    augment = CropFlip(image_size // 8, flip=_FLIPS[name]) if cfg.augment else None
    train = TensorImages(train_x, train_y, with_index=True, mean=mean, std=std, augment=augment)
    val = TensorImages(val_x, val_y, with_index=False, mean=mean, std=std)
    return DataBundle(name=name, train=train, val=val, num_classes=num_classes,
                      in_channels=int(train_x.shape[1]), image_size=image_size,
                      class_names=names, deterministic_train=not cfg.augment)


def _wnid_names() -> dict[str, str]:
    table: dict[str, tuple[str, ...]] = getattr(tvd.Imagenette, "_WNID_TO_CLASS", {})
    return {wnid: names[0] for wnid, names in table.items()}


def build_imagenette(cfg: DataConfig, *, seed: int, image_size: int) -> DataBundle:
    """Imagenette (160 px): torchvision's layout or download, or a local train/ + val/ folder."""
    root = data_root(cfg)
    if not (root / _IMAGENETTE_FOLDER).exists() and not cfg.download:
        if (root / "train").is_dir() and (root / "val").is_dir():
            return folder_bundle("imagenette", root, cfg, seed=seed, image_size=image_size,
                                 display=_wnid_names(), verify=False)
        raise _missing("imagenette", root)
    train_ds = _open("imagenette", root, cfg.download, split="train", size=_IMAGENETTE_SIZE)
    val_ds = _open("imagenette", root, cfg.download, split="val", size=_IMAGENETTE_SIZE)
    train_ds.transform = image_transform(image_size, 3, IMAGENET_MEAN, IMAGENET_STD,
                                         cfg.augment)
    val_ds.transform = image_transform(image_size, 3, IMAGENET_MEAN, IMAGENET_STD, False)
    order = apply_limit(shuffled(len(train_ds), seed), cfg.limit)
    names = _wnid_names()
    return DataBundle(name="imagenette",
                      train=IndexedView(train_ds, order.tolist(), with_index=True),
                      val=IndexedView(val_ds, None, with_index=False), num_classes=10,
                      in_channels=3, image_size=image_size,
                      class_names=tuple(names.get(w, w) for w in train_ds.wnids),
                      deterministic_train=not cfg.augment)
