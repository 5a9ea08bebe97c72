"""Opening the run store's SQLite file safely, its transactions, and its errors."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path
from types import TracebackType

from ..errors import LearnDropError
from . import _schema as schema

__all__ = ["StoreError", "RunNotFoundError", "Transaction", "inspect_store", "connect",
           "pid_alive", "as_store_error"]


#: how long a write waits for another process's lock on the store before it gives up
BUSY_TIMEOUT_S = 30.0


class StoreError(LearnDropError):
    """The run store cannot be used, or a run in it cannot be found or changed."""


class StoreUnavailableError(StoreError):
    """The store is fine but cannot be written now (busy, read-only, disk full): exit 1."""

    exit_code = 1


class RunNotFoundError(StoreError):
    """No run, or more than one run, matches the name given."""



class Transaction:
    """``with`` block holding the store's lock and one SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock, path: Path,
                 begin: str) -> None:
        self._conn, self._lock, self._path, self._begin = conn, lock, path, begin

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._conn.execute(self._begin)
        except sqlite3.DatabaseError as exc:
            self._lock.release()
            raise as_store_error(self._path, exc) from None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        conn = self._conn
        try:
            if exc_type is None:
                conn.execute("COMMIT")
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise as_store_error(self._path, err) from None
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.DatabaseError) and is_storage_problem(exc):
            raise as_store_error(self._path, exc) from None


def not_ours(path: Path) -> StoreError:
    return StoreError(f"{path} is not a Learn&Drop run store (or is damaged): point "
                      f"--store/LEARNDROP_HOME elsewhere")


def as_store_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreUnavailableError(f"the run store {path} is busy (another program holds "
                                     f"it locked): try again")
    if "readonly" in text or "read-only" in text:
        return StoreUnavailableError(f"the run store {path} is read-only: point "
                                     f"--store/LEARNDROP_HOME to a folder you can write to")
    if "disk is full" in text or "disk I/O" in text:
        return StoreUnavailableError(f"cannot write the run store {path}: {text} (is its "
                                     f"disk full?)")
    if "unable to open" in text:
        return StoreError(f"cannot open the run store {path}: check that its folder exists "
                          f"and is writable, or point --store/LEARNDROP_HOME elsewhere")
    return not_ours(path)


def is_storage_problem(exc: sqlite3.DatabaseError) -> bool:
    """Errors of the file or the disk (not of a query)."""
    text = str(exc)
    return any(w in text for w in ("locked", "busy", "readonly", "read-only", "disk",
                                   "malformed", "not a database", "unable to open"))


def inspect_store(path: Path) -> int | None:
    """The schema version of the store at ``path``, through a read-only connection;
    ``None`` for a store that does not exist yet or is empty."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a Learn&Drop run store file: point "
                         f"--store/LEARNDROP_HOME elsewhere")
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.DatabaseError as exc:
        raise as_store_error(path, exc) from None
    try:
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if not tables and version == 0:
            return None
        app = (conn.execute("SELECT value FROM meta WHERE key = 'app_id'").fetchone()
               if "meta" in tables else None)
        if app is None or app[0] != schema.APP_ID or version < 1:
            raise not_ours(path)
        if version > schema.SCHEMA_VERSION:
            raise StoreError(f"the run store {path} was written by a newer Learn&Drop (schema "
                             f"{version}, this one reads up to {schema.SCHEMA_VERSION}): "
                             f"upgrade Learn&Drop or point --store/LEARNDROP_HOME elsewhere")
        check = conn.execute("PRAGMA quick_check(1)").fetchone()
        if check is None or check[0] != "ok":
            raise damaged(path, str(check[0]) if check else "no answer")
        return version
    except sqlite3.DatabaseError as exc:
        raise as_store_error(path, exc) from None
    finally:
        conn.close()


def damaged(path: Path, detail: str) -> StoreError:
    detail = " ".join(detail.replace("*** in database main ***", "").split())
    return StoreError(f"the run store {path} is damaged ({detail[:80]}); nothing was written "
                      f"to it: move it aside to start a new store, or point "
                      f"--store/LEARNDROP_HOME elsewhere")


def connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of the run store {path}: "
                         f"{exc.strerror or exc}; point --store/LEARNDROP_HOME elsewhere"
                         ) from None
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise as_store_error(path, exc) from None
    return conn


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill would terminate the process there
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
