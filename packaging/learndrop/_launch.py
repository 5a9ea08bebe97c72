"""The ``learndrop`` command's entry point: standard streams made safe and the engine imported
under a guard, so that Ctrl-C while PyTorch loads, or a closed stderr, ends without a
traceback."""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["main", "ensure_std_streams"]


def ensure_std_streams() -> None:
    """Give standard input, output and error the null device when they were closed
    (``2>&-``): otherwise the next file opened would take their number, and whatever a library
    prints to them would land in it; and ``sys.stderr`` would be ``None``."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # pragma: no cover - the lowest free number is the closed one
                os.dup2(opened, fd)
                os.close(opened)
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115


def _quit_while_loading(signum: int, frame: object) -> None:
    """Ctrl-C while PyTorch and the engine load: nothing has started, so end at once. Raising
    KeyboardInterrupt there would leave half-imported modules behind (numpy then fails with a
    RecursionError rather than the interrupt), so the process exits from the handler."""
    try:
        sys.stderr.write("learndrop: interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


def main() -> int:
    ensure_std_streams()
    previous = signal.signal(signal.SIGINT, _quit_while_loading)
    try:
        from learndrop.core.cli import main as cli_main
    finally:
        signal.signal(signal.SIGINT, previous)
    return cli_main()
