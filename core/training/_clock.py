"""The clock of one training run: its elapsed time, pauses, resumed time and data waits.

A :class:`RunClock` is owned by the trainer; the epoch loop and the data-parallel path time
pauses and batch waits through it, and the summary, the checkpoints and the progress events
read their times from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["RunClock"]

T = TypeVar("T")


class RunClock:
    """This session's elapsed time (a pause is not training time), the time of earlier
    sessions resumed from a checkpoint, the time spent waiting for training batches and the
    time spent in the epochs' training loops.

    ``now`` is the time source (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        self._now = now
        self._started = now()
        self._paused_s = 0.0
        self.resumed_s = 0.0  # earlier sessions' elapsed time (a resumed run's)
        self.resumed_train_s = 0.0  # and their time in training loops
        self.resumed_data_s = 0.0  # and waiting for batches
        self.data_time_s = 0.0  # waiting for training batches, this session
        self.train_time_s = 0.0  # in the epochs' training loops, this session

    def restart(self) -> None:
        """Start this session's times again from now (the resumed time is kept)."""
        self._started = self._now()
        self._paused_s = 0.0
        self.data_time_s = 0.0
        self.train_time_s = 0.0

    def resume(self, elapsed_s: float, train_s: float = 0.0, data_s: float = 0.0) -> None:
        """Count earlier sessions (from a checkpoint) in the run's totals: ``elapsed_s``
        seconds in all, ``train_s`` of them in training loops, ``data_s`` waiting for batches
        (0 for a checkpoint written before those were kept)."""
        self.resumed_s = elapsed_s
        self.resumed_train_s = train_s
        self.resumed_data_s = data_s

    def total_training(self) -> float:
        """Seconds in the epochs' training loops, this session's and the resumed ones'."""
        return self.train_time_s + self.resumed_train_s

    def total_data(self) -> float:
        """Seconds spent waiting for training batches, this session's and the resumed ones'."""
        return self.data_time_s + self.resumed_data_s

    def elapsed(self) -> float:
        """Seconds of this session since it started, less its pauses."""
        return self._now() - self._started - self._paused_s

    def total_elapsed(self) -> float:
        """Seconds of the whole run: this session's and the resumed sessions'."""
        return self.elapsed() + self.resumed_s

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The time inside the ``with`` block is a pause: not counted as elapsed."""
        at = self._now()
        try:
            yield
        finally:
            self._paused_s += self._now() - at

    def add_training(self, seconds: float) -> None:
        """Count ``seconds`` spent in an epoch's training loop."""
        self.train_time_s += seconds

    def timed(self, batches: Iterable[T]) -> Iterator[T]:
        """Iterate ``batches``, counting the time spent waiting for each one as data time."""
        return self._timed(iter(batches))

    def _timed(self, it: Iterator[T]) -> Iterator[T]:
        while True:
            t = self._now()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.data_time_s += self._now() - t
            yield batch
