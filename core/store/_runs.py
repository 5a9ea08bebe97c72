"""The run store: every run, from the app or the command line, in one SQLite file.

The store lives at ``data_home()/store.sqlite`` unless a path is given (``--store PATH``,
``LEARNDROP_HOME``). It is opened in WAL mode, so one process can follow a run that another
one is writing; each reader and each writer uses its own connection. Checkpoints and weights
stay in the run's own folder (``FitStart.output_dir``); the store records where it is.

A file that is not a run store, or is damaged, is refused with :class:`StoreError` and never
written to: it is checked through a read-only connection before any write.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..events import complete_epochs
from ..paths import data_home
from ..runfolder import remove_run_files
from ..summary import RunSummary
from . import _schema as schema
from ._db import (
    RunNotFoundError,
    StoreError,
    connect,
    inspect_store,
    pid_alive,
)
from ._events import EpochStart, RunMessage, read_events
from ._journal import JournalReplay
from ._sweeps import SweepRecords
from ._writer import STATUSES

__all__ = [
    "RunStore",
    "RunRecord",
    "GroupRecord",
    "StoreError",
    "RunNotFoundError",
    "EpochStart",
    "RunMessage",
    "default_store_path",
    "STATUSES",
]


def default_store_path() -> Path:
    return data_home() / "store.sqlite"


@dataclass(frozen=True)
class RunRecord:
    """One run as the store knows it, with a few figures taken from its last epoch."""

    id: int
    name: str
    display_name: str
    status: str
    message: str
    created: float
    updated: float
    config: dict[str, Any]
    environment: dict[str, Any]
    summary: RunSummary
    note: str
    output_dir: str
    pid: int | None
    host: str
    group_id: int | None
    model: str
    dataset: str
    device: str
    mode: str
    drop_enabled: bool
    epochs_planned: int
    epochs_done: int  # complete epochs (see events.complete_epochs)
    final_val_accuracy: float | None
    final_val_accuracy_scaled: float | None
    train_flops_saved_total: float | None  # the last epoch's savings (see SavingsReport)
    time_saved_s_total: float | None
    drops: int
    wall_time_s: float

    @property
    def label(self) -> str:
        """The display name where one was set, else the name."""
        return self.display_name or self.name


@dataclass(frozen=True)
class GroupRecord:
    """Runs linked together, e.g. a benchmark's baseline and Learn&Drop runs."""

    id: int
    kind: str
    label: str
    created: float
    run_names: tuple[str, ...]


_RUN_SELECT = """
SELECT r.*,
       (SELECT COUNT(*) FROM epochs WHERE run_id = r.id) AS epoch_rows,
       (SELECT MAX(step) FROM epochs WHERE run_id = r.id) AS last_epoch_step,
       (SELECT COUNT(*) FROM drops WHERE run_id = r.id) AS drop_count,
       le.val_accuracy AS last_val_accuracy,
       le.val_accuracy_scaled AS last_val_accuracy_scaled,
       le.elapsed_s AS last_elapsed_s,
       ls.train_flops_saved_total AS last_train_flops_saved_total,
       ls.time_saved_s_total AS last_time_saved_s_total
FROM runs r
LEFT JOIN epochs le ON le.run_id = r.id
     AND le.seq = (SELECT MAX(seq) FROM epochs WHERE run_id = r.id)
LEFT JOIN savings ls ON ls.run_id = r.id AND ls.seq = le.seq
"""


class RunStore(SweepRecords, JournalReplay):
    """The run store. Use as a context manager, or call :meth:`close`.

    Safe to share between threads (calls are serialised); for following a run that this
    process writes from another thread, open a second ``RunStore`` on the same path.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_store_path()
        self._lock = threading.RLock()
        version = inspect_store(self.path)  # refuses a foreign or damaged file, unwritten
        self._conn = connect(self.path)
        #: runs added from their journals when the store was opened
        self.replayed: list[str] = []
        try:
            self._prepare(version)
            self.replayed = self._replay_quietly()
            self.mark_interrupted()
        except BaseException:
            self._conn.close()
            raise

    # ---- opening ---------------------------------------------------------------------------
    def _prepare(self, version: int | None) -> None:
        if version == schema.SCHEMA_VERSION:
            return
        with self._write():
            found = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if found == 0 and not self._tables():
                schema.create_schema(self._conn)
            elif found < schema.SCHEMA_VERSION:
                schema.migrate(self._conn, found)

    def _replay_quietly(self) -> list[str]:
        try:
            return self.replay_journals()
        except (StoreError, sqlite3.DatabaseError, OSError):
            return []  # e.g. a read-only store: the journals wait for a writable one

    def _tables(self) -> set[str]:
        return {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- runs --------------------------------------------------------------------------------
    def list_runs(self, *, status: str | None = None,
                  group_id: int | None = None) -> list[RunRecord]:
        """Every run, newest first (optionally only one status or one group)."""
        self.mark_interrupted()
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            where.append("r.status = ?")
            args.append(status)
        if group_id is not None:
            where.append("r.group_id = ?")
            args.append(group_id)
        sql = _RUN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        with self._read():
            rows = self._conn.execute(sql + " ORDER BY r.created DESC, r.id DESC",
                                      args).fetchall()
        return [_record(r) for r in rows]

    def get_run(self, ref: str | int) -> RunRecord:
        """A run by id, exact name, exact display name or unique start of its name."""
        run_id = self._resolve(ref)
        with self._read():
            row = self._conn.execute(_RUN_SELECT + " WHERE r.id = ?", (run_id,)).fetchone()
        return _record(row)

    def _resolve(self, ref: str | int) -> int:
        text = str(ref).strip()
        if not text:
            raise RunNotFoundError("no run name given: see 'learndrop runs' for the names")
        if not _is_text(text) or len(text) > 1000:
            raise RunNotFoundError(f"{text[:60]!r} cannot name a run (not plain text, or too "
                                   f"long): see 'learndrop runs' for the names")
        with self._read():
            for sql in ("SELECT id, name FROM runs WHERE name = ?",
                        "SELECT id, name FROM runs WHERE id = ?",
                        "SELECT id, name FROM runs WHERE display_name = ?",
                        "SELECT id, name FROM runs WHERE substr(name, 1, ?) = ? ORDER BY name"):
                if "substr" in sql:
                    rows = self._conn.execute(sql, (len(text), text)).fetchall()
                elif "id = ?" in sql:
                    if not (text.isascii() and text.isdigit() and len(text) <= 18):
                        continue  # '²' is a digit to Python; 20 digits overflow SQLite
                    rows = self._conn.execute(sql, (int(text),)).fetchall()
                else:
                    rows = self._conn.execute(sql, (text,)).fetchall()
                if len(rows) == 1:
                    return int(rows[0]["id"])
                if len(rows) > 1:
                    names = ", ".join(r["name"] for r in rows[:5])
                    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
                    raise RunNotFoundError(
                        f"'{text}' matches {len(rows)} runs ({names}{more}): give more of "
                        f"the name")
        raise RunNotFoundError(f"no run '{text}' in the run store {self.path}: see "
                               f"'learndrop runs' for the names")

    def rename_run(self, ref: str | int, new_name: str) -> RunRecord:
        """Give a run a new (unique) name; its folder stays where it is."""
        new = new_name.strip()
        if not new or any(c in new for c in "/\\\n\r\t") or new.isdigit() or len(new) > 200:
            raise StoreError(f"'{new_name}' cannot be a run name: use letters, digits, dots, "
                             f"dashes or underscores, not only digits")
        run_id = self._resolve(ref)
        with self._write():
            taken = self._conn.execute("SELECT id FROM runs WHERE name = ? AND id != ?",
                                       (new, run_id)).fetchone()
            if taken:
                raise StoreError(f"a run named '{new}' already exists: choose another name")
            self._conn.execute("UPDATE runs SET name = ? WHERE id = ?", (new, run_id))
        return self.get_run(run_id)

    def set_note(self, ref: str | int, note: str) -> None:
        run_id = self._resolve(ref)
        with self._write():
            self._conn.execute("UPDATE runs SET note = ? WHERE id = ?", (note, run_id))

    def set_display_name(self, ref: str | int, display_name: str) -> None:
        run_id = self._resolve(ref)
        with self._write():
            self._conn.execute("UPDATE runs SET display_name = ? WHERE id = ?",
                               (display_name.strip(), run_id))

    def delete_run(self, ref: str | int, *, remove_files: bool = True) -> Path | None:
        """Delete a run's records and, when the run created its folder, the files the run
        wrote there (:data:`~learndrop.core.runfolder.RUN_FILES`) and then the folder if
        nothing else is left in it.

        Returns the folder that was removed, if any (see :meth:`delete_run_files` for what
        was kept). A run that is still running is refused.
        """
        return self.delete_run_files(ref, remove_files=remove_files)[0]

    def delete_run_files(self, ref: str | int, *, remove_files: bool = True
                         ) -> tuple[Path | None, str]:
        """Like :meth:`delete_run`; returns ``(folder removed or None, why files were
        kept)``, the reason empty when there was nothing to keep."""
        run = self.get_run(ref)
        if run.status == "running":
            raise StoreError(f"run '{run.name}' is still running (pid {run.pid}): stop it "
                             f"before deleting it")
        with self._write():
            owns = self._conn.execute("SELECT owns_dir FROM runs WHERE id = ?",
                                      (run.id,)).fetchone()[0]
            shared = self._conn.execute(
                "SELECT COUNT(*) FROM runs WHERE output_dir = ? AND id != ?",
                (run.output_dir, run.id)).fetchone()[0]
            self._conn.execute("DELETE FROM runs WHERE id = ?", (run.id,))
        folder = Path(run.output_dir) if run.output_dir else None
        if not remove_files or folder is None:
            return None, ""
        if not folder.is_absolute():
            # recorded by an older version relative to a working folder no one knows now
            return None, (f"its folder was recorded as the relative path {folder}, so it "
                          f"was not touched")
        if not owns or shared or not folder.is_dir():
            return None, ""
        if folder.resolve() in (Path.home().resolve(), Path(folder.anchor)):
            return None, ""
        left = remove_run_files(folder)
        if left:
            shown = ", ".join(left[:3]) + (" ..." if len(left) > 3 else "")
            return None, (f"its folder {folder} was kept: it holds files the run did not "
                          f"write ({shown})")
        return folder, ""

    def claim_run(self, ref: str | int) -> tuple[RunRecord, tuple[str, str]]:
        """Mark a stored run as continued by this process, in one transaction, so that two
        processes never continue the same run. Returns the run as it was before the claim and
        the ``(status, message)`` it had, for :meth:`release_run` when the continuation does
        not start after all.
        """
        run_id = self._resolve(ref)
        record = self.get_run(run_id)
        host = socket.gethostname()
        with self._write():
            row = self._conn.execute("SELECT name, status, message, pid, host FROM runs "
                                     "WHERE id = ?", (run_id,)).fetchone()
            if row["status"] == "running" and not (
                    row["host"] == host and row["pid"] is not None
                    and not pid_alive(int(row["pid"]))):
                raise StoreError(f"run '{row['name']}' is still running (pid {row['pid']} on "
                                 f"{row['host'] or 'an unknown host'}): stop it first, or "
                                 f"wait for it to end")
            self.keep_session_end(run_id)
            self._conn.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, "
                               "updated = ? WHERE id = ?",
                               (os.getpid(), host, time.time(), run_id))
        return record, (str(row["status"]), str(row["message"]))

    def release_run(self, ref: str | int, status: str, message: str) -> None:
        """Give back a run claimed by :meth:`claim_run` that was not continued."""
        run_id = self._resolve(ref)
        with self._write():
            cur = self._conn.execute("UPDATE runs SET status = ?, message = ? WHERE id = ? "
                                     "AND status = 'running' AND pid = ?",
                                     (status, message, run_id, os.getpid()))
            if cur.rowcount:
                self.forget_session_end(run_id)

    def mark_interrupted(self) -> list[str]:
        """Runs left ``running`` by a process of this host that is gone become
        ``interrupted``. Returns their names."""
        host = socket.gethostname()
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, pid FROM runs WHERE status = 'running' AND host = ?",
                (host,)).fetchall()
        dead = [r for r in rows if r["pid"] is not None and not pid_alive(int(r["pid"]))]
        if not dead:
            return []
        try:
            with self._write():
                for r in dead:
                    self._conn.execute(
                        "UPDATE runs SET status = 'interrupted', message = ?, end_seq = ? "
                        "WHERE id = ? AND status = 'running'",
                        (f"the process (pid {r['pid']}) ended without finishing the run",
                         self._max_seq(r["id"]) + 1, r["id"]))
        except sqlite3.OperationalError:
            return []  # a read-only store: show them as they are
        return [r["name"] for r in dead]

    # ---- groups ------------------------------------------------------------------------------
    def create_group(self, kind: str, run_names: Iterable[str | int], label: str = "") -> int:
        """Link runs (e.g. a benchmark's); returns the group's id."""
        ids = [self._resolve(n) for n in run_names]
        with self._write():
            cur = self._conn.execute("INSERT INTO groups(kind, created, label) VALUES (?,?,?)",
                                     (kind, time.time(), label))
            group_id = int(cur.lastrowid or 0)
            self._conn.executemany("UPDATE runs SET group_id = ? WHERE id = ?",
                                   [(group_id, i) for i in ids])
        return group_id

    def group_runs(self, group_id: int) -> list[RunRecord]:
        """A group's runs, oldest first."""
        return sorted(self.list_runs(group_id=group_id), key=lambda r: (r.created, r.id))

    def list_groups(self, kind: str | None = None) -> list[GroupRecord]:
        with self._read():
            rows = self._conn.execute(
                "SELECT g.*, (SELECT json_group_array(name) FROM "
                "(SELECT name FROM runs WHERE group_id = g.id ORDER BY created, id)) AS names "
                "FROM groups g" + (" WHERE kind = ?" if kind else "") + " ORDER BY g.id",
                (kind,) if kind else ()).fetchall()
        return [GroupRecord(id=r["id"], kind=r["kind"], label=r["label"],
                            created=r["created"], run_names=tuple(json.loads(r["names"])))
                for r in rows]

    # ---- events ------------------------------------------------------------------------------
    def load_events(self, ref: str | int, clock: bool = False) -> list[Any]:
        """Every event of a run in its original order: ``FitStart`` first, then
        ``EpochStart``, ``Progress``, ``ScoreCheck``, ``DropEvent``, ``EpochEnd``,
        ``CheckpointSaved``, ``UserAction`` and ``RunMessage``, and ``FitEnd`` once the run
        has ended. With ``clock``, a ``WallClock`` before each event whose time is stored."""
        return [event for _, event in self.iter_new_events(ref, -1, clock)]

    def iter_new_events(self, ref: str | int, since_cursor: int = -1, clock: bool = False
                        ) -> Iterator[tuple[int, Any]]:
        """``(cursor, event)`` for the events after ``since_cursor`` (-1: from the start).

        Pass the last cursor seen to get only what was written since; the events come
        from one consistent snapshot of the store. With ``clock``, a ``WallClock`` before
        each event whose time is stored.
        """
        run_id = self._resolve(ref)
        with self._read():
            run = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            events = list(read_events(self._conn, run, since_cursor, clock))
        return iter(events)


def _is_text(text: str) -> bool:
    """Encodable as UTF-8 (command-line bytes that are not UTF-8 arrive as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in text


def _record(row: sqlite3.Row) -> RunRecord:
    summary = RunSummary.from_dict(_loads(row["summary"]))
    wall: float | None = summary.wall_time_s
    if not wall:  # not recorded (a run that never ended): its last epoch, or the clock
        wall = row["last_elapsed_s"]
    if wall is None:
        wall = max(0.0, row["updated"] - row["created"])
    return RunRecord(
        id=row["id"], name=row["name"], display_name=row["display_name"],
        status=row["status"], message=row["message"], created=row["created"],
        updated=row["updated"], config=_loads(row["config"]),
        environment=_loads(row["environment"]), summary=summary, note=row["note"],
        output_dir=row["output_dir"], pid=row["pid"], host=row["host"],
        group_id=row["group_id"], model=row["model"], dataset=row["dataset"],
        device=row["device"], mode=row["mode"], drop_enabled=bool(row["drop_enabled"]),
        epochs_planned=row["epochs_planned"], epochs_done=_epochs_done(row),
        final_val_accuracy=row["last_val_accuracy"],
        final_val_accuracy_scaled=row["last_val_accuracy_scaled"],
        train_flops_saved_total=row["last_train_flops_saved_total"],
        time_saved_s_total=row["last_time_saved_s_total"], drops=row["drop_count"],
        wall_time_s=float(wall))


def _epochs_done(row: sqlite3.Row) -> int:
    """Complete epochs: a run stopped in its 14th epoch has done 13 (its last, partial epoch
    has an epoch row too). Runs stored without their steps per epoch count their rows."""
    if not row["steps_per_epoch"] or row["last_epoch_step"] is None:
        return int(row["epoch_rows"])
    return complete_epochs(row["last_epoch_step"], row["steps_per_epoch"])


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
