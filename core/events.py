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
         on_restore*             at a check, when the loss after the last drop rose (reversible)
         on_savings?             after the step (or epoch end) whose drops or restores changed
                                 the drop state: the savings in the new state
         on_user_action*         at the batch boundary where the engine takes a user's request
       on_epoch_end
       on_checkpoint?)*
    on_fit_end                   always, also after stop, cancel or an error

A replayed run (:func:`learndrop.core.store.replay`) also fires ``on_clock(wall_time)``
before each event whose wall-clock time the store knows, so that a replay can tell when each
event happened; a live run never fires it (its events happen now).
``on_info(message)`` carries a line of the run's log that is neither a warning nor an
error: a replay fires it for the stored ones (how an earlier session of a resumed run
ended, say), and a callback may record one.

Epochs: one convention
----------------------
``step`` is always the global optimizer step, counted from 1 (the first step is step 1; a
step's number is how many steps are done once it is). An ``epoch`` field means one of three
things, fixed per field:

* an **epoch index**, counted from 0: ``on_epoch_start(epoch)``, ``Progress.epoch`` (the
  epoch being trained) and ``EpochEnd.epoch`` (the epoch that just ended). People see it
  counted from 1: :func:`display_epoch`.
* an **epoch position**, a float in epochs completed: ``ScoreCheck.epoch`` and
  ``DropEvent.epoch`` (2.5 = halfway through the third epoch; 1.0 = the end of the first).
  It is the x axis of every chart; for a global step it is :func:`epoch_of_step`.
* a **count of complete epochs**: ``CheckpointSaved.epoch`` (the epochs a resume from it
  skips) and ``FitStart.resumed_from_epoch`` (0 for a fresh run). Equal to the position at
  an epoch boundary. The epochs a run has done are complete epochs too:
  :func:`complete_epochs` of its last step (a run stopped in its 14th epoch has done 13).

The epoch a step belongs to, counted from 1 as people read it, is :func:`epoch_number`: the
steps of the first epoch (1 .. steps_per_epoch) are in epoch 1.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import typing
import weakref
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .savings import SavingsReport
from .summary import RunSummary

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
    "UserAction",
    "USER_ACTIONS",
    "Callback",
    "HOOKS",
    "call_hook",
    "payload_hooks",
    "event_to_dict",
    "display_epoch",
    "epoch_of_step",
    "epoch_number",
    "complete_epochs",
    "RunSummary",
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
    resumed_from_epoch: int = 0  # complete epochs a resumed run starts after (0: fresh)


@dataclass(frozen=True)
class Progress:
    """Throttled batch progress. ``loss`` is the mean over the batches since the last one."""

    step: int  # global step, from 1
    epoch: int  # index of the epoch being trained, from 0
    batch: int  # batches done in this epoch, from 1
    batches: int
    loss: float
    lr: float
    images_per_s: float
    elapsed_s: float  # the run's time so far: pauses left out, resumed sessions in
    eta_s: float


@dataclass(frozen=True)
class ScoreCheck:
    """One score check. Tuples are aligned with ``FitStart.units``; ``None`` for units that
    were already dropped (or the head, which is never scored)."""

    step: int
    epoch: float  # position: epochs completed at this check (fractional)
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
    epoch: float  # position: epochs completed at the drop (fractional)
    unit: str
    index: int
    reason: str  # "policy" or "manual"
    score: float | None
    mode: str


@dataclass(frozen=True)
class RestoreEvent:
    """The policy restored a dropped unit (``drop.reversible``): the training loss after its
    drop rose above the loss before it by more than its noise. ``loss_before`` and
    ``loss_after`` are the two spans' mean losses."""

    step: int
    epoch: float  # position: epochs completed at the restore (fractional)
    unit: str
    index: int
    reason: str  # "loss"
    loss_before: float
    loss_after: float

    @property
    def text(self) -> str:
        return (f"restored {self.unit}: training loss rose from {self.loss_before:.4f} to "
                f"{self.loss_after:.4f} after its drop")


@dataclass(frozen=True)
class EpochEnd:
    epoch: int  # index of the epoch that ended, from 0
    step: int  # its last global step (mid-epoch when the run was stopped in it)
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_accuracy_scaled: float | None  # skip mode: the scaled-down network's accuracy
    epoch_time_s: float
    elapsed_s: float  # as Progress.elapsed_s
    eta_s: float
    images_per_s: float
    lr: float
    dropped: tuple[str, ...]
    savings: SavingsReport


@dataclass(frozen=True)
class CheckpointSaved:
    epoch: int  # complete epochs in the checkpoint (a resume from it starts after them)
    step: int
    path: str


@dataclass(frozen=True)
class FitEnd:
    """``status``: finished, stopped, cancelled or failed; ``summary``: the run's figures."""

    status: str
    message: str
    summary: RunSummary = field(default_factory=RunSummary)


#: what a user can do to a running run (the first three name a unit)
USER_ACTIONS = ("pin", "unpin", "drop", "pause", "resume", "stop", "cancel", "resume_run")


@dataclass(frozen=True)
class UserAction:
    """Something a user did to a running run, as the engine took it.

    ``action`` is one of :data:`USER_ACTIONS`; ``unit`` names the unit for pin, unpin and
    drop (empty otherwise). ``resume_run`` is a stopped run continued from its checkpoint
    (``learndrop resume``, Resume in the app), taken where the checkpoint left it.
    ``time`` is when the user asked (wall clock, seconds since 1970);
    ``step`` and ``epoch`` (a position) are where the run was when it took the request, at
    the next batch boundary. A request the engine then refuses (dropping a pinned unit, say)
    is followed by a warning.
    """

    action: str
    unit: str
    step: int
    epoch: float  # position: epochs completed when the run took the request
    time: float

    @property
    def text(self) -> str:
        """The action in words: "pinned conv1", "paused"."""
        done = {"pin": "pinned", "unpin": "unpinned", "drop": "asked to drop",
                "pause": "paused", "resume": "resumed", "stop": "asked to stop",
                "cancel": "asked to cancel",
                "resume_run": "resumed the run from its checkpoint"}.get(self.action,
                                                                          self.action)
        return f"{done} {self.unit}".strip()


# ---- epochs (see the module docstring) ------------------------------------------------------
def display_epoch(epoch_index: int) -> int:
    """The epoch as people count it (from 1) for an epoch index counted from 0
    (``Progress.epoch``, ``EpochEnd.epoch``, ``on_epoch_start``)."""
    return int(epoch_index) + 1


def epoch_of_step(step: float, steps_per_epoch: int) -> float:
    """The epoch position (epochs completed, fractional) after global step ``step``; the
    step itself when the steps per epoch are not known."""
    return step / steps_per_epoch if steps_per_epoch else float(step)


def epoch_number(step: int, steps_per_epoch: int) -> int:
    """The epoch, counted from 1, that global step ``step`` belongs to (steps count from 1,
    so step ``steps_per_epoch`` is the last of epoch 1); the step itself when the steps per
    epoch are not known."""
    return max(1, math.ceil(step / steps_per_epoch)) if steps_per_epoch else step


def complete_epochs(step: int, steps_per_epoch: int) -> int:
    """The epochs complete after global step ``step``: a run stopped in its 14th epoch has
    done 13 (``step`` itself when the steps per epoch are not known)."""
    return int(step) // steps_per_epoch if steps_per_epoch else int(step)


class Callback:
    """Base class: override the hooks you need.

    ``on_savings`` reports the savings in a new drop state, after the step or epoch end at
    which units dropped or were restored (between epochs' ends, which carry their own).

    Hooks should not raise. If one does, :func:`call_hook` logs the exception with its
    traceback, reports it once to the other callbacks' ``on_warning`` and the run goes on:
    a broken progress bar must not cost a long run, nor fail without a word.
    """

    def on_fit_start(self, event: FitStart) -> None: ...
    def on_epoch_start(self, epoch: int) -> None: ...
    def on_progress(self, event: Progress) -> None: ...
    def on_scores(self, event: ScoreCheck) -> None: ...
    def on_drop(self, event: DropEvent) -> None: ...
    def on_restore(self, event: RestoreEvent) -> None: ...
    def on_savings(self, event: SavingsReport) -> None: ...
    def on_epoch_end(self, event: EpochEnd) -> None: ...
    def on_checkpoint(self, event: CheckpointSaved) -> None: ...
    def on_warning(self, message: str) -> None: ...
    def on_info(self, message: str) -> None: ...
    def on_user_action(self, event: UserAction) -> None: ...
    def on_clock(self, wall_time: float) -> None: ...
    def on_fit_end(self, event: FitEnd) -> None: ...


#: every hook :func:`call_hook` may fire, in the order :class:`Callback` declares them: the one
#: list of the protocol, from which every adapter (the app's Qt bridge, the store's replay) is
#: derived
HOOKS: tuple[str, ...] = tuple(name for name in vars(Callback) if name.startswith("on_"))


@functools.cache
def payload_hooks() -> dict[type, str]:
    """Each event dataclass and the hook that carries it, read from :class:`Callback`'s
    signatures (what the store's replay feeds a stored event to)."""
    out: dict[type, str] = {}
    for hook in HOOKS:
        hints = typing.get_type_hints(getattr(Callback, hook))
        kind = next((v for k, v in hints.items() if k != "return"), None)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            out[kind] = hook
    return out

# (callback, hook) pairs whose failure was already reported: a hook that fails on every
# batch is logged and reported once, not thousands of times
_reported: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def call_hook(callbacks: Iterable[Callback], hook: str, *args: Any) -> None:
    """Fire ``hook`` on every callback, in order.

    An unknown hook name, or a callback without that hook, raises ``AttributeError``: wiring
    fails loudly. A callback that raises does not stop the others or the run: its exception
    is logged with the traceback (``log.exception``) and, the first time this callback's
    hook fails, reported through the other callbacks' ``on_warning``.
    """
    if hook not in HOOKS:
        raise AttributeError(f"{hook!r} is not a callback hook (hooks: "
                             f"{', '.join(sorted(HOOKS))})")
    targets = list(callbacks)
    for cb in targets:
        fn = getattr(cb, hook)
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a callback must never take the run down
            _report_failure(targets, cb, hook, exc)


def _report_failure(targets: list[Callback], cb: Callback, hook: str, exc: Exception) -> None:
    name = f"{type(cb).__name__}.{hook}"
    try:
        seen = _reported.setdefault(cb, set())
    except TypeError:  # a callback that cannot be weakly referenced: report every time
        seen = set()
    if hook in seen:
        log.debug("callback %s failed again: %s", name, exc)
        return
    seen.add(hook)
    log.exception("callback %s failed; the run goes on", name)
    if hook == "on_warning":  # reporting through the hook that fails would loop
        return
    text = str(exc).strip().splitlines()
    message = (f"callback {name} failed ({type(exc).__name__}: "
               f"{text[0] if text else 'no message'}); the run goes on")
    call_hook([t for t in targets if t is not cb], "on_warning", message)


def event_to_dict(event: Any) -> dict[str, Any]:
    """A JSON-ready dict of an event (a run summary as :meth:`RunSummary.to_dict` writes
    it)."""
    out = asdict(event)
    if isinstance(event, FitEnd):
        out["summary"] = event.summary.to_dict()
    return out
