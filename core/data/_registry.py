"""The data set catalogue and :func:`build_datasets`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ..errors import DataError
from ._types import DataBundle, DatasetInfo
from .digits import build_digits
from .folder import build_imagefolder
from .synthetic import build_synthetic
from .torchvision_sets import build_imagenette, build_tensor_set, data_root, found_locally

if TYPE_CHECKING:  # the data catalogue sits below config: type hints only
    from ..config import DataConfig

__all__ = ["build_datasets", "dataset_info", "list_datasets", "needs_download"]

Builder = Callable[..., DataBundle]

_DATASETS: dict[str, tuple[DatasetInfo, Builder]] = {
    "digits": (DatasetInfo("digits", "1,797 handwritten 8x8 digits from scikit-learn, upscaled; "
                           "offline", False, 32, 1, 10), build_digits),
    "synthetic": (DatasetInfo("synthetic", "Generated colour images: moving smooth class "
                              "patterns with a distractor and noise; offline", False, 32, 3,
                              None), build_synthetic),
    "mnist": (DatasetInfo("mnist", "MNIST handwritten digits (60,000 + 10,000, 28x28 gray)",
                          True, 28, 1, 10), partial(build_tensor_set, "mnist")),
    "fashionmnist": (DatasetInfo("fashionmnist", "Fashion-MNIST clothing (60,000 + 10,000, "
                                 "28x28 gray; offline: apt-get install "
                                 "dataset-fashion-mnist)", True, 28, 1, 10),
                     partial(build_tensor_set, "fashionmnist")),
    "cifar10": (DatasetInfo("cifar10", "CIFAR-10 (50,000 + 10,000, 32x32 colour, 10 classes)",
                            True, 32, 3, 10), partial(build_tensor_set, "cifar10")),
    "cifar100": (DatasetInfo("cifar100", "CIFAR-100 (50,000 + 10,000, 32x32 colour, 100 "
                             "classes)", True, 32, 3, 100), partial(build_tensor_set,
                                                                    "cifar100")),
    "imagenette": (DatasetInfo("imagenette", "Imagenette, 10 ImageNet classes (160 px "
                               "version, about 9,500 + 3,900 images)", True, 160, 3, 10),
                   build_imagenette),
    "imagefolder": (DatasetInfo("imagefolder", "Your own images: one sub-folder per class "
                                "(optionally inside train/ and val/)", False, 128, 3, None),
                    build_imagefolder),
}


def list_datasets() -> list[str]:
    """Names of every data set, sorted."""
    return sorted(_DATASETS)


def _lookup(name: str) -> tuple[DatasetInfo, Builder]:
    try:
        return _DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown data set {name!r}: pick one of "
                        f"{', '.join(list_datasets())}") from None


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry for ``name``; unknown names raise :class:`DataError`."""
    return _lookup(name)[0]


def needs_download(cfg: DataConfig) -> bool:
    """Whether ``cfg``'s data set must be downloaded first: one that can be, and whose files
    are not in its folder (``cfg.root`` or the user's data set folder) yet."""
    info = dataset_info(cfg.dataset)
    return info.downloadable and not found_locally(cfg.dataset, data_root(cfg))


def build_datasets(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """Training and validation sets for ``cfg`` (deterministic given ``seed``)."""
    info, build = _lookup(cfg.dataset)
    image_size = cfg.image_size if cfg.image_size > 0 else info.image_size
    if cfg.dataset == "synthetic" and cfg.image_size <= 0:
        image_size = cfg.synthetic_size
    return build(cfg, seed=seed, image_size=image_size)
