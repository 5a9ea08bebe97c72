"""Turning engine events into run-store rows and rows back into the same events.

Every event of a run gets a sequence number (``seq``) that grows by one per event in the
order the engine emitted them; a check's per-unit rows share their check's number. Reading
rows back sorted by ``seq`` replays the run in its original order. The rows of the
``events`` table (epoch starts, checkpoints, log lines, user actions) and of ``drops`` keep the
wall-clock time they were recorded at; read with ``clock=True``, each such event comes after a
:class:`WallClock` that says when it happened.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
)
from ..summary import RunSummary

__all__ = ["EpochStart", "RunMessage", "WallClock", "Row", "rows_for", "read_events",
           "to_json"]


@dataclass(frozen=True)
class EpochStart:
    """Replayed ``on_epoch_start(epoch)``."""

    epoch: int


@dataclass(frozen=True)
class RunMessage:
    """A line of the run's log: ``level`` is ``warning`` (``on_warning``), ``error`` (the
    message of a failed run) or ``info`` (for example a resume)."""

    level: str
    message: str


@dataclass(frozen=True)
class WallClock:
    """When the next event happened (wall clock, seconds since 1970): replayed as
    ``on_clock(time)``."""

    time: float


#: (table, values) with ``run_id`` as the first value
Row = tuple[str, tuple[Any, ...]]

#: the ``savings`` columns: the savings record's fields, in their declared order
_SAVINGS_FIELDS = tuple(f.name for f in dataclasses.fields(SavingsReport))
_EPOCH_FIELDS = (
    "epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
    "val_accuracy_scaled", "epoch_time_s", "elapsed_s", "eta_s", "images_per_s", "lr")
_PROGRESS_FIELDS = ("step", "epoch", "batch", "batches", "loss", "lr", "images_per_s",
                    "elapsed_s", "eta_s")

INSERT_SQL = {
    "progress": "INSERT INTO progress(run_id, seq, " + ", ".join(_PROGRESS_FIELDS)
                + ") VALUES (" + ", ".join("?" * (len(_PROGRESS_FIELDS) + 2)) + ")",
    "score_checks": "INSERT INTO score_checks(run_id, check_idx, unit_idx, seq, step, epoch,"
                    " lr, change, score, trend, settled, streak, cost_s)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
    "drops": "INSERT INTO drops(run_id, seq, step, epoch, unit_idx, unit, reason, score, mode,"
             " time) VALUES (?,?,?,?,?,?,?,?,?,?)",
    "epochs": "INSERT INTO epochs(run_id, seq, " + ", ".join(_EPOCH_FIELDS)
              + ", dropped) VALUES (" + ", ".join("?" * (len(_EPOCH_FIELDS) + 3)) + ")",
    "savings": "INSERT INTO savings(run_id, seq, " + ", ".join(_SAVINGS_FIELDS)
               + ") VALUES (" + ", ".join("?" * (len(_SAVINGS_FIELDS) + 2)) + ")",
    "events": "INSERT INTO events(run_id, seq, time, kind, message, data) "
              "VALUES (?,?,?,?,?,?)",
}


def to_json(value: Any) -> str:
    """JSON text of a payload; values JSON cannot hold are written as text."""
    return json.dumps(value, default=str, allow_nan=True)


def rows_for(run_id: int, seq: int, event: Any, check_idx: int = 0) -> list[Row]:
    """The rows that store ``event`` under sequence number ``seq``."""
    if isinstance(event, Progress):
        return [("progress", (run_id, seq, *(getattr(event, f) for f in _PROGRESS_FIELDS)))]
    if isinstance(event, ScoreCheck):
        n = max(len(event.changes), len(event.scores), len(event.settled))
        return [("score_checks", (
            run_id, check_idx, i, seq, event.step, event.epoch, event.lr,
            _at(event.changes, i), _at(event.scores, i), _at(event.trends, i),
            int(bool(_at(event.settled, i))), int(_at(event.streaks, i) or 0), event.cost_s))
            for i in range(n)]
    if isinstance(event, DropEvent):
        return [("drops", (run_id, seq, event.step, event.epoch, event.index, event.unit,
                           event.reason, event.score, event.mode, time.time()))]
    if isinstance(event, EpochEnd):
        return [("savings", (run_id, seq, *(getattr(event.savings, f)
                                            for f in _SAVINGS_FIELDS))),
                ("epochs", (run_id, seq, *(getattr(event, f) for f in _EPOCH_FIELDS),
                            to_json(list(event.dropped))))]
    if isinstance(event, CheckpointSaved):
        return [("events", (run_id, seq, time.time(), "checkpoint", event.path,
                            to_json({"epoch": event.epoch, "step": event.step,
                                     "path": event.path})))]
    if isinstance(event, EpochStart):
        return [("events", (run_id, seq, time.time(), "epoch_start", "",
                            to_json({"epoch": event.epoch})))]
    if isinstance(event, RunMessage):
        return [("events", (run_id, seq, time.time(), event.level, event.message, "{}"))]
    if isinstance(event, RestoreEvent):
        return [("events", (run_id, seq, time.time(), "restore", event.text,
                            to_json({"step": event.step, "epoch": event.epoch,
                                     "unit": event.unit, "index": event.index,
                                     "reason": event.reason,
                                     "loss_before": event.loss_before,
                                     "loss_after": event.loss_after})))]
    if isinstance(event, UserAction):
        return [("events", (run_id, seq, event.time, "action", event.text,
                            to_json({"action": event.action, "unit": event.unit,
                                     "step": event.step, "epoch": event.epoch})))]
    raise TypeError(f"not a stored event: {type(event).__name__}")


def _at(values: tuple[Any, ...], i: int) -> Any:
    return values[i] if i < len(values) else None


# ---- reading --------------------------------------------------------------------------------
def fit_start_of(conn: sqlite3.Connection, run: sqlite3.Row) -> FitStart:
    """Rebuild the run's ``FitStart`` from its row and its units."""
    units = tuple(
        UnitInfo(index=r["idx"], name=r["name"], modules=tuple(json.loads(r["modules"])),
                 params=r["params"], forward_flops=r["flops"], flops_share=r["flops_share"],
                 is_head=bool(r["is_head"]), skippable=bool(r["skippable"]))
        for r in conn.execute("SELECT * FROM units WHERE run_id = ? ORDER BY idx",
                              (run["id"],)))
    return FitStart(
        run_name=run["name"], config=json.loads(run["config"]), units=units,
        epochs=run["epochs_planned"], steps_per_epoch=run["steps_per_epoch"],
        total_steps=run["total_steps"], device=run["device"], mode=run["mode"],
        drop_enabled=bool(run["drop_enabled"]), total_params=run["total_params"],
        forward_flops=run["forward_flops"], output_dir=run["output_dir"],
        resumed_from_epoch=run["resumed_from_epoch"])


def fit_end_of(run: sqlite3.Row) -> FitEnd | None:
    """The run's ``FitEnd``; an interrupted run gets one too, so a replay ends."""
    if run["status"] == "running":
        return None
    try:
        stored = json.loads(run["summary"] or "{}")
    except ValueError:
        stored = {}
    return FitEnd(status=run["status"], message=run["message"],
                  summary=RunSummary.from_dict(stored))


def read_events(conn: sqlite3.Connection, run: sqlite3.Row, since: int = -1,
                clock: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(seq, event)`` for the run's events with ``seq > since``, in order.

    ``FitStart`` has sequence number 0 and ``FitEnd`` the run's last number. With ``clock``,
    an event whose wall-clock time is stored comes after a :class:`WallClock` with its
    number.
    """
    run_id = run["id"]
    if since < 0:
        if clock:
            yield 0, WallClock(run["created"])
        yield 0, fit_start_of(conn, run)
    streams = [_progress(conn, run_id, since), _checks(conn, run_id, since),
               _drops(conn, run_id, since), _epochs(conn, run_id, since),
               _log(conn, run_id, since)]
    heads: list[tuple[int, Any, float | None] | None] = [next(s, None) for s in streams]
    while True:
        live = [(h[0], i) for i, h in enumerate(heads) if h is not None]
        if not live:
            break
        _, i = min(live)
        head = heads[i]
        assert head is not None
        seq, event, when = head
        if clock and when is not None:
            yield seq, WallClock(when)
        yield seq, event
        heads[i] = next(streams[i], None)
    end = fit_end_of(run)
    end_seq = run["end_seq"]
    if end is not None and end_seq is not None and end_seq > since:
        if clock:
            yield end_seq, WallClock(run["updated"])
        yield end_seq, end


#: a stored event with its sequence number and its wall-clock time (None: not stored)
_Timed = tuple[int, Any, "float | None"]


def _query(conn: sqlite3.Connection, sql: str, *args: Any) -> Iterator[sqlite3.Row]:
    yield from conn.execute(sql, args)


def _progress(conn: sqlite3.Connection, run_id: int, since: int) -> Iterator[_Timed]:
    for r in _query(conn, "SELECT * FROM progress WHERE run_id = ? AND seq > ? ORDER BY seq",
                    run_id, since):
        yield r["seq"], Progress(**{f: r[f] for f in _PROGRESS_FIELDS}), None


def _checks(conn: sqlite3.Connection, run_id: int, since: int) -> Iterator[_Timed]:
    rows = _query(conn, "SELECT * FROM score_checks WHERE run_id = ? AND seq > ? "
                        "ORDER BY seq, unit_idx", run_id, since)
    group: list[sqlite3.Row] = []
    for r in rows:
        if group and r["seq"] != group[0]["seq"]:
            yield group[0]["seq"], _check(group), None
            group = []
        group.append(r)
    if group:
        yield group[0]["seq"], _check(group), None


def _check(rows: list[sqlite3.Row]) -> ScoreCheck:
    first = rows[0]
    return ScoreCheck(
        step=first["step"], epoch=first["epoch"], lr=first["lr"],
        changes=tuple(r["change"] for r in rows), scores=tuple(r["score"] for r in rows),
        trends=tuple(r["trend"] for r in rows), settled=tuple(bool(r["settled"]) for r in rows),
        streaks=tuple(r["streak"] for r in rows), cost_s=first["cost_s"])


def _drops(conn: sqlite3.Connection, run_id: int, since: int) -> Iterator[_Timed]:
    for r in _query(conn, "SELECT * FROM drops WHERE run_id = ? AND seq > ? ORDER BY seq",
                    run_id, since):
        yield r["seq"], DropEvent(step=r["step"], epoch=r["epoch"], unit=r["unit"],
                                  index=r["unit_idx"], reason=r["reason"], score=r["score"],
                                  mode=r["mode"]), r["time"]


def _epochs(conn: sqlite3.Connection, run_id: int, since: int) -> Iterator[_Timed]:
    sql = ("SELECT e.*, " + ", ".join(f"s.{f} AS s_{f}" for f in _SAVINGS_FIELDS)
           + " FROM epochs e LEFT JOIN savings s ON s.run_id = e.run_id AND s.seq = e.seq"
             " WHERE e.run_id = ? AND e.seq > ? ORDER BY e.seq")
    for r in _query(conn, sql, run_id, since):
        savings = SavingsReport(**{f: r[f"s_{f}"] for f in _SAVINGS_FIELDS})
        yield r["seq"], EpochEnd(**{f: r[f] for f in _EPOCH_FIELDS},
                                 dropped=tuple(json.loads(r["dropped"])),
                                 savings=savings), None


def _log(conn: sqlite3.Connection, run_id: int, since: int) -> Iterator[_Timed]:
    for r in _query(conn, "SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                    run_id, since):
        kind, data = r["kind"], json.loads(r["data"] or "{}")
        if kind == "checkpoint":
            yield r["seq"], CheckpointSaved(epoch=data["epoch"], step=data["step"],
                                            path=data["path"]), r["time"]
        elif kind == "epoch_start":
            yield r["seq"], EpochStart(epoch=data["epoch"]), r["time"]
        elif kind == "action":
            yield r["seq"], UserAction(action=str(data.get("action", "")),
                                       unit=str(data.get("unit", "")),
                                       step=int(data.get("step", 0)),
                                       epoch=float(data.get("epoch", 0.0)),
                                       time=r["time"]), r["time"]
        elif kind == "restore":
            yield r["seq"], RestoreEvent(
                step=int(data["step"]), epoch=float(data["epoch"]), unit=str(data["unit"]),
                index=int(data["index"]), reason=str(data.get("reason", "loss")),
                loss_before=float(data["loss_before"]),
                loss_after=float(data["loss_after"])), r["time"]
        else:
            yield r["seq"], RunMessage(level=kind, message=r["message"]), r["time"]
