"""The run clock alone, on a fake time source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from learndrop.core.training._clock import RunClock


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TimedBatches:
    """Batches that each take ``wait`` seconds to arrive."""

    def __init__(self, time: FakeTime, n: int, wait: float) -> None:
        self.time, self.n, self.wait = time, n, wait

    def __iter__(self) -> Iterator[int]:
        for i in range(self.n):
            self.time.advance(self.wait)
            yield i


def test_elapsed_counts_from_the_start_and_from_a_restart() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    t.advance(3.0)
    assert clock.elapsed() == pytest.approx(3.0)
    clock.restart()
    t.advance(1.5)
    assert clock.elapsed() == pytest.approx(1.5)


def test_a_pause_is_not_elapsed_time() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    t.advance(2.0)
    with clock.paused():
        t.advance(10.0)
    t.advance(1.0)
    assert clock.elapsed() == pytest.approx(3.0)
    with clock.paused():  # pauses add up
        t.advance(5.0)
    assert clock.elapsed() == pytest.approx(3.0)
    assert clock.total_elapsed() == pytest.approx(3.0)


def test_a_pause_ended_by_an_exception_still_counts_as_a_pause() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    with pytest.raises(KeyboardInterrupt), clock.paused():
        t.advance(4.0)
        raise KeyboardInterrupt
    t.advance(1.0)
    assert clock.elapsed() == pytest.approx(1.0)


def test_resume_adds_the_saved_elapsed_time_to_the_total_only() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    clock.resume(50.0)
    t.advance(2.0)
    assert clock.elapsed() == pytest.approx(2.0)
    assert clock.total_elapsed() == pytest.approx(52.0)
    clock.restart()  # a new session of the same run keeps the earlier sessions' time
    t.advance(1.0)
    assert clock.total_elapsed() == pytest.approx(51.0)


def test_resume_adds_the_saved_training_and_data_time_to_the_totals() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    clock.resume(50.0, train_s=40.0, data_s=4.0)
    clock.restart()
    list(clock.timed(TimedBatches(t, 3, 0.5)))
    clock.add_training(6.0)
    assert (clock.train_time_s, clock.data_time_s) == pytest.approx((6.0, 1.5))  # this session
    assert clock.total_training() == pytest.approx(46.0)
    assert clock.total_data() == pytest.approx(5.5)


def test_waiting_for_batches_accumulates_as_data_time() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    got = []
    for b in clock.timed(TimedBatches(t, 3, 0.25)):
        got.append(b)
        t.advance(1.0)  # the step itself is not data time
    assert got == [0, 1, 2]
    assert clock.data_time_s == pytest.approx(0.75)
    for _ in clock.timed(TimedBatches(t, 2, 0.5)):  # the next epoch adds to it
        pass
    assert clock.data_time_s == pytest.approx(1.75)
    assert clock.elapsed() == pytest.approx(4.75)  # data time is elapsed time too


def test_a_loop_left_early_counts_only_the_batches_waited_for() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    for b in clock.timed(TimedBatches(t, 10, 0.5)):
        if b == 1:
            break
    assert clock.data_time_s == pytest.approx(1.0)


def test_training_time_adds_up_and_a_restart_clears_the_session_figures() -> None:
    t = FakeTime()
    clock = RunClock(now=t)
    clock.resume(7.0)
    clock.add_training(2.0)
    clock.add_training(3.0)
    for _ in clock.timed(TimedBatches(t, 1, 0.5)):
        pass
    with clock.paused():
        t.advance(1.0)
    assert clock.train_time_s == pytest.approx(5.0)
    clock.restart()
    assert (clock.train_time_s, clock.data_time_s, clock.elapsed()) == (0.0, 0.0, 0.0)
    assert clock.resumed_s == 7.0
