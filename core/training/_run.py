"""What the epoch loop, the run's ending and the data-parallel helpers use of a trainer:
:class:`TrainerRun`, the trainer's public side as a protocol, so that those modules need not
import the trainer (which imports them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from torch import nn

from ..config import RunConfig
from ..engine import LearnDrop
from ..events import Callback
from ..summary import EpochResult, RunSummary
from ._clock import RunClock
from ._control import RunControl
from ._distributed import Distributed
from ._setup import RunParts
from ._shard import Shard

__all__ = ["TrainerRun"]


class TrainerRun(Protocol):
    """A :class:`~._trainer.Trainer` as its helpers see it."""

    cfg: RunConfig
    callbacks: list[Callback]
    control: RunControl
    dist: Distributed | None
    shard: Shard | None
    clock: RunClock
    output_dir: Path | None
    run_name: str
    history: list[EpochResult]
    best_accuracy: float
    last_val: tuple[float, float, float | None]
    drop_last: bool
    steps_per_epoch: int
    start_epoch: int
    time_budget_s: float | None
    warnings: list[str]

    @property
    def parts(self) -> RunParts: ...
    @property
    def prepared(self) -> bool: ...
    @property
    def writes(self) -> bool: ...
    @property
    def ld(self) -> LearnDrop | None: ...
    @property
    def model(self) -> nn.Module | None: ...

    def report_requests(self) -> None: ...
    def hold_while_paused(self, paused: Callable[[], bool]) -> None: ...
    def set_lr(self, step: int) -> float: ...
    def budget_spent(self) -> bool: ...
    def sample_load(self) -> None: ...
    def elapsed(self) -> float: ...
    def eta(self, epoch: int, batch: int) -> float: ...
    def evaluate(self) -> tuple[float, float, float | None]: ...
    def all_history(self) -> list[EpochResult]: ...
    def summary(self, status: str) -> RunSummary: ...
    def release_folder(self) -> None: ...
