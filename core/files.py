"""Crash-safe file writing: write a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import LearnDropError

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes",
           "remove_stale_temps", "writable_target", "WriteError"]


class WriteError(LearnDropError):
    """A file could not be written (folder not writable, disk full, ...)."""

    exit_code = 1


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fileobj)`` on a temporary file, then rename it over ``path``.

    A crash or a full disk never leaves a half-written file under the real name, and an
    existing file is only replaced once the new one is complete. A link is written through
    (the file it points to is replaced, the link stays); a path that is a device, a FIFO, a
    socket or a folder is refused, never replaced by a file.
    """
    target = writable_target(path)
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


def writable_target(path: str | Path) -> Path:
    """The regular file that writing ``path`` replaces: ``path`` itself, or the file a link
    at ``path`` points to. Raises :class:`WriteError` for anything that is not a regular
    file (a device such as the null device, a FIFO, a socket, a folder)."""
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    try:
        st = target.stat()
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise WriteError(f"cannot write {given}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise WriteError(f"cannot write {given}: it is a folder; give a file name")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket"
                if stat.S_ISSOCK(st.st_mode) else "a device")
        raise WriteError(f"cannot write {given}: it is {kind}, not a regular file, and is "
                         f"never replaced; give a file path (or - for standard output where "
                         f"a command offers it)")
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
