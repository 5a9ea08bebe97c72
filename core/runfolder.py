"""A run's own folder: claimed atomically, marked, locked while a run writes in it, and
emptied of only what a run wrote when the run is deleted.

A run folder is always created fresh (``mkdir`` without ``exist_ok``), so two runs started
together with the same name get two folders, and a folder a user made is never adopted. The
folder carries :data:`MARKER`; a training holds an OS lock on it while it writes in the folder
(released by the OS when the process dies), so two trainings never write into one folder.
Deleting a run removes the files named in :data:`RUN_FILES` and nothing else: a folder that
also holds files Learn&Drop did not write is kept with them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from .errors import LearnDropError

__all__ = ["MARKER", "JOURNAL_PREFIX", "JOURNAL_SUFFIX", "RUN_FILES", "FolderInUseError",
           "claim_run_folder", "FolderLock", "remove_run_files", "is_run_folder"]

#: the file that marks a folder as a run's own and is locked while a run writes in it
MARKER = ".learndrop-run"
#: the run's events kept beside it when the run store could not record them:
#: ``store-journal-TOKEN.jsonl``
JOURNAL_PREFIX, JOURNAL_SUFFIX = "store-journal-", ".jsonl"
#: every file a run writes into its folder (and nothing else is ever deleted with it), with
#: its journals
RUN_FILES = (MARKER, "config.toml", "checkpoint.pt", "final.pt", "stopped.pt", "summary.json")
_MAX_TRIES = 10_000


class FolderInUseError(LearnDropError):
    """Another training writes in this run folder now."""

    exit_code = 1


def claim_run_folder(base: Path, name: str) -> Path:
    """Create a new, empty folder ``base/name`` (``name-2``, ``name-3``, ... when taken) and
    mark it as a run's. Atomic: of two processes claiming the same name, one gets the next.

    Raises ``OSError`` when ``base`` cannot be created or written.
    """
    base.mkdir(parents=True, exist_ok=True)
    for k in range(1, _MAX_TRIES):
        folder = base / (name if k == 1 else f"{name}-{k}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        _write_marker(folder)
        return folder
    raise FileExistsError(f"{base / name} and {_MAX_TRIES} numbered folders beside it exist")


def _write_marker(folder: Path) -> None:
    info = {"app": "learndrop", "pid": os.getpid(), "created": time.time()}
    fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` carries the marker of a run folder."""
    marker = folder / MARKER
    return marker.is_file() and not marker.is_symlink()


class FolderLock:
    """An exclusive lock on a run folder's marker, held while a training writes there.

    The OS releases it when the process ends, however it ends, so a killed run never leaves
    its folder locked. A folder from before markers existed gets one when it is locked.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fh: IO[str] | None = None

    def acquire(self) -> FolderLock:
        path = self.folder / MARKER
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise FolderInUseError(f"{path} is not a Learn&Drop run marker: the folder "
                                   f"{self.folder} is not a run folder")
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            _lock(fh)
        except OSError:
            fh.close()
            raise FolderInUseError(f"the run folder {self.folder} is in use by another "
                                   f"training: wait for it to end, or train into a new "
                                   f"folder") from None
        self._fh = fh
        return self

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                _unlock(fh)
            except OSError:
                pass
            fh.close()

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _unlock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
else:
    import fcntl

    def _lock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_run_files(folder: Path) -> list[str]:
    """Delete what a run wrote in ``folder`` (:data:`RUN_FILES` and their half-written
    temporary files), then the folder itself if nothing else is left in it.

    Returns the names of the entries that were kept because a run did not write them (empty
    when the folder is gone). Links and sub-folders are never followed.
    """
    for name in RUN_FILES:
        _unlink_file(folder / name)
        for tmp in folder.glob(f".{name}.*.tmp"):
            _unlink_file(tmp)
    for journal in folder.glob(f"{JOURNAL_PREFIX}*{JOURNAL_SUFFIX}"):
        _unlink_file(journal)
    try:
        folder.rmdir()
    except OSError:
        try:
            return sorted(p.name for p in folder.iterdir())
        except OSError:
            return []
    return []


def _unlink_file(path: Path) -> None:
    """Remove ``path`` if it is a plain file (a link or a folder of that name is kept)."""
    try:
        if path.is_file() and not path.is_symlink():
            path.unlink()
    except OSError:
        pass
