"""Reports of a stored run (or of a run compared with others), readable without the app.

:func:`build_report` gathers a run from the :class:`~learndrop.core.store.RunStore` and
derives what a reader needs: the per-unit table, the savings summary (measured and
predicted from FLOPs), the accuracies and the comparison with a baseline. :func:`export`
writes it as one self-contained HTML file, a PDF (rendered with Qt by the desktop app's
``report_pdf`` module), a CSV of the score history, a JSON file with everything, or
TensorBoard event files.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import LearnDropError
from ..events import (
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
    epoch_number,
    epoch_of_step,
)
from ..store import RunMessage, RunRecord, RunStore

__all__ = ["RunData", "RunAccuracy", "UnitRow", "Report", "ReportError",
           "load_run", "build_report",
           "json_safe", "finite", "csv_number"]


class ReportError(LearnDropError):
    """A report that cannot be made in the format asked for."""


@dataclass(frozen=True)
class UnitRow:
    """One line of a report's unit table."""

    index: int
    name: str
    params: int
    forward_flops: int
    flops_share: float
    is_head: bool
    drop_step: int | None
    drop_epoch: float | None
    drop_reason: str
    final_score: float | None
    pinned: bool = False  # pinned at the end of the run (by the config or by hand)
    restores: int = 0  # how often the policy undid its drop (reversible drops)

    @property
    def state(self) -> str:
        if self.is_head:
            return "head"
        if self.drop_step is None:
            return "pinned" if self.pinned else "restored" if self.restores else "trained"
        return f"dropped ({self.drop_reason})"


@dataclass(frozen=True)
class RunAccuracy:
    """A stored run's accuracies at its end (``None`` when no epoch ended)."""

    final_val_accuracy: float | None = None
    final_val_accuracy_scaled: float | None = None
    best_val_accuracy: float | None = None
    final_train_accuracy: float | None = None
    final_val_loss: float | None = None


@dataclass
class RunData:
    """A stored run split by event type."""

    record: RunRecord
    start: FitStart
    epochs: list[EpochEnd] = field(default_factory=list)
    checks: list[ScoreCheck] = field(default_factory=list)
    drops: list[DropEvent] = field(default_factory=list)
    restores: list[RestoreEvent] = field(default_factory=list)  # drops the policy undid
    progress: list[Progress] = field(default_factory=list)
    checkpoints: list[CheckpointSaved] = field(default_factory=list)
    messages: list[RunMessage] = field(default_factory=list)
    actions: list[UserAction] = field(default_factory=list)
    end: FitEnd | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def units(self) -> tuple[UnitInfo, ...]:
        return self.start.units

    def pinned_at_end(self) -> list[str]:
        """The units pinned when the run ended: the config's pins, then the user's pins and
        unpins in order."""
        pins = self.start.config.get("drop", {}).get("pinned", [])
        pinned = [str(p) for p in pins] if isinstance(pins, list) else []
        for a in self.actions:
            if a.action == "pin" and a.unit not in pinned:
                pinned.append(a.unit)
            elif a.action == "unpin" and a.unit in pinned:
                pinned.remove(a.unit)
        return pinned

    def unit_rows(self) -> list[UnitRow]:
        # a pin or a restore takes a dropped unit back: the drops before it no longer hold
        restored = {(a.unit, a.step) for a in self.actions if a.action == "pin"}
        restored |= {(r.unit, r.step) for r in self.restores}
        kept = [d for d in self.drops
                if not any(unit == d.unit and step >= d.step for unit, step in restored)]
        drops = {d.index: d for d in kept}
        drops_by_name = {d.unit: d for d in kept}
        pinned = set(self.pinned_at_end())
        rows = []
        for u in self.units:
            d = drops.get(u.index) or drops_by_name.get(u.name)
            final = None
            for check in reversed(self.checks):
                if u.index < len(check.scores) and check.scores[u.index] is not None:
                    final = check.scores[u.index]
                    break
            rows.append(UnitRow(
                index=u.index, name=u.name, params=u.params, forward_flops=u.forward_flops,
                flops_share=u.flops_share, is_head=u.is_head,
                drop_step=d.step if d else None, drop_epoch=d.epoch if d else None,
                drop_reason=d.reason if d else "", final_score=final,
                pinned=u.name in pinned,
                restores=sum(r.unit == u.name for r in self.restores)))
        return rows

    def savings(self) -> SavingsReport | None:
        """The run's savings at its end: the last epoch's savings record (``None`` when no
        epoch ended: nothing was measured). Runs recorded before the FLOP-predicted time
        saved was measured get it as the share of training FLOPs saved over the run times
        the full network's measured time for the steps run."""
        last = self.epochs[-1].savings if self.epochs else None
        if last is None:
            return None
        predicted = last.predicted_time_saved_s_total
        if predicted is None and last.full_step_time_s_now \
                and last.train_flops_saved_total is not None:
            predicted = last.train_flops_saved_total * last.full_step_time_s_now * last.step
        # rows of older stores may hold no value where the record has a number
        return dataclasses.replace(
            last, predicted_time_saved_s_total=predicted,
            total_params=last.total_params or self.start.total_params,
            full_allreduce_bytes_per_step_now=last.full_allreduce_bytes_per_step_now or 0,
            allreduce_bytes_per_step_now=last.allreduce_bytes_per_step_now or 0,
            allreduce_bytes_saved_total=last.allreduce_bytes_saved_total or 0.0)

    def accuracy(self) -> RunAccuracy:
        vals = [e.val_accuracy for e in self.epochs if finite(e.val_accuracy)]
        last = self.epochs[-1] if self.epochs else None
        best = max(vals) if vals else None
        if last is None:
            return RunAccuracy(best_val_accuracy=best)
        return RunAccuracy(final_val_accuracy=last.val_accuracy,
                           final_val_accuracy_scaled=last.val_accuracy_scaled,
                           best_val_accuracy=best, final_train_accuracy=last.train_accuracy,
                           final_val_loss=last.val_loss)

    def epoch_number(self, step: int) -> int:
        """The epoch, counted from 1, that step ``step`` belongs to."""
        return epoch_number(step, self.start.steps_per_epoch)

    def epoch_of_step(self, step: int) -> float:
        """Epochs completed at ``step`` (fractional): the x axis of every run chart."""
        return epoch_of_step(step, self.start.steps_per_epoch)


def load_run(store: RunStore, ref: str | int) -> RunData:
    """Read a run and all its events from the store."""
    record = store.get_run(ref)
    events = store.load_events(record.id)
    data = RunData(record=record, start=events[0])
    buckets: dict[type, list[Any]] = {
        EpochEnd: data.epochs, ScoreCheck: data.checks, DropEvent: data.drops,
        RestoreEvent: data.restores, Progress: data.progress,
        CheckpointSaved: data.checkpoints, RunMessage: data.messages, UserAction: data.actions}
    for event in events[1:]:
        if isinstance(event, FitEnd):
            data.end = event
        elif type(event) in buckets:
            buckets[type(event)].append(event)
    return data


@dataclass
class Report:
    """One run, and the runs it is compared with (the baseline first, if any)."""

    run: RunData
    others: list[RunData] = field(default_factory=list)
    generated: float = field(default_factory=time.time)

    @property
    def baseline(self) -> RunData | None:
        """The first compared run that trained the full network."""
        return next((o for o in self.others if not o.record.drop_enabled), None)

    @property
    def title(self) -> str:
        if self.others:
            return (f"Learn&Drop report: {self.run.name} compared with "
                    f"{', '.join(o.name for o in self.others)}")
        return f"Learn&Drop report: {self.run.name}"


def build_report(store: RunStore, ref: str | int, compare: list[str | int] | None = None,
                 ) -> Report:
    """A report of run ``ref``, compared with the runs in ``compare``; when ``compare`` is
    ``None``, with the other runs of its group (a benchmark's baseline), if any."""
    run = load_run(store, ref)
    others: list[RunData] = []
    if compare is not None:
        named = [c for c in compare if c is not None]
        others = [load_run(store, c) for c in named]
        for name, other in zip(named, others):
            if other.record.id == run.record.id:
                raise LearnDropError(f"--compare '{name}' is the report's own run '{ref}': "
                                     f"compare it with another run")
    elif run.record.group_id is not None:
        others = [load_run(store, r.id) for r in store.group_runs(run.record.group_id)
                  if r.id != run.record.id]
    others.sort(key=lambda o: o.record.drop_enabled)  # baselines first
    return Report(run=run, others=others)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def csv_number(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
