"""The trainer's data-parallel side: joining the run, this rank's shard, agreeing ranks.

A process that is not one of a data-parallel run (``trainer.dist`` is None) never calls
these, except :func:`join`, which finds out.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CheckpointError, LearnDropError, TrainingError
from ._checkpoint import load_checkpoint
from ._device import DevicePlan
from ._distributed import Distributed, join_process_group
from ._run import TrainerRun

if TYPE_CHECKING:
    from ._control import RunControl

__all__ = ["join", "read_checkpoint", "agreed_boundary", "evaluated_everywhere"]


def join(trainer: TrainerRun, plan: DevicePlan) -> DevicePlan:
    """Join the data-parallel run this process belongs to, if any: its device (one GPU
    per process), the world size in the config, no callbacks but on rank 0."""
    trainer.dist = join_process_group(plan.device.type)
    if trainer.dist is None:
        if trainer.cfg.train.nproc > 1:
            trainer.warnings.append(
                f"train.nproc is {trainer.cfg.train.nproc} but this process is not one of "
                f"a data-parallel run: it trains alone (start it with 'learndrop train "
                f"--nproc N' or torchrun)")
            trainer.cfg.train.nproc = 1
        return plan
    if trainer.time_budget_s:
        raise TrainingError("a time-budgeted run trains in one process: drop --nproc")
    trainer.cfg.train.nproc = trainer.dist.world_size
    if not trainer.dist.is_main:
        trainer.callbacks = []  # only rank 0 reports, records and writes
    if plan.device.type == "cuda":
        plan = dataclasses.replace(plan, device=torch.device("cuda", trainer.dist.local_rank))
    return plan


def read_checkpoint(trainer: TrainerRun, path: Path) -> dict[str, Any] | None:
    """The checkpoint, read by rank 0 and passed on to every rank (None: one process
    reads it itself)."""
    if trainer.dist is None:
        return None
    data: dict[str, Any] | None = None
    error = ""
    if trainer.dist.is_main:
        try:
            data = load_checkpoint(path, map_location="cpu")
        except LearnDropError as exc:
            error = str(exc)
    data, error = trainer.dist.from_main((data, error))
    if error:
        raise CheckpointError(error)
    return data


class _Agreed:
    """The run control as every rank agrees on it, asked again at each call."""

    def __init__(self, dist: Distributed, control: RunControl) -> None:
        self._dist = dist
        self._control = control
        self.ends = False  # stop or cancel, on any rank

    def paused(self) -> bool:
        """Whether the run holds (paused on any rank, and no rank ends it)."""
        c = self._control
        stop, cancel, paused = self._dist.agree(
            [c.stop_requested, c.cancel_requested, c.paused])
        if cancel:
            c.cancel()
        elif stop:
            c.stop()
        self.ends = stop or cancel
        return paused and not self.ends


def agreed_boundary(trainer: TrainerRun) -> tuple[bool, bool]:
    """At a batch boundary of a data-parallel run: whether the run ends here (stop or
    cancel), as every rank agrees; waits while paused. Such a run has no time budget."""
    assert trainer.dist is not None
    agreed = _Agreed(trainer.dist, trainer.control)
    trainer.hold_while_paused(agreed.paused)
    return agreed.ends, False


def evaluated_everywhere(trainer: TrainerRun, n: int, loss: float, acc: float,
                         scaled: float | None) -> tuple[float, float, float | None]:
    """Every rank's validation shard's figures, weighted by its size."""
    assert trainer.dist is not None
    has = n > 0
    sums = trainer.dist.sum([loss * n if has else 0.0, acc * n if has else 0.0,
                             (scaled or 0.0) * n if has else 0.0, float(n)])
    total = sums[3]
    if total == 0:
        return math.nan, math.nan, None
    return sums[0] / total, sums[1] / total, (sums[2] / total if scaled is not None
                                              else None)
