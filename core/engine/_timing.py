"""Timing training steps: the host's clock where the device keeps pace, CUDA events on a GPU.

A step is timed from the end of the previous :meth:`LearnDrop.step` (``begin``) to the end
of this one (``end``): data, forward, backward and the optimizer step. On the CPU the
host's clock measures that work. On a GPU the host only queues kernels and runs ahead
until something reads a value back (the trainer does once per log window), so the host's
time between two steps is the time to launch them, not to run them; there each step is
timed by a pair of CUDA events recorded on the stream, read once the device has passed
them (``query``: no synchronisation). Other devices are timed by the host's clock; their
per-step times are bursty but sums over a read-back period are right, so the savings
meter averages them over that period (its ``block``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import torch

__all__ = ["StepClock", "HostClock", "CudaEventClock", "make_step_clock"]


class StepClock:
    """Times steps: ``begin()`` when a step starts, ``end(tag)`` when it ends; each returns
    the ``(tag, seconds)`` of the steps whose times are known now, in order."""

    #: True when each step's own time is measured (False: only sums over windows are right)
    per_step = True

    def begin(self) -> None:
        raise NotImplementedError

    def end(self, tag: Any) -> list[tuple[Any, float]]:
        raise NotImplementedError

    def pause(self) -> None:
        """The next step is not timed from the last ``end`` (a pause, validation)."""
        raise NotImplementedError

    def flush(self) -> list[tuple[Any, float]]:
        """Every step time still outstanding (waits for the device where needed)."""
        return []


class HostClock(StepClock):
    """``time.perf_counter`` between ``begin`` and ``end``."""

    def __init__(self, per_step: bool = True, clock: Any = time.perf_counter) -> None:
        self.per_step = per_step
        self._clock = clock
        self._t: float | None = None

    def begin(self) -> None:
        self._t = self._clock()

    def end(self, tag: Any) -> list[tuple[Any, float]]:
        t, self._t = self._t, None
        return [] if t is None else [(tag, self._clock() - t)]

    def pause(self) -> None:
        self._t = None


class CudaEventClock(StepClock):
    """A CUDA event at ``begin`` and one at ``end`` on the device's current stream; a step's
    time is read once its end event has completed."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._start: Any = None
        self._pending: deque[tuple[Any, Any, Any]] = deque()

    def _record(self) -> Any:
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def begin(self) -> None:
        self._start = self._record()

    def end(self, tag: Any) -> list[tuple[Any, float]]:
        if self._start is not None:
            self._pending.append((tag, self._start, self._record()))
            self._start = None
        return self._ready()

    def pause(self) -> None:
        self._start = None

    def flush(self) -> list[tuple[Any, float]]:
        if self._pending:
            self._pending[-1][2].synchronize()
        return self._ready()

    def _ready(self) -> list[tuple[Any, float]]:
        out = []
        while self._pending and self._pending[0][2].query():
            tag, start, stop = self._pending.popleft()
            out.append((tag, start.elapsed_time(stop) / 1000.0))
        return out


def make_step_clock(device: torch.device) -> StepClock:
    """CUDA events on a CUDA device, the host's clock elsewhere (per step on the CPU)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return CudaEventClock(device)
    return HostClock(per_step=device.type == "cpu")
