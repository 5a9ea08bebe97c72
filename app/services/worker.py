"""Training off the GUI thread: a worker ``QObject`` moved to a named ``QThread``.

The wiring is the standard one, ``thread.started -> worker.run`` and ``worker.finished ->
thread.quit``, but with one departure: the worker is not released with ``deleteLater``. That
would destroy it in the training thread as the thread ends, and the destructor of a Python
``QObject`` takes one of Qt's shared signal-slot locks and then waits for the GIL; a GUI
thread that holds the GIL and wants the same lock (any connect or disconnect, a plot label's
``setHtml`` say) then waits for ever. So the worker is destroyed in the GUI thread once the
training thread has ended, and the thread object with ``deleteLater`` (it lives in the GUI
thread). Stopping is cooperative (:class:`~learndrop.core.training.RunControl` flags checked
at batch boundaries); a thread is never terminated.

Every run is recorded in the run store (a :class:`~learndrop.core.store.StoreRecorder` goes
first among the callbacks, so the run is in the store before the window hears of it). A store
that cannot be written never stops training: the recorder keeps the reason in its ``error``.

A run of several processes (``train.nproc`` > 1) trains in ``learndrop train`` processes;
rank 0 records it, and the worker follows it through the run store (stop and cancel stop
it, keeping it; pause and unit requests cannot reach it).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from learndrop.core.config import RunConfig
from learndrop.core.errors import LearnDropError
from learndrop.core.events import Callback
from learndrop.core.store import StoreRecorder
from learndrop.core.training import FitResult, RunControl

__all__ = ["THREAD_NAME", "TrainingWorker", "TrainingJob", "running_threads",
           "cancel_running"]

log = logging.getLogger(__name__)

THREAD_NAME = "learndrop-training"

_threads: weakref.WeakKeyDictionary[QThread, RunControl] = weakref.WeakKeyDictionary()


def running_threads() -> list[QThread]:
    """Training threads started by this module that are still running."""
    out = []
    for thread in list(_threads):
        try:
            if shiboken6.isValid(thread) and thread.isRunning():
                out.append(thread)
        except RuntimeError:  # deleted on the C++ side meanwhile
            continue
    return out


def cancel_running(timeout_ms: int = 60_000) -> int:
    """Cancel every running training thread and wait for each; returns how many there were."""
    left = running_threads()
    for thread in left:
        control = _threads.get(thread)
        if control is not None:
            control.cancel()
    for thread in left:
        if shiboken6.isValid(thread):
            thread.wait(timeout_ms)
    return len(left)


class TrainingWorker(QObject):
    """Runs one ``Trainer.fit()`` in whatever thread it was moved to.

    ``failed(message)`` carries a one-line reason; ``finished(result)`` always comes last and
    carries the engine's ``FitResult`` (``None`` when the run could not produce one).
    ``store`` is the run store to record into (``None``: the default one); ``record=False``
    records nothing. ``resume_from`` continues a run from its checkpoint, in the checkpoint's
    folder, recorded into the stored run ``resume_id`` (claimed by the caller).
    """

    failed = Signal(str)
    finished = Signal(object)

    def __init__(self, config: RunConfig, callbacks: Sequence[Callback],
                 control: RunControl, *, store: str | Path | None = None,
                 record: bool = True, resume_from: Path | None = None,
                 resume_id: int | None = None) -> None:
        super().__init__()
        self._config = config
        self._resume_from = resume_from
        self.recorder: StoreRecorder | None = (
            StoreRecorder(store, resume_id=resume_id) if record else None)
        self._callbacks = ([self.recorder] if self.recorder else []) + list(callbacks)
        self._control = control

    @Slot()
    def run(self) -> None:
        threading.current_thread().name = THREAD_NAME
        result: FitResult | None = None
        try:
            if self._config.train.nproc > 1 and self._resume_from is not None:
                raise LearnDropError("a run of several processes is resumed from the command "
                                     "line for now: learndrop resume RUN")
            if self._config.train.nproc > 1:
                result = self._run_processes()
            else:
                from learndrop.core.training import Trainer

                resume = self._resume_from
                trainer = Trainer(self._config, callbacks=self._callbacks,
                                  control=self._control, resume_from=resume,
                                  run_folder=resume.parent if resume is not None else None)
                result = trainer.fit()
        except LearnDropError as exc:
            self.failed.emit(exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the app down
            log.exception("training failed with an unexpected error")
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.failed.emit(f"internal error: {text} (details in the log)")
        finally:
            self.finished.emit(result)


    def _run_processes(self) -> FitResult:
        """A data-parallel run (``train.nproc`` processes): rank 0 records it in the store,
        and its events come from there to the callbacks, as for a run trained here."""
        from learndrop.core.cli import run_processes

        store = self.recorder.store_path if self.recorder is not None else None
        targets = [c for c in self._callbacks if c is not self.recorder]
        result: FitResult = run_processes(self._config, targets, self._control, store=store)
        return result


class TrainingJob(QObject):
    """One run: its worker, its named thread, and the outcome once the thread has ended.

    Create it in the GUI thread, connect to :attr:`ended`, then call :meth:`start`.
    ``ended`` is emitted in the GUI thread after the training thread has fully finished.
    ``recorder`` (``None`` with ``record=False``) names the stored run once it has started.
    """

    ended = Signal()

    def __init__(self, config: RunConfig, callbacks: Sequence[Callback],
                 control: RunControl, parent: QObject | None = None, *,
                 store: str | Path | None = None, record: bool = True,
                 resume_from: Path | None = None, resume_id: int | None = None) -> None:
        super().__init__(parent)
        self.control = control
        self.error: str | None = None
        self.result: FitResult | None = None
        self._running = False
        self._thread: QThread | None = QThread()
        self._thread.setObjectName(THREAD_NAME)
        self._worker: TrainingWorker | None = TrainingWorker(
            config, callbacks, control, store=store, record=record, resume_from=resume_from,
            resume_id=resume_id)
        self.recorder = self._worker.recorder
        self._worker.moveToThread(self._thread)

        self._thread.started.connect(self._worker.run)
        self._worker.failed.connect(self._on_failed)
        self._worker.finished.connect(self._on_result)
        # quit() is thread-safe; calling it directly lets the thread end even while the GUI
        # thread is busy (waiting for it, say)
        self._worker.finished.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)  # before deleteLater
        self._thread.finished.connect(self._thread.deleteLater)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def worker(self) -> TrainingWorker | None:
        """The worker; ``None`` once the thread has ended and the worker is destroyed."""
        return self._worker

    def start(self) -> None:
        assert self._thread is not None, "a job runs once"
        _threads[self._thread] = self.control
        self._running = True
        self._thread.start()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.error = message

    @Slot(object)
    def _on_result(self, result: FitResult | None) -> None:
        self.result = result

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is not None:
            self._thread.wait()  # returns at once: the thread is leaving its run()
        worker, self._worker = self._worker, None
        if worker is not None and shiboken6.isValid(worker):
            shiboken6.delete(worker)  # here, not in the training thread: see above
        self._thread = None  # deleteLater releases the thread object
        self._running = False
        self.ended.emit()
