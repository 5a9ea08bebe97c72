"""Callbacks and the plain-data events the engine emits.

The engine talks to the outside world (the command line's progress bar, the run store, the
desktop app's Qt bridge) only through :class:`Callback` hooks. Every payload is a frozen
dataclass of numbers, strings and tuples, never a tensor, so it can cross threads and
processes and be stored as is.

Order of events in one run::

    on_fit_start
      (on_epoch_start
         on_progress*            every ``train.log_every`` batches
         on_scores               every check (``drop.check_every`` steps or once an epoch)
         on_drop*                right after the check that decided it, or a manual drop
       on_epoch_end
       on_checkpoint?)*
    on_fit_end                   always, also after stop, cancel or an error
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "UnitInfo",
    "FitStart",
    "Progress",
    "ScoreCheck",
    "DropEvent",
    "SavingsReport",
    "EpochEnd",
    "CheckpointSaved",
    "FitEnd",
    "Callback",
    "call_hook",
    "event_to_dict",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitInfo:
    """One scored and droppable unit. ``flops_share`` is its share of the forward FLOPs."""

    index: int
    name: str
    modules: tuple[str, ...]
    params: int
    forward_flops: int
    flops_share: float
    is_head: bool = False
    skippable: bool = False


@dataclass(frozen=True)
class FitStart:
    run_name: str
    config: dict[str, Any]
    units: tuple[UnitInfo, ...]
    epochs: int
    steps_per_epoch: int
    total_steps: int
    device: str
    mode: str
    drop_enabled: bool
    total_params: int
    forward_flops: int
    output_dir: str
    resumed_from_epoch: int = 0


@dataclass(frozen=True)
class Progress:
    """Throttled batch progress. ``loss`` is the mean over the batches since the last one."""

    step: int
    epoch: int
    batch: int
    batches: int
    loss: float
    lr: float
    images_per_s: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class ScoreCheck:
    """One score check. Tuples are aligned with ``FitStart.units``; ``None`` for units that
    were already dropped (or the head, which is never scored)."""

    step: int
    epoch: float
    lr: float
    changes: tuple[float | None, ...]
    scores: tuple[float | None, ...]
    trends: tuple[float | None, ...]
    settled: tuple[bool, ...]
    streaks: tuple[int, ...]
    cost_s: float


@dataclass(frozen=True)
class DropEvent:
    step: int
    epoch: float
    unit: str
    index: int
    reason: str  # "policy" or "manual"
    score: float | None
    mode: str


@dataclass(frozen=True)
class SavingsReport:
    """Savings as fractions of the full network's cost (0.25 = 25% saved).

    ``forward_flops_saved`` and ``train_flops_saved`` are the current per-step figures;
    the ``cumulative_`` ones cover every step so far. Times are measured wall-clock seconds.
    """

    step: int
    forward_flops_saved: float
    train_flops_saved: float
    cumulative_forward_flops_saved: float
    cumulative_train_flops_saved: float
    trainable_params: int
    total_params: int
    step_time_s: float | None
    full_step_time_s: float | None
    measured_time_saved: float | None
    time_saved_s: float
    projected_time_saved_s: float
    efficiency: float | None


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_accuracy_scaled: float | None  # skip mode: the scaled-down network's accuracy
    epoch_time_s: float
    elapsed_s: float
    eta_s: float
    images_per_s: float
    lr: float
    dropped: tuple[str, ...]
    savings: SavingsReport


@dataclass(frozen=True)
class CheckpointSaved:
    epoch: int
    step: int
    path: str


@dataclass(frozen=True)
class FitEnd:
    """``status``: finished, stopped, cancelled or failed. ``summary`` is JSON-ready."""

    status: str
    message: str
    summary: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class: override the hooks you need. Hooks must not raise; if one does, the
    error is logged and the run goes on (a broken progress bar must not cost a run)."""

    def on_fit_start(self, event: FitStart) -> None: ...
    def on_epoch_start(self, epoch: int) -> None: ...
    def on_progress(self, event: Progress) -> None: ...
    def on_scores(self, event: ScoreCheck) -> None: ...
    def on_drop(self, event: DropEvent) -> None: ...
    def on_epoch_end(self, event: EpochEnd) -> None: ...
    def on_checkpoint(self, event: CheckpointSaved) -> None: ...
    def on_warning(self, message: str) -> None: ...
    def on_fit_end(self, event: FitEnd) -> None: ...


def call_hook(callbacks: Iterable[Callback], hook: str, *args: Any) -> None:
    """Fire ``hook`` on every callback, in order."""
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is None:
            continue
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a callback must never take the run down
            log.exception("callback %s.%s failed", type(cb).__name__, hook)


def event_to_dict(event: Any) -> dict[str, Any]:
    """A JSON-ready dict of an event (tuples become lists)."""
    return asdict(event)
