"""Data-parallel runs: the process group, each rank's share of the data, and agreement.

A run is data-parallel when it is started by ``learndrop train --nproc N`` (which starts N
processes on this machine, see :mod:`learndrop.core.cli`) or by ``torchrun``: each process
finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its
environment and joins the process group (gloo on CPU, NCCL on CUDA, one GPU per process,
``cuda:LOCAL_RANK``).

* ``train.batch_size`` is per process: a step trains on ``batch_size x world size`` samples.
* Each rank trains on its own shard of the training set (:class:`torch.utils.data.
  DistributedSampler`, reshuffled every epoch with the run's seed); in cache mode the shard
  is fixed (:class:`FixedShardSampler`, shuffled within itself every epoch), so that each
  rank's activation cache covers the samples that rank sees again.
* Validation is split between the ranks and the sums are added up.
* Only rank 0 writes: the run folder, the config, checkpoints, the final weights, the
  summary, and (through its callbacks alone) the run store and the console.
* At every batch boundary the ranks agree on stop, cancel, pause and the end of a time
  budget (any rank's request counts), so they all end at the same batch.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler, Subset

from ..errors import ConfigError, TrainingError, first_line

__all__ = ["Distributed", "join_process_group", "FixedShardSampler", "ENV_TIMEOUT",
           "distributed_environment", "is_lost_rank", "lost_rank"]

#: seconds a collective may wait for the other ranks before the run fails
ENV_TIMEOUT = "LEARNDROP_DIST_TIMEOUT"
_DEFAULT_TIMEOUT_S = 600.0

_T = TypeVar("_T")


def distributed_environment() -> bool:
    """Whether this process is one rank of several (``WORLD_SIZE`` > 1, as ``torchrun`` and
    ``learndrop train --nproc`` set it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


@dataclass
class Distributed:
    """This process's place in a data-parallel run."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    owns_group: bool = False  # this process started the group and ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def description(self) -> str:
        return f"{self.world_size} processes ({self.backend})"

    # ---- collectives ------------------------------------------------------------------------
    def _device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def agree(self, flags: Sequence[bool]) -> list[bool]:
        """Each flag true on every rank when it is true on any."""
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=self._device())
        _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` added up over the ranks."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        _collective(dist.all_reduce, t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.tolist()]

    def from_main(self, value: _T) -> _T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        box: list[Any] = [value if self.is_main else None]
        _collective(dist.broadcast_object_list, box, 0, device=self._device())
        return cast(_T, box[0])

    def barrier(self) -> None:
        _collective(dist.barrier)

    def close(self) -> None:
        """Leave the process group this process started (every rank together)."""
        if self.owns_group and dist.is_initialized():
            try:
                dist.barrier()
            except RuntimeError:  # another rank is gone already: nothing to wait for
                pass
            dist.destroy_process_group()
        self.owns_group = False

    # ---- data ---------------------------------------------------------------------------------
    def train_sampler(self, data: Dataset, *, seed: int, fixed_shard: bool) -> Sampler[int]:
        n = len(cast(Sized, data))
        if fixed_shard:
            return FixedShardSampler(n, self.rank, self.world_size, seed)
        return DistributedSampler(data, num_replicas=self.world_size, rank=self.rank,
                                  shuffle=True, seed=seed, drop_last=False)

    def shard_size(self, n: int) -> int:
        """Samples per rank and epoch (DistributedSampler pads the last ranks' shards)."""
        return math.ceil(n / self.world_size)

    def val_shard(self, data: Dataset) -> Dataset:
        n = len(cast(Sized, data))
        return Subset(data, range(self.rank, n, self.world_size))


class FixedShardSampler(Sampler[int]):
    """Rank ``rank``'s fixed share of ``n`` samples (every ``world``-th of one seeded
    permutation, padded to equal length), in a new order every epoch (:meth:`set_epoch`)."""

    def __init__(self, n: int, rank: int, world: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=g).tolist()
        size = math.ceil(n / world)
        perm += perm[: size * world - n]  # pad, as DistributedSampler does
        self.indices = perm[rank::world]
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(len(self.indices), generator=g).tolist()
        return iter([self.indices[i] for i in order])

    def __len__(self) -> int:
        return len(self.indices)


def _collective(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:  # DistError is one
        raise lost_rank(exc) from None


_COMM_WORDS = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe",
               "processgroup", "timed out", "peer")


def is_lost_rank(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed collective (another rank ended or hangs)."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(w in text for w in _COMM_WORDS)


def lost_rank(exc: BaseException) -> TrainingError:
    """The error a rank reports when a collective fails: another process ended."""
    return TrainingError(f"another process of this data-parallel run ended or cannot be "
                         f"reached ({first_line(exc)[:160]}); the run stops on every rank")


def join_process_group(device_type: str) -> Distributed | None:
    """Join the process group this process's environment describes; ``None`` for a run of
    one process. A group that is already initialised (by the caller) is used as it is."""
    if not distributed_environment():
        return None
    if not dist.is_available():
        raise ConfigError("this PyTorch has no torch.distributed: train with one process")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size(), local_rank,
                           str(dist.get_backend()))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    timeout = datetime.timedelta(seconds=_timeout_s())
    try:
        dist.init_process_group(backend, timeout=timeout)
    except (RuntimeError, ValueError, dist.DistError) as exc:
        raise TrainingError(f"cannot join the data-parallel run (rank "
                            f"{os.environ.get('RANK', '?')} of "
                            f"{os.environ.get('WORLD_SIZE', '?')}): {first_line(exc)[:160]}"
                            ) from None
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, backend,
                       owns_group=True)


def _timeout_s() -> float:
    try:
        return max(float(os.environ.get(ENV_TIMEOUT, _DEFAULT_TIMEOUT_S)), 1.0)
    except ValueError:
        return _DEFAULT_TIMEOUT_S
