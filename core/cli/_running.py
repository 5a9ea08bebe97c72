"""What the commands that train share: the store's recorder, ranks, signals, the outcome.

Ranks 1.. of a data-parallel run neither report nor record; the process that starts one
(``train.nproc`` > 1) launches the ranks instead of training itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ..config import RunConfig
from ..errors import first_line
from ..plugins import load_plugin

__all__ = ["store_recorder", "reports", "launches", "recording_outcome", "tensorboard",
           "tensorboard_incomplete", "check_writable_folder", "install_signal_handlers"]


def store_recorder(args: argparse.Namespace) -> list[Any]:
    """The run store's recorder unless ``--no-store``. The store is opened once here, so a
    damaged or foreign store file is reported before any training starts."""
    if getattr(args, "no_store", False) or not reports():
        return []
    from ..store import RunStore, StoreRecorder

    with RunStore(getattr(args, "store", None)) as store:
        path = store.path
    return [StoreRecorder(path)]


def reports() -> bool:
    """Whether this process reports and records: any but ranks 1.. of a data-parallel run."""
    from ..training import distributed_environment

    return not distributed_environment() or os.environ.get("RANK", "0") == "0"


def launches(args: argparse.Namespace, cfg: RunConfig) -> bool:
    """Whether this command starts ``train.nproc`` processes instead of training itself."""
    from ..training import distributed_environment

    return cfg.train.nproc > 1 and not distributed_environment()


def recording_outcome(callbacks: Sequence[Any]) -> int:
    """0 when the run is in the store or kept in a journal that the next command adds to
    it (said on stderr); 1, naming what happened, when its record could not be kept."""
    from ..store import StoreRecorder

    code = 0
    for rec in callbacks:
        if not isinstance(rec, StoreRecorder):
            continue
        if rec.lost:
            print(f"learndrop: error: {rec.lost}", file=sys.stderr)
            code = 1
        elif rec.journal is not None:
            print(f"learndrop: warning: the run store could not record this run "
                  f"({first_line(Exception(rec.error or ''))[:200]}); its events are kept in "
                  f"{rec.journal} and the next learndrop command adds them to the store",
                  file=sys.stderr)
    return code


def tensorboard(log_dir: str) -> Any:
    """The TensorBoard callback, an integration that registers itself as an entry point;
    ``log_dir`` is checked first, so a folder that cannot be written is refused before any
    training starts. A write that fails later is reported once on stderr, and the run goes
    on (see :func:`tensorboard_incomplete`)."""
    factory = load_plugin("learndrop.callbacks", "tensorboard", what="TensorBoard logging",
                          install="pip install tensorboard (the learndrop[tensorboard] extra)")
    check_writable_folder(log_dir, "--tensorboard")
    return factory(log_dir, on_failure=lambda message: print(
        f"learndrop: warning: {message}", file=sys.stderr, flush=True))


def tensorboard_incomplete(callbacks: Sequence[Any]) -> list[str]:
    """Why each optional writer among ``callbacks`` (TensorBoard's) left its output
    incomplete."""
    return [str(cb.incomplete) for cb in callbacks if getattr(cb, "incomplete", None)]


def check_writable_folder(folder: str, flag: str) -> None:
    """Refuse (one line) a folder that cannot be made or written: a file, a device, a folder
    below a file, a read-only file system. Nothing is created: the nearest existing folder
    on the way is tried with a temporary file that vanishes at once."""
    import tempfile
    from pathlib import Path

    from ..errors import ConfigError

    given = Path(folder).expanduser()
    place = given
    try:
        while not place.exists() and place != place.parent:
            place = place.parent
        if not place.is_dir():
            what = "it" if place == given else f"{place} on its way"
            raise ConfigError(f"{flag} {given} cannot be a folder: {what} is a file or "
                              f"device; give a folder")
        with tempfile.TemporaryFile(dir=place):
            pass
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{flag} {given} cannot be written ({reason}): give a folder you "
                          f"can write to") from None


def install_signal_handlers(control: Any) -> None:
    """SIGINT/SIGTERM stop cleanly: finish the batch, checkpoint, keep the run. Only the
    process that reports says so (the launcher passes one Ctrl-C to every rank)."""
    speaks = reports()

    def handler(signum: int, frame: Any) -> None:
        if control.stop_requested:  # a second Ctrl-C ends at once
            raise KeyboardInterrupt
        if speaks:
            sys.stderr.write("\nstopping after this batch (again to quit at once)\n")
        control.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
