"""A run's events kept beside the run when the run store cannot record them, and their replay
into the store once it can be written again.

When a write to the store fails (a lock held past the busy timeout, a full disk, a read-only
or damaged file), the recorder goes on writing the run's rows as JSON lines to
``store-journal-TOKEN.jsonl`` in the run's folder, and leaves a pointer to that file in the
folder ``STORE.journals`` beside the store. Every later opening of the store that may write
(``learndrop runs``, the next training, the app) replays the journals of runs whose process
has ended, in one transaction each, then deletes them. A replay is idempotent: rows already
stored are skipped, and a run the journal created is remembered in the store's ``meta`` table.

Lines: a header ``{"journal": 1, "token", "store", "pid", "host", "run_id", "resume_id",
"seq", "checks"}``, ``{"begin": FitStart, "environment": {...}}`` when the run was never
created in the store, ``{"rows": [[table, [values]], ...]}``, and ``{"end": {...}}``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from ..events import FitStart, UnitInfo
from ..runfolder import JOURNAL_PREFIX, JOURNAL_SUFFIX
from ..summary import RunSummary
from ._db import pid_alive
from ._events import Row, to_json
from ._writer import RunWriter

__all__ = ["JournalWriter", "JournalReplay", "journal_dir"]

log = logging.getLogger(__name__)
VERSION = 1


def journal_dir(store_path: Path) -> Path:
    """The folder of pointers to pending journals, beside the store file."""
    return store_path.with_name(store_path.name + ".journals")


def _fit_start_dict(event: FitStart) -> dict[str, Any]:
    return asdict(event)


def _fit_start(data: dict[str, Any]) -> FitStart:
    units = tuple(UnitInfo(**dict(u, modules=tuple(u.get("modules", ()))))
                  for u in data.get("units", ()))
    return FitStart(**dict(data, units=units))


class JournalWriter:
    """Appends a run's rows to a journal in its folder (see the module's notes)."""

    def __init__(self, store_path: Path, folder: Path, *, run_id: int | None,
                 resume_id: int | None, seq: int, checks: int) -> None:
        self.token = uuid.uuid4().hex
        self.path = folder / f"{JOURNAL_PREFIX}{self.token}{JOURNAL_SUFFIX}"
        self.pointer = journal_dir(store_path) / f"{self.token}.json"
        self.pointer_error: str | None = None
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._fh: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8")
        self.write({"journal": VERSION, "token": self.token,
                    "store": str(store_path.absolute()), "pid": os.getpid(),
                    "host": socket.gethostname(), "created": time.time(), "run_id": run_id,
                    "resume_id": resume_id, "seq": seq, "checks": checks})
        self.sync()
        try:
            self.pointer.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.pointer.with_suffix(".tmp")
            tmp.write_text(json.dumps({"journal": str(self.path.absolute())}))
            os.replace(tmp, self.pointer)
        except OSError as exc:  # the run's own records still find it (see replay)
            self.pointer_error = exc.strerror or str(exc)

    def begin(self, event: FitStart, environment: dict[str, Any]) -> None:
        self.write({"begin": _fit_start_dict(event), "environment": environment})

    def rows(self, rows: list[Row]) -> None:
        self.write({"rows": [[table, list(values)] for table, values in rows]})
        self.sync()

    def end(self, status: str, message: str, summary: RunSummary, end_seq: int) -> None:
        self.write({"end": {"status": status, "message": message,
                            "summary": summary.to_dict(), "end_seq": end_seq}})
        self.sync()

    def write(self, obj: dict[str, Any]) -> None:
        assert self._fh is not None
        self._fh.write(to_json(obj) + "\n")

    def sync(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass


def _read(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a journal (a last line cut short by a crash is left out)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                item = json.loads(line)
            except ValueError:
                break
            if isinstance(item, dict):
                out.append(item)
    return out


class JournalReplay(RunWriter):
    """The store's side: find pending journals and replay them."""

    def pending_journals(self) -> list[Path]:
        """Journals for this store: those with a pointer beside the store, and those in the
        folders of runs still marked running (whose pointer could not be written)."""
        found: dict[str, Path] = {}
        pointers = journal_dir(self.path)
        if pointers.is_dir():
            for pointer in sorted(pointers.glob("*.json")):
                try:
                    target = Path(json.loads(pointer.read_text(encoding="utf-8"))["journal"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if target.is_file():
                    found[str(target)] = target
                else:  # replayed, or its run folder was deleted: nothing left to add
                    _unlink(pointer)
        with self._read():
            dirs = [r[0] for r in self._conn.execute(
                "SELECT output_dir FROM runs WHERE status IN ('running', 'interrupted') "
                "AND output_dir != ''")]
        for folder in dirs:
            for path in Path(folder).glob(f"{JOURNAL_PREFIX}*{JOURNAL_SUFFIX}"):
                found.setdefault(str(path), path)
        return list(found.values())

    def replay_journals(self) -> list[str]:
        """Add every finished journal of this store to it; returns the runs' names.

        A journal whose process still runs is left for later; one that cannot be replayed
        now (the store is still not writable) is kept."""
        names = []
        for path in self.pending_journals():
            try:
                name = self._replay_one(path)
            except Exception as exc:  # noqa: BLE001 - kept for the next try, never lost
                log.debug("journal %s not replayed: %s", path, exc)
                continue
            if name is not None:
                names.append(name)
        return names

    def _replay_one(self, path: Path) -> str | None:
        lines = _read(path)
        if not lines or lines[0].get("journal") != VERSION:
            return None
        head = lines[0]
        if Path(str(head.get("store", ""))) != self.path.absolute():
            return None  # another store's journal
        ended = any("end" in line for line in lines)
        if not ended and (head.get("host") != socket.gethostname()
                          or pid_alive(int(head.get("pid") or 0))):
            return None  # still being written
        key = f"journal:{head['token']}"
        with self._write():
            done = self._conn.execute("SELECT value FROM meta WHERE key = ?",
                                      (key,)).fetchone()
            run_id = int(done[0]) if done else head.get("run_id")
            if run_id is not None and self._conn.execute(
                    "SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                run_id = None  # the run was deleted meanwhile
            seq_shift = check_shift = 0
            begin = next((line for line in lines if "begin" in line), None)
            if run_id is None and begin is None:
                return None
            if run_id is None:
                assert begin is not None
                start = _fit_start(begin["begin"])
                run_id, _, next_seq = self._begin(start, begin.get("environment") or {},
                                                  head.get("resume_id"))
                seq_shift = next_seq - int(head.get("seq") or 1)
                row = self._conn.execute("SELECT MAX(check_idx) FROM score_checks WHERE "
                                         "run_id = ?", (run_id,)).fetchone()
                stored_checks = int(row[0]) + 1 if row[0] is not None else 0
                check_shift = stored_checks - int(head.get("checks") or 0)
            run_id = int(run_id)
            by_table: dict[str, list[tuple[Any, ...]]] = {}
            for line in lines:
                for table, values in line.get("rows", ()):
                    by_table.setdefault(table, []).append(
                        _moved(table, values, run_id, seq_shift, check_shift))
            self._insert_rows(run_id, by_table, replace="OR IGNORE")
            end = next((line["end"] for line in lines if "end" in line), None)
            if end is not None:
                self._end(run_id, str(end.get("status", "failed")),
                          str(end.get("message", "")), to_json(end.get("summary") or {}),
                          int(end.get("end_seq") or 0) + seq_shift)
            else:
                self._conn.execute(
                    "UPDATE runs SET status = 'interrupted', message = ?, end_seq = ? "
                    "WHERE id = ?", ("the process ended without finishing the run; its "
                                     "events were added from its journal",
                                     self._max_seq(run_id) + 1, run_id))
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                               (key, str(run_id)))
            name = self._conn.execute("SELECT name FROM runs WHERE id = ?",
                                      (run_id,)).fetchone()[0]
        _unlink(path)
        _unlink(journal_dir(self.path) / f"{head['token']}.json")
        return str(name)


def _moved(table: str, values: list[Any], run_id: int, seq_shift: int,
           check_shift: int) -> tuple[Any, ...]:
    """A journaled row under its run's id in the store, with its sequence number (and check
    index) moved after what the store held when the run was created there."""
    out = list(values)
    out[0] = run_id
    if table == "score_checks":  # (run_id, check_idx, unit_idx, seq, ...)
        out[1] += check_shift
        out[3] += seq_shift
    else:  # (run_id, seq, ...)
        out[1] += seq_shift
    return tuple(out)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
