"""Data sets: offline digits and synthetic images, torchvision's sets, the user's folders.

:func:`build_datasets` returns a :class:`DataBundle` whose training items are
``(x, y, index)`` (``index`` is stable, for per-sample caches) and validation items ``(x, y)``.
"""

from __future__ import annotations

from ._batches import TensorBatches, fast_batches
from ._classes import classes_problem
from ._registry import build_datasets, dataset_info, list_datasets, needs_download
from ._types import DataBundle, DatasetInfo
from .folder import image_folder_problem
from .synthetic import make_synthetic

__all__ = ["DataBundle", "DatasetInfo", "TensorBatches", "build_datasets", "classes_problem",
           "dataset_info", "fast_batches", "image_folder_problem", "list_datasets",
           "make_synthetic", "needs_download"]
