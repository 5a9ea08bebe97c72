"""The records the data layer hands out: data set descriptions and built bundles."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

__all__ = ["DataBundle", "DatasetInfo"]


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a data set before loading it."""

    name: str
    description: str
    downloadable: bool
    image_size: int
    channels: int
    num_classes: int | None  # None: set by the config or the folder


@dataclass(frozen=True)
class DataBundle:
    """Training and validation sets ready for a model.

    ``train`` yields ``(x, y, index)`` with ``index`` the sample's stable position in ``train``;
    ``val`` yields ``(x, y)``. ``deterministic_train`` is False when a training sample's input
    changes between epochs (random augmentation).
    """

    name: str
    train: Dataset
    val: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    deterministic_train: bool
    warnings: tuple[str, ...] = ()
