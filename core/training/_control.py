"""Thread-safe run control: pause, resume, stop, cancel, and manual unit actions.

A front end (the app's GUI thread, a signal handler) calls these; the trainer checks them at
batch boundaries only, so a request never interrupts a half-done optimizer step.
"""

from __future__ import annotations

import threading
import time
from collections import deque

__all__ = ["RunControl"]


class RunControl:
    """Flags a front end sets and the training loop reads.

    - ``stop()``: finish the current batch, checkpoint, end the run as ``stopped`` (kept).
    - ``cancel()``: end as soon as possible as ``cancelled``; the run's files are discarded.
    - ``pause()`` / ``resume()``: hold the loop at the next batch boundary.
    - ``request_drop(name)`` / ``request_pin(name)`` / ``request_unpin(name)``: applied by the
      engine at the next step boundary.

    Every request is also kept with the time it was made, until the training loop takes it
    (:meth:`take_requests`) to report it as a :class:`~learndrop.core.events.UserAction`.
    A pause or resume that changes nothing (pausing a paused run) is not kept.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._actions: deque[tuple[str, str]] = deque()
        self._requests: deque[tuple[str, str, float]] = deque()

    # requests (any thread)
    def stop(self) -> None:
        self._log("stop")
        self._stop.set()
        self._running.set()

    def cancel(self) -> None:
        self._log("cancel")
        self._cancel.set()
        self._running.set()

    def pause(self) -> None:
        with self._lock:
            if self._running.is_set():
                self._requests.append(("pause", "", time.time()))
            self._running.clear()

    def resume(self) -> None:
        with self._lock:
            if not self._running.is_set():
                self._requests.append(("resume", "", time.time()))
            self._running.set()

    def request_drop(self, unit: str) -> None:
        self._unit_action("drop", unit)

    def request_pin(self, unit: str) -> None:
        self._unit_action("pin", unit)

    def request_unpin(self, unit: str) -> None:
        self._unit_action("unpin", unit)

    def _unit_action(self, action: str, unit: str) -> None:
        with self._lock:
            self._actions.append((action, unit))
            self._requests.append((action, unit, time.time()))

    def _log(self, action: str) -> None:
        with self._lock:
            self._requests.append((action, "", time.time()))

    # state (training thread)
    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def should_end(self) -> bool:
        return self._stop.is_set() or self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, timeout: float | None = None) -> None:
        """Block while paused (until resume, stop or cancel)."""
        self._running.wait(timeout)

    def take_actions(self) -> list[tuple[str, str]]:
        """The unit actions (action, unit) asked for since the last call, oldest first."""
        with self._lock:
            out = list(self._actions)
            self._actions.clear()
        return out

    def take_requests(self) -> list[tuple[str, str, float]]:
        """Every request (action, unit, wall time) since the last call, oldest first."""
        with self._lock:
            out = list(self._requests)
            self._requests.clear()
        return out
