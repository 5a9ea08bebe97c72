"""The training job's thread life cycle: a real tiny run trained in its named thread, the
outcome told in the GUI thread, and the worker destroyed there too, never in the training
thread as that thread ends (where its destructor would hold a Qt lock while it waits for the
GIL, and a GUI thread that holds the GIL and wants the lock would wait for ever)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, Qt, QThread

from factories import tiny_config
from learndrop.app.services import TrainingJob, running_threads
from learndrop.core.training import RunControl


def test_a_job_trains_then_destroys_its_worker_in_the_gui_thread(qtbot: Any,
                                                                 tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"train.epochs": 1, "train.device": "cpu"})
    job = TrainingJob(cfg, [], RunControl(), record=False)
    worker = job.worker
    assert worker is not None
    destroyed_in: list[bool] = []
    gui = QCoreApplication.instance()
    assert gui is not None
    worker.destroyed.connect(
        lambda *_: destroyed_in.append(QThread.currentThread() is gui.thread()),
        Qt.ConnectionType.DirectConnection)

    with qtbot.waitSignal(job.ended, timeout=60_000):
        job.start()
    assert job.error is None and job.result is not None
    assert job.result.status == "finished"
    assert destroyed_in == [True], "the worker must be destroyed in the GUI thread"
    assert job.worker is None and not shiboken6.isValid(worker)
    assert not job.running and not running_threads()
