"""Each sample's index, carried through a DataLoader: what cache mode keys its cache by.

``with_sample_ids(dataset)`` gives every sample as ``SampleWithId(sample, sample_id)``, a named
tuple; PyTorch's default collate function and Lightning's move to the device keep that type,
so a batch is ``SampleWithId(<the batch as before>, <a tensor of indices>)``::

    loader = DataLoader(with_sample_ids(train_set), batch_size=64, shuffle=True)

    def training_step(self, batch, batch_idx):
        x, y = batch.sample          # or: (x, y), _ = batch
        ...

The index is the sample's position in ``dataset`` (a ``DistributedSampler`` hands out those
positions too), so the same sample has the same id in every epoch and on every rank.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, NamedTuple

from torch.utils.data import Dataset

from learndrop.core import ConfigError

__all__ = ["SampleWithId", "IndexedDataset", "with_sample_ids"]


class SampleWithId(NamedTuple):
    """One sample (or a collated batch of them) and its index (or a tensor of indices)."""

    sample: Any
    sample_id: Any


class IndexedDataset(Dataset):
    """``dataset`` with each sample's index: item ``i`` is ``SampleWithId(dataset[i], i)``."""

    def __init__(self, dataset: Dataset) -> None:
        if not isinstance(dataset, Sized) or not hasattr(dataset, "__getitem__"):
            raise ConfigError(f"with_sample_ids needs a map-style data set (with __len__ and "
                            f"__getitem__), not {type(dataset).__name__}: an iterable data "
                            f"set has no fixed index per sample")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> SampleWithId:
        return SampleWithId(self.dataset[index], index)


def with_sample_ids(dataset: Dataset) -> IndexedDataset:
    """``dataset`` whose samples come with their index (see :class:`SampleWithId`)."""
    return IndexedDataset(dataset)
