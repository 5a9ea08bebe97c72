"""A run's event history and the numbers derived from it.

:class:`RunHistory` is a :class:`~learndrop.core.events.Callback` that accumulates the
engine's events in preallocated numpy buffers (growing by doubling, so an append costs
O(units) amortised) and derives what a view needs: unit states, the dropped prefix, best
accuracy, ETA, progress and savings. It never imports Qt: the desktop app's live views only
read from it, and a finished run can be replayed into one to be drawn at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..engine import (
    Condition,
    DropPolicy,
    RuleUnit,
    UnitStatus,
    blocked_by,
    is_kept,
    slope_error,
    why_not_yet,
)
from ..events import (
    Callback,
    CheckpointSaved,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    RestoreEvent,
    SavingsReport,
    ScoreCheck,
    UnitInfo,
    UserAction,
    complete_epochs,
    epoch_of_step,
)
from ._buffers import GrowingArray, ScoreBins, ema_run, ema_step
from ._whatif import policy_of

__all__ = ["UNIT_STATES", "DropRecord", "LogEntry", "RunHistory"]

#: "kept": a unit the policy never drops (the head, and the last ``drop.keep_last`` units)
UNIT_STATES = ("learning", "settling", "dropped", "pinned", "kept")


@dataclass(frozen=True)
class DropRecord:
    step: int
    epoch: float
    index: int
    name: str
    reason: str
    score: float | None
    check: int  # number of score checks seen when the drop happened


@dataclass(frozen=True)
class LogEntry:
    """A line for an event log. ``kind``: drop, checkpoint, action (what the user did),
    warning, error, info. ``wall_time`` is when it happened: now for a live run, the stored
    time for a replayed one (see :meth:`RunHistory.on_clock`)."""

    wall_time: float
    kind: str
    step: int | None
    epoch: float | None
    text: str


class RunHistory(Callback):
    """Everything one run reported, kept for drawing and for derived figures."""

    #: default EMA weight of the newest score for :meth:`smoothed_score_matrix`
    DEFAULT_ALPHA = 0.3

    def __init__(self) -> None:
        self.reset()

    # ---- lifecycle ---------------------------------------------------------------------------
    def reset(self, units: tuple[UnitInfo, ...] = ()) -> None:
        """Forget everything (and size the buffers for ``units``); the replay clock too."""
        self.fit_start: FitStart | None = None
        self.fit_end: FitEnd | None = None
        self.units: tuple[UnitInfo, ...] = tuple(units)
        n = len(self.units)
        self._index = {u.name: u.index for u in self.units}
        self.scores = GrowingArray(n)
        self.changes = GrowingArray(n)
        self.check_meta = GrowingArray(4)  # step, epoch, lr, dropped prefix before the check
        self.progress = GrowingArray(6)  # step, epoch (fractional), loss, lr, images/s, eta
        self.epochs = GrowingArray(9)
        # step and the savings record's forward/train FLOPs saved now, then total, time saved
        # (total, projected total), efficiency (NaN: none), trainable params now
        self.savings = GrowingArray(9)
        self.latest_trends = np.full(n, np.nan)
        self.latest_settled = np.zeros(n, dtype=bool)
        self.latest_streaks = np.zeros(n, dtype=np.int64)
        self.last_scores = np.full(n, np.nan)
        self.dropped = np.zeros(n, dtype=bool)
        self.drops: list[DropRecord] = []
        self.restores: list[RestoreEvent] = []  # drops the reversible policy undid
        self.drop_of: dict[int, DropRecord] = {}
        self.pinned: set[str] = set()
        self.checkpoints: list[CheckpointSaved] = []
        self.actions: list[UserAction] = []
        self.paused = False
        self.policy = DropPolicy(keep_last=0)  # the run's drop rule, from its config
        self.log: list[LogEntry] = []
        self._clock: float | None = None
        self.last_progress: Progress | None = None
        self.last_epoch: EpochEnd | None = None
        self.current_epoch = 0
        self.threshold = math.nan
        self._alpha = self.DEFAULT_ALPHA
        self._ema = GrowingArray(n)
        self._ema_state = np.full(n, np.nan)
        self.bins = ScoreBins(n)
        self.smooth_bins = ScoreBins(n)
        self._latest_savings: SavingsReport | None = None

    # ---- Callback hooks ----------------------------------------------------------------------
    def on_fit_start(self, event: FitStart) -> None:
        clock = self._clock  # a replay's clock comes just before
        self.reset(event.units)
        self._clock = clock
        self.fit_start = event
        drop_cfg = event.config.get("drop", {}) if isinstance(event.config, dict) else {}
        self.threshold = float(drop_cfg.get("threshold", math.nan))
        self.pinned = {p for p in drop_cfg.get("pinned", []) if p in self._index}
        policy = policy_of(event.config)  # with dropping off, nothing needs keeping
        self.policy = policy if event.drop_enabled else replace(policy, keep_last=0)
        self.current_epoch = event.resumed_from_epoch
        # the whole planned run, from its first epoch: a resumed run's earlier epochs are
        # replayed before it goes on (the store keeps them)
        span = float(event.epochs) if event.epochs > 0 else 1.0
        self.bins = ScoreBins(len(event.units), start=0.0, span=span)
        self.smooth_bins = ScoreBins(len(event.units), start=0.0, span=span)
        self._note("info", None, None, f"run {event.run_name} started on {event.device} "
                   f"({len(event.units)} units, mode {event.mode}"
                   f"{'' if event.drop_enabled else ', dropping off'})")

    def on_epoch_start(self, epoch: int) -> None:
        self.current_epoch = epoch

    def on_progress(self, event: Progress) -> None:
        self.last_progress = event
        self.progress.append((event.step, self.epoch_of(event.step), event.loss, event.lr,
                              event.images_per_s, event.eta_s))

    def on_scores(self, event: ScoreCheck) -> None:
        n = len(self.units)
        scores = _floats(event.scores, n)
        self.scores.append(scores)
        self.changes.append(_floats(event.changes, n))
        self.check_meta.append((event.step, event.epoch, event.lr, self.dropped_prefix_len()))
        self.latest_trends = _floats(event.trends, n)
        self.latest_settled = _padded(event.settled, n, False).astype(bool)
        self.latest_streaks = _padded(event.streaks, n, 0).astype(np.int64)
        finite = ~np.isnan(scores)
        self.last_scores[finite] = scores[finite]
        self._ema_state = ema_step(self._ema_state, scores, self._alpha)
        smooth = np.where(finite, self._ema_state, np.nan)
        self._ema.append(smooth)
        self.bins.add(float(event.epoch), scores)
        self.smooth_bins.add(float(event.epoch), smooth)

    def on_drop(self, event: DropEvent) -> None:
        i = event.index if 0 <= event.index < len(self.units) else self._index.get(event.unit, -1)
        if i < 0 or self.dropped[i]:
            return
        score = event.score if event.score is not None else _or_none(self.last_scores[i])
        rec = DropRecord(event.step, event.epoch, i, event.unit, event.reason, score,
                         len(self.scores))
        self.dropped[i] = True
        self.latest_settled[i] = False
        self.drops.append(rec)
        self.drop_of[i] = rec
        why = "by hand" if event.reason == "manual" else f"score {_fmt(score)}"
        self._note("drop", event.step, event.epoch, f"dropped {event.unit} ({why}, {event.mode})")

    def on_restore(self, event: RestoreEvent) -> None:
        """The policy undid a drop (reversible): the unit trains again; kept and logged."""
        i = event.index if 0 <= event.index < len(self.units) else self._index.get(event.unit, -1)
        if i >= 0:
            self.restores.append(event)
            self.dropped[i] = False
            self.drop_of.pop(i, None)
            self._note("restore", event.step, event.epoch, event.text)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.last_epoch = event
        self.current_epoch = event.epoch
        scaled = math.nan if event.val_accuracy_scaled is None else event.val_accuracy_scaled
        self.epochs.append((event.epoch, self.epoch_of(event.step), event.train_loss,
                            event.train_accuracy, event.val_loss, event.val_accuracy, scaled,
                            event.epoch_time_s, event.elapsed_s))
        self.on_savings(event.savings)

    def on_savings(self, report: SavingsReport) -> None:
        """Record a savings report (an epoch's end carries one; a live run's drops send more)."""
        self._latest_savings = report
        eff = report.efficiency_total
        self.savings.append((report.step, report.forward_flops_saved_now,
                             report.train_flops_saved_now, report.forward_flops_saved_total,
                             report.train_flops_saved_total, report.time_saved_s_total,
                             report.projected_time_saved_s_total,
                             math.nan if eff is None else eff, report.trainable_params_now))

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        """Logged at the position of its step: a checkpoint written when a run stopped in its
        first epoch holds 0 complete epochs, at 0.91 epochs, say."""
        self.checkpoints.append(event)
        n = event.epoch
        self._note("checkpoint", event.step, None,
                   f"checkpoint after {n} complete epoch{'s' if n != 1 else ''}: {event.path}")

    def on_user_action(self, event: UserAction) -> None:
        """What the user did, logged when they asked. A pin takes a dropped unit back
        (the engine restores it); pause and resume set :attr:`paused`."""
        self.actions.append(event)
        if event.action in ("pin", "unpin") and event.unit in self._index:
            i = self._index[event.unit]
            if event.action == "pin" and self.dropped[i]:
                self.dropped[i] = False
                self.drop_of.pop(i, None)
            self.set_pinned(event.unit, event.action == "pin")
        elif event.action in ("pause", "resume"):
            self.paused = event.action == "pause"
        self.log.append(LogEntry(event.time, "action", event.step, event.epoch,
                                 f"you {event.text}"))

    def on_clock(self, wall_time: float) -> None:
        """A replay says when the next events happened; the log uses it from here on."""
        self._clock = float(wall_time)

    def clear_clock(self) -> None:
        """The events from here on happen now (a resumed run, its past replayed, goes on)."""
        self._clock = None

    def on_warning(self, message: str) -> None:
        self._note("warning", self._step(), None, message)

    def on_info(self, message: str) -> None:
        self._note("info", self._step(), None, message)

    def on_error(self, message: str) -> None:
        """Not an engine hook: the app reports errors outside the callbacks this way."""
        self._note("error", self._step(), None, message)

    def note(self, kind: str, text: str) -> None:
        """Add a line to the log (kind: info, warning, error, drop, checkpoint)."""
        self._note(kind, self._step(), None, text)

    def on_fit_end(self, event: FitEnd) -> None:
        self.fit_end = event
        self.paused = False
        kind = "error" if event.status == "failed" else "info"
        text = f"run {event.status}" + (f": {event.message}" if event.message else "")
        self._note(kind, self._step(), None, text)

    # ---- pinning -----------------------------------------------------------------------------
    def set_pinned(self, name: str, pinned: bool) -> None:
        if name not in self._index:
            raise KeyError(f"no unit named {name!r}")
        (self.pinned.add if pinned else self.pinned.discard)(name)

    # ---- unit queries ------------------------------------------------------------------------
    def has_unit(self, name: str) -> bool:
        return name in self._index

    def unit_index(self, name: str) -> int:
        return self._index[name]

    def unit_state(self, i: int) -> str:
        """learning, settling (settled but not dropped yet), dropped, pinned or kept (the
        head and the last ``drop.keep_last`` units, which the policy never drops)."""
        if self.dropped[i]:
            return "dropped"
        if self.units[i].name in self.pinned:
            return "pinned"
        if self.is_kept(i):
            return "kept"
        if self.latest_settled[i]:
            return "settling"
        return "learning"

    @property
    def keep_last(self) -> int:
        """The units before the head that always train (0 with dropping off)."""
        return self.policy.keep_last

    def is_kept(self, i: int) -> bool:
        """Whether the policy never drops unit ``i``: the head, and with dropping on the
        ``drop.keep_last`` units before it (the engine's rule, :func:`is_kept`)."""
        return is_kept(i, len(self.units), self.keep_last, self.units[i].is_head)

    def blocked_by_pin(self, name: str) -> list[str]:
        """The units that pinning ``name`` keeps from being dropped too, by the engine's
        rule (:func:`blocked_by`): in prefix order, every unit behind it that could drop
        (empty in any order)."""
        if name not in self._index:
            return []
        i = self._index[name]
        policy = self.policy
        units = [RuleUnit(u.name, u.is_head, u.params > 0) for u in self.units]
        ready = [UnitStatus(bool(self.dropped[j]), j == i, policy.patience)
                 for j in range(len(units))]
        return [u.name for u in self.units[i + 1:]
                if not self.dropped[u.index] and not self.is_kept(u.index)
                and blocked_by(policy, units, ready, u.index) == i]

    def why_not_yet(self, i: int) -> list[Condition]:
        """Each condition of the drop rule for unit ``i`` with its value at the last check,
        by the engine's rule (:func:`~learndrop.core.engine.why_not_yet`)."""
        units = [RuleUnit(u.name, u.is_head, u.params > 0) for u in self.units]
        statuses = [UnitStatus(bool(self.dropped[j]), u.name in self.pinned,
                               int(self.latest_streaks[j]) if j < len(self.latest_streaks)
                               else 0) for j, u in enumerate(self.units)]
        policy = self.policy
        if self.fit_start is not None and not self.fit_start.drop_enabled:
            policy = replace(policy, enabled=False)
        trend = float(self.latest_trends[i]) if i < len(self.latest_trends) else math.nan
        scores = [float(v) for v in self.scores.column(i) if math.isfinite(v)] \
            if len(self.scores) else []
        recent = scores[1:][-policy.window:]  # as the engine fits it: the first left out
        epochs = self.check_epochs()
        return why_not_yet(policy, units, statuses, i, score=self.latest_score(i),
                           trend=trend if math.isfinite(trend) else None,
                           epochs_done=float(epochs[-1]) if len(epochs) else 0.0,
                           trend_se=slope_error(recent), points=len(recent))

    def unit_states(self) -> list[str]:
        return [self.unit_state(i) for i in range(len(self.units))]

    def dropped_prefix_len(self) -> int:
        """How many leading units are dropped."""
        not_dropped = np.flatnonzero(~self.dropped)
        return int(not_dropped[0]) if not_dropped.size else len(self.units)

    def latest_score(self, i: int) -> float | None:
        return _or_none(self.last_scores[i])

    def unit_scores(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(check epochs, scores) of one unit up to its drop: views, not copies."""
        end = self.drop_of[i].check if i in self.drop_of else len(self.scores)
        return self.check_epochs()[:end], self.scores.column(i)[:end]

    # ---- matrices ----------------------------------------------------------------------------
    def n_checks(self) -> int:
        return len(self.scores)

    def score_matrix(self) -> np.ndarray:
        """(checks x units) learning scores, NaN where not scored: a view."""
        return self.scores.view()

    def change_matrix(self) -> np.ndarray:
        return self.changes.view()

    def check_steps(self) -> np.ndarray:
        return self.check_meta.column(0)

    def check_epochs(self) -> np.ndarray:
        return self.check_meta.column(1)

    def prefix_at_checks(self) -> np.ndarray:
        """Dropped-prefix length when each check was taken (the heatmap's boundary)."""
        return self.check_meta.column(3)

    @property
    def smoothing_alpha(self) -> float:
        return self._alpha

    def smoothed_score_matrix(self, alpha: float | None = None) -> np.ndarray:
        """EMA-smoothed scores, kept up to date on every check; a new alpha recomputes once."""
        if alpha is not None and alpha != self._alpha:
            self._alpha = float(alpha)
            smoothed, self._ema_state = ema_run(self.scores.view(), self._alpha)
            self._ema = GrowingArray(len(self.units), capacity=max(64, smoothed.shape[0]))
            for row in smoothed:
                self._ema.append(row)
            self.smooth_bins.rebuild(self.check_epochs(), smoothed)
        return self._ema.view()

    # ---- run-level figures -------------------------------------------------------------------
    def epoch_of(self, step: int) -> float:
        """Fractional epoch of a global step (steps / steps per epoch)."""
        return epoch_of_step(step, self.fit_start.steps_per_epoch if self.fit_start else 0)

    def best_val_accuracy(self) -> float | None:
        if not len(self.epochs):
            return None
        col = self.epochs.column(5)
        return None if np.all(np.isnan(col)) else float(np.nanmax(col))

    def epochs_complete(self) -> int:
        """Complete epochs so far (a run stopped in its 14th epoch has done 13)."""
        if self.fit_start is None:
            return 0
        return complete_epochs(self._step() or 0, self.fit_start.steps_per_epoch)

    def progress_fraction(self) -> float:
        if self.fit_end is not None and self.fit_end.status == "finished":
            return 1.0
        total = self.fit_start.total_steps if self.fit_start else 0
        step = self._step()
        if not total or step is None:
            return 0.0
        return float(min(1.0, max(0.0, step / total)))

    def epoch_fraction(self) -> float:
        """Share of the current epoch done (from the latest progress report)."""
        p = self.last_progress
        if p is None or not p.batches:
            return 0.0
        if self.last_epoch is not None and self.last_epoch.step >= p.step:
            return 1.0
        return float(min(1.0, max(0.0, p.batch / p.batches)))

    def eta_s(self) -> float | None:
        """Seconds left: the engine's latest estimate, or one from elapsed time and progress."""
        if self.fit_end is not None:
            return 0.0
        latest: tuple[int, float, float] | None = None
        for ev in (self.last_progress, self.last_epoch):
            if ev is not None and (latest is None or ev.step >= latest[0]):
                latest = (ev.step, ev.eta_s, ev.elapsed_s)
        if latest is None:
            return None
        _step, eta, elapsed = latest
        if math.isfinite(eta) and eta >= 0:
            return float(eta)
        frac = self.progress_fraction()
        return elapsed * (1 - frac) / frac if frac > 0 else None

    def latest_savings(self) -> SavingsReport | None:
        return self._latest_savings

    def latest_images_per_s(self) -> float | None:
        p, e = self.last_progress, self.last_epoch
        if p is not None and (e is None or p.step >= e.step):
            return p.images_per_s
        return e.images_per_s if e is not None else None

    def trainable_params(self) -> int | None:
        s = self.latest_savings()
        if s is not None:
            return s.trainable_params_now
        if self.fit_start is None:
            return None
        return sum(u.params for i, u in enumerate(self.units) if not self.dropped[i])

    def total_params(self) -> int | None:
        return self.fit_start.total_params if self.fit_start else None

    @property
    def running(self) -> bool:
        return self.fit_start is not None and self.fit_end is None

    # ---- helpers -----------------------------------------------------------------------------
    def _step(self) -> int | None:
        steps = [ev.step for ev in (self.last_progress, self.last_epoch) if ev is not None]
        # where the user's latest request was taken, or the latest drop: a run cancelled
        # between two progress reports ended there, not at the report before
        steps += [a.step for a in self.actions[-1:]] + [d.step for d in self.drops[-1:]]
        if len(self.check_meta):
            steps.append(int(self.check_meta.column(0)[-1]))
        return max(steps) if steps else None

    def _note(self, kind: str, step: int | None, epoch: float | None, text: str) -> None:
        if epoch is None and step is not None:
            epoch = self.epoch_of(step)
        when = self._clock if self._clock is not None else time.time()
        self.log.append(LogEntry(when, kind, step, epoch, text))


def _floats(values: tuple[float | None, ...], n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    vals = [math.nan if v is None else v for v in values[:n]]
    out[: len(vals)] = vals
    return out


def _padded(values: tuple[Any, ...], n: int, pad: Any) -> np.ndarray:
    return np.array(tuple(values[:n]) + (pad,) * max(0, n - len(values)))


def _or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
