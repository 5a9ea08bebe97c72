"""Shared test set-up: offscreen Qt, a throw-away LEARNDROP_HOME, no training thread left; and
the fixtures many tests use (a store path, the command line run in this process)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # importing learndrop here would come before LEARNDROP_HOME is set
    from factories import RunCli

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_HOME = tempfile.mkdtemp(prefix="learndrop-tests-")
os.environ["LEARNDROP_HOME"] = _HOME  # nothing touches the user's real folders
atexit.register(shutil.rmtree, _HOME, True)


@pytest.fixture(autouse=True)
def _no_training_thread_left() -> object:
    """Fail a test that leaves a training QThread running (after cancelling it)."""
    yield
    worker = sys.modules.get("learndrop.app.services.worker")
    if worker is None:  # the test never touched the app
        return
    left = worker.cancel_running(timeout_ms=60_000)
    if left:
        pytest.fail(f"{left} training thread(s) were still running at the end of the test; "
                    f"wait for MainWindow.run_finished before returning", pytrace=False)


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    """The command line installs SIGINT/SIGTERM handlers; give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread, above all on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where a test's run store goes (created by the first writer)."""
    return tmp_path / "store.sqlite"


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run ``learndrop ARGV`` in this process: (exit code, stdout, stderr)."""
    from learndrop.core.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
