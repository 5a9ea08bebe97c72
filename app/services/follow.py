"""Following a run that another process (or thread) is writing into the run store.

:class:`RunFollower` polls the store with a timer in the GUI thread. Each poll asks only for
what was written since the previous one (``RunStore.iter_new_events`` with the last cursor),
which takes a few milliseconds, and hands the events to an engine
:class:`~learndrop.core.events.Callback` (the live panel, a
:class:`~learndrop.core.monitor.RunHistory`, ...) through :func:`~learndrop.core.store.replay`,
so the target sees the run as if it were training here. The follower stops by itself when
the run's ``FitEnd`` arrives (finished, stopped, cancelled, failed, or interrupted when its
process died) or when the run leaves the store.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from learndrop.core.errors import LearnDropError
from learndrop.core.events import Callback, FitEnd, FitStart
from learndrop.core.store import RunNotFoundError, RunStore, StoreError, replay

__all__ = ["RunFollower", "POLL_INTERVAL_MS"]

#: how often the store is asked for new events
POLL_INTERVAL_MS = 500
#: how often a quiet run's process is checked for being gone (seconds)
ALIVE_CHECK_S = 5.0


class RunFollower(QObject):
    """Feeds a stored run's events to ``target`` as they are written.

    ``fit_started()`` once the run's ``FitStart`` was delivered (the target shows the run now;
    pin and drop requests cannot reach a run that trains in another process);
    ``received(n)`` after each poll that delivered events; ``ended(status)`` once the run has
    ended (its ``FitEnd`` was delivered); ``failed(message)`` with a one-line reason when the
    run cannot be followed any more. After either, the follower is stopped.
    """

    fit_started = Signal()
    received = Signal(int)
    ended = Signal(str)
    failed = Signal(str)

    def __init__(self, store_path: str | Path | None, run: str | int, target: Callback,
                 interval_ms: int = POLL_INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store_path = store_path
        self.run_ref = run
        self.target = target
        self.cursor = -1
        self.events_delivered = 0
        self.status = ""
        self.run_id: int | None = None
        self.run_label = str(run)
        self._store: RunStore | None = None
        self._last_alive_check = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        """Open the store, deliver everything written so far, then poll.

        Raises :class:`~learndrop.core.store.StoreError` (one-line message) when the store
        cannot be opened or the run is not in it.
        """
        self._store = RunStore(self.store_path)
        try:
            record = self._store.get_run(self.run_ref)
        except LearnDropError:
            self._close()
            raise
        self.run_id, self.run_label, self.status = record.id, record.label, record.status
        self._last_alive_check = time.monotonic()
        self._timer.start()
        self.poll()

    @Slot()
    def stop(self) -> None:
        """Stop polling (what was delivered stays with the target)."""
        self._timer.stop()
        self._close()

    @Slot()
    def poll(self) -> int:
        """Deliver the events written since the last poll; returns how many."""
        if self._store is None or self.run_id is None:
            return 0
        try:
            events = list(self._store.iter_new_events(self.run_id, self.cursor, clock=True))
        except RunNotFoundError:
            self._fail(f"run {self.run_label} was deleted from the run store: following "
                       f"stopped")
            return 0
        except StoreError as exc:
            if "busy" in exc.message:  # a writer holds the lock: try again at the next tick
                return 0
            self._fail(exc.message)
            return 0
        if not events:
            self._check_alive()
            return 0
        self.cursor = events[-1][0]
        self.events_delivered += replay(events, [self.target])
        if any(isinstance(e, FitStart) for _, e in events):
            self.fit_started.emit()
        self.received.emit(len(events))
        end = next((e for _, e in reversed(events) if isinstance(e, FitEnd)), None)
        if end is not None:
            self.status = end.status
            self.stop()
            self.ended.emit(end.status)
        return len(events)

    # ---- internals ---------------------------------------------------------------------------
    def _check_alive(self) -> None:
        """Now and then, let the store notice a writer that died (its run becomes
        interrupted, and the next poll delivers that end)."""
        now = time.monotonic()
        if self._store is None or now - self._last_alive_check < ALIVE_CHECK_S:
            return
        self._last_alive_check = now
        try:
            self._store.mark_interrupted()
        except Exception:  # noqa: BLE001 - only a hint; the next check tries again
            pass

    def _fail(self, message: str) -> None:
        self.stop()
        self.failed.emit(message)

    def _close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing never matters more than stopping
                pass
