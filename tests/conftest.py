"""Shared test set-up: offscreen Qt, a throw-away LEARNDROP_HOME, no training thread left."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator

import pytest

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
