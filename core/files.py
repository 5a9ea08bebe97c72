"""Crash-safe file writing: write a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import LearnDropError

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes",
           "remove_stale_temps"]


class WriteError(LearnDropError):
    """A file could not be written (folder not writable, disk full, ...)."""

    exit_code = 1


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then rename it over ``path``.

    A crash or a full disk never leaves a half-written file under the real name, and an
    existing file is only replaced once the new one is complete.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {exc.strerror or exc} (choose a folder you "
                         f"can write to)") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        reason = "the disk is full" if getattr(exc, "errno", None) == 28 else (
            exc.strerror or str(exc))
        raise WriteError(f"cannot write {target}: {reason}; nothing was overwritten") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return target


def remove_stale_temps(folder: str | Path, names: tuple[str, ...]) -> int:
    """Delete temporary files that a killed process left beside ``names`` in ``folder``
    (the real files are never touched). Returns how many were removed."""
    removed = 0
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
