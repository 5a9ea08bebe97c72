"""The run store's writing side, used by the recorder: create, fill and end a run."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..events import FitStart
from ..runfolder import is_run_folder
from ..summary import RunSummary
from . import _schema as schema
from ._db import StoreError, Transaction
from ._events import INSERT_SQL, Row, to_json

__all__ = ["RunWriter", "STATUSES"]

STATUSES = ("running", "finished", "stopped", "cancelled", "failed", "interrupted")


class RunWriter:
    """Methods of :class:`~learndrop.core.store.RunStore` that record a run."""

    path: Path
    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _write(self) -> Transaction:
        return Transaction(self._conn, self._lock, self.path, "BEGIN IMMEDIATE")

    def _read(self) -> Transaction:
        return Transaction(self._conn, self._lock, self.path, "BEGIN")

    def begin_run(self, event: FitStart, environment: dict[str, Any],
                  resume_id: int | None = None) -> tuple[int, str, int]:
        """Create the run of ``event``, or reopen the stored run ``resume_id`` that it
        continues (only a run named by id is ever reopened, never one found by its name).

        Returns ``(run id, run name, next sequence number)``. A new run whose name is taken
        gets the first free ``name-2``, ``name-3``, ...
        """
        with self._write():
            return self._begin(event, environment, resume_id)

    def _begin(self, event: FitStart, environment: dict[str, Any],
               resume_id: int | None) -> tuple[int, str, int]:
        """:meth:`begin_run` inside the caller's write transaction."""
        cfg = event.config or {}
        now = time.time()
        values = dict(
            updated=now, status="running", message="", config=to_json(cfg),
            environment=to_json(environment), summary="{}",
            output_dir=os.path.abspath(event.output_dir) if event.output_dir else "",
            pid=os.getpid(), host=socket.gethostname(),
            model=str(cfg.get("model", {}).get("name", "")),
            dataset=str(cfg.get("data", {}).get("dataset", "")), device=event.device,
            mode=event.mode, drop_enabled=int(event.drop_enabled), epochs_planned=event.epochs,
            steps_per_epoch=event.steps_per_epoch, total_steps=event.total_steps,
            total_params=event.total_params, forward_flops=event.forward_flops,
            resumed_from_epoch=event.resumed_from_epoch, end_seq=None)
        existing = self._conn.execute("SELECT id, name FROM runs WHERE id = ?",
                                      (resume_id,)).fetchone() if resume_id else None
        if resume_id and existing is None:
            raise StoreError(f"run {resume_id} is no longer in the run store {self.path}")
        if existing is not None:
            run_id, name = int(existing["id"]), str(existing["name"])
            self.keep_session_end(run_id)
            self._conn.execute(
                "UPDATE runs SET " + ", ".join(f"{k} = ?" for k in values)
                + " WHERE id = ?", (*values.values(), run_id))
            self._forget_after(run_id, event.resumed_from_epoch)
        else:
            name = self._free_name(event.run_name)
            owns = bool(event.output_dir) and is_run_folder(Path(event.output_dir))
            cols = dict(values, name=name, created=now, owns_dir=int(owns))
            cur = self._conn.execute(
                f"INSERT INTO runs({', '.join(cols)}) VALUES "
                f"({', '.join('?' * len(cols))})", tuple(cols.values()))
            run_id = int(cur.lastrowid or 0)
        self._conn.execute("DELETE FROM units WHERE run_id = ?", (run_id,))
        self._conn.executemany(
            "INSERT INTO units(run_id, idx, name, modules, params, flops, flops_share, "
            "is_head, skippable) VALUES (?,?,?,?,?,?,?,?,?)",
            [(run_id, u.index, u.name, to_json(list(u.modules)), u.params, u.forward_flops,
              u.flops_share, int(u.is_head), int(u.skippable)) for u in event.units])
        next_seq = self._max_seq(run_id) + 1
        return run_id, name, next_seq

    def write_rows(self, run_id: int, rows: list[Row]) -> None:
        """Insert a batch of event rows and touch the run's heartbeat, in one transaction."""
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for table, values in rows:
            by_table.setdefault(table, []).append(values)
        with self._write():
            self._insert_rows(run_id, by_table)

    def _insert_rows(self, run_id: int, by_table: dict[str, list[tuple[Any, ...]]],
                     replace: str = "") -> None:
        for table, values_list in by_table.items():
            sql = INSERT_SQL[table]
            if replace:  # e.g. "OR IGNORE": rows a journal replays may be stored already
                sql = sql.replace("INSERT INTO", f"INSERT {replace} INTO", 1)
            self._conn.executemany(sql, values_list)
        self._conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (time.time(), run_id))

    def end_run(self, run_id: int, status: str, message: str, summary: RunSummary,
                end_seq: int) -> None:
        """Record how a run ended."""
        with self._write():
            self._end(run_id, status, message, to_json(summary.to_dict()), end_seq)

    def _end(self, run_id: int, status: str, message: str, summary_json: str,
             end_seq: int) -> None:
        if status not in STATUSES:
            status = "failed"
        self._conn.execute(
            "UPDATE runs SET status = ?, message = ?, summary = ?, updated = ?, "
            "end_seq = ? WHERE id = ?",
            (status, message, summary_json, time.time(), end_seq, run_id))

    def count_checks(self, run_id: int) -> int:
        """How many score checks a run has stored."""
        with self._read():
            row = self._conn.execute("SELECT MAX(check_idx) FROM score_checks WHERE run_id = ?",
                                     (run_id,)).fetchone()
        return int(row[0]) + 1 if row[0] is not None else 0

    def _free_name(self, name: str) -> str:
        taken = {r[0] for r in self._conn.execute(
            "SELECT name FROM runs WHERE name = ? OR name LIKE ? ESCAPE '\\'",
            (name, name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"))}
        if name not in taken:
            return name
        n = 2
        while f"{name}-{n}" in taken:
            n += 1
        return f"{name}-{n}"

    def _forget_after(self, run_id: int, epoch: int) -> None:
        """On resume after ``epoch`` completed epochs, drop what was recorded from the first
        epoch that is trained again on (epochs are indexed from 0, as the engine does)."""
        kept = self._conn.execute("SELECT MAX(step) FROM epochs WHERE run_id = ? AND epoch < ?",
                                  (run_id, epoch)).fetchone()[0]
        kept = -1 if kept is None else kept
        cut = self._conn.execute(
            "SELECT MIN(seq) FROM ("
            " SELECT seq FROM events WHERE run_id = :r AND kind = 'epoch_start'"
            "  AND json_extract(data, '$.epoch') >= :e"
            " UNION ALL SELECT seq FROM epochs WHERE run_id = :r AND epoch >= :e"
            " UNION ALL SELECT seq FROM progress WHERE run_id = :r AND step > :s"
            " UNION ALL SELECT seq FROM score_checks WHERE run_id = :r AND step > :s"
            " UNION ALL SELECT seq FROM drops WHERE run_id = :r AND step > :s)",
            {"r": run_id, "e": epoch, "s": kept}).fetchone()[0]
        if cut is None:
            return
        for table in (*schema.EVENT_TABLES, "savings"):
            # the log lines, checkpoints and the user's actions happened, and stay: only what
            # is trained again goes (an epoch's start included, which comes again)
            only = " AND kind = 'epoch_start'" if table == "events" else ""
            self._conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND seq >= ?{only}",
                               (run_id, cut))

    def keep_session_end(self, run_id: int) -> None:
        """Before a stored run is continued: keep how its last session ended (``run
        stopped: ...``) as a line of its log, at the sequence number of that end, since the
        run's own status is about to be the new session's (inside the caller's write
        transaction)."""
        row = self._conn.execute("SELECT status, message, end_seq, updated FROM runs "
                                 "WHERE id = ?", (run_id,)).fetchone()
        if row is None or row["status"] == "running" or row["end_seq"] is None:
            return
        if self._conn.execute("SELECT 1 FROM events WHERE run_id = ? AND seq = ?",
                              (run_id, row["end_seq"])).fetchone() is not None:
            return
        text = f"run {row['status']}" + (f": {row['message']}" if row["message"] else "")
        self._conn.execute("INSERT INTO events(run_id, seq, time, kind, message, data) "
                           "VALUES (?, ?, ?, 'info', ?, '{}')",
                           (run_id, row["end_seq"], row["updated"], text))

    def forget_session_end(self, run_id: int) -> None:
        """Undo :meth:`keep_session_end` for a run given back without being continued."""
        row = self._conn.execute("SELECT end_seq FROM runs WHERE id = ?",
                                 (run_id,)).fetchone()
        if row is not None and row["end_seq"] is not None:
            self._conn.execute("DELETE FROM events WHERE run_id = ? AND seq = ? AND "
                               "kind = 'info'", (run_id, row["end_seq"]))

    def _max_seq(self, run_id: int) -> int:
        parts = " UNION ALL ".join(f"SELECT MAX(seq) AS m FROM {t} WHERE run_id = :r"
                                   for t in schema.EVENT_TABLES)
        row = self._conn.execute(f"SELECT MAX(m) FROM ({parts})", {"r": run_id}).fetchone()
        return int(row[0]) if row[0] is not None else 0
