"""A data-parallel rank's share of the training data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from ._distributed import Distributed

__all__ = ["Shard", "shard"]


@dataclass(frozen=True)
class Shard:
    """This rank's share of the training data: its sampler and, for a fixed shard (cache
    mode), the position of each sample of the data set in the shard (-1: another rank's)."""

    sampler: Any  # DistributedSampler or FixedShardSampler: both have set_epoch
    local_ids: torch.Tensor | None = None

    def loader(self, data: Any, epoch: int, *, batch_size: int, drop_last: bool,
               num_workers: int, pin_memory: bool) -> DataLoader:
        """The epoch's batches of this rank's samples."""
        self.sampler.set_epoch(epoch)
        return DataLoader(data, batch_size=batch_size, sampler=self.sampler,
                          drop_last=drop_last, num_workers=num_workers,
                          pin_memory=pin_memory)

    def sample_ids(self, idx: torch.Tensor) -> torch.Tensor:
        """The ids a rank's cache knows ``idx`` (data set positions) by: the positions in a
        fixed shard, else ``idx`` itself."""
        return idx if self.local_ids is None else self.local_ids[idx]


def shard(dist: Distributed, bundle: Any, *, seed: int, fixed: bool) -> Shard:
    """This rank's share of ``bundle``'s training data; with ``fixed`` (cache mode) a fixed
    shard, its samples numbered from 0."""
    sampler: Any = dist.train_sampler(bundle.train, seed=seed, fixed_shard=fixed)
    if not fixed:
        return Shard(sampler)
    indices = torch.tensor(sampler.indices, dtype=torch.long)
    local = torch.full((len(bundle.train),), -1, dtype=torch.long)
    local[indices] = torch.arange(len(indices))
    return Shard(sampler, local)
