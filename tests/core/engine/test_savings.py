"""Time accounting that machine load cannot fool: simulated step times with known truth, a
simulated asynchronous device, CUDA-event timing with fake events, and a real slowdown."""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from learndrop.core.engine._savings import SavingsMeter, StepCost, median_stats
from learndrop.core.engine._timing import CudaEventClock, HostClock, make_step_clock

FULL = 1000  # forward FLOPs of the full network
FULL_COST = StepCost(FULL, 3 * FULL)


def cost(train_share: float) -> StepCost:
    """A drop state whose training FLOPs are ``train_share`` of the full network's."""
    return StepCost(FULL * train_share, 3 * FULL * train_share)


class Sim:
    """Feeds a meter simulated steps: time = base x time share x load x noise; keeps the
    truth (what the full network would have taken under the same load and noise)."""

    def __init__(self, meter: SavingsMeter, base: float = 0.1, noise: float = 0.05,
                 seed: int = 0) -> None:
        self.meter, self.base, self.noise = meter, base, noise
        self.rng = random.Random(seed)
        self.load = 1.0
        self.true_saved = 0.0
        self.raw_dropped = 0.0  # raw sum of the dropped steps' times
        self.dropped_steps = 0

    def run(self, c: StepCost, steps: int, time_share: float) -> None:
        for _ in range(steps):
            jitter = math.exp(self.rng.gauss(0.0, self.noise))
            full = self.base * self.load * jitter
            t = full * time_share
            self.meter.add_step(c, t)
            if c != FULL_COST:
                self.true_saved += full - t
                self.raw_dropped += t
                self.dropped_steps += 1


def naive_time_saved(meter: SavingsMeter, sim: Sim, full_median: float) -> float:
    """What the meter used to say: dropped steps times the full network's median measured
    before the first drop, minus the raw sum of their times."""
    return sim.dropped_steps * full_median - sim.raw_dropped


# ---- robust statistics ---------------------------------------------------------------------
def test_median_stats() -> None:
    m, rel, spread = median_stats([1.0, 1.1, 0.9, 1.0, 5.0])
    assert m == 1.0 and spread == pytest.approx(1.4826 * 0.1)
    assert rel == pytest.approx(1.2533 * spread / math.sqrt(5))
    assert median_stats([2.0]) == (2.0, 0.0, 0.0)


# ---- load that changes mid-run -------------------------------------------------------------
@pytest.mark.parametrize("load", [0.5, 2.0, 4.0])
def test_load_change_after_a_drop_keeps_time_saved_right(load: float) -> None:
    meter = SavingsMeter(FULL)
    sim = Sim(meter)
    sim.run(FULL_COST, 200, 1.0)
    full_median = meter.full_step_time
    assert full_median == pytest.approx(0.1, rel=0.03)
    half = cost(0.5)
    sim.run(half, 200, 0.5)
    sim.load = load  # the machine gets busier (or quieter) halfway through the run
    sim.run(half, 200, 0.5)
    t = meter.time_saved()
    assert t is not None
    assert t.low <= sim.true_saved <= t.high and t.low > 0
    assert t.seconds == pytest.approx(sim.true_saved, rel=0.05)
    assert meter.measured_time_saved() == pytest.approx(0.5, abs=0.02)
    # the full network's time per step follows the load; the ratio does not
    assert meter.full_step_time == pytest.approx(0.1 * load, rel=0.05)
    assert meter.step_time == pytest.approx(0.05 * load, rel=0.05)
    # the FLOP prediction over the same steps: half of the full network's time
    assert t.predicted == pytest.approx(sim.true_saved, rel=0.05)
    assert meter.efficiency() == pytest.approx(1.0, abs=0.05)
    if load == 4.0:  # the old accounting flips the sign
        assert naive_time_saved(meter, sim, full_median) < 0


def test_chained_drops_with_load_changes_inside_states() -> None:
    meter = SavingsMeter(FULL)
    sim = Sim(meter, noise=0.08, seed=3)
    sim.run(FULL_COST, 150, 1.0)
    sim.run(cost(0.7), 100, 0.75)
    sim.load = 2.5
    sim.run(cost(0.7), 100, 0.75)
    sim.run(cost(0.4), 80, 0.45)
    sim.load = 1.2
    sim.run(cost(0.4), 120, 0.45)
    sim.run(cost(0.1), 150, 0.2)
    t = meter.time_saved()
    assert t is not None and t.low > 0
    assert t.low <= sim.true_saved <= t.high
    assert meter.measured_time_saved() == pytest.approx(0.8, abs=0.03)
    assert meter.efficiency() == pytest.approx(sim.true_saved / t.predicted, rel=0.1)


def test_a_state_that_saves_nothing_claims_nothing() -> None:
    """A drop that does not make steps faster (and load noise on top): the range holds
    zero and no efficiency is given."""
    meter = SavingsMeter(FULL)
    sim = Sim(meter, noise=0.3, seed=5)
    sim.run(FULL_COST, 100, 1.0)
    sim.run(cost(0.6), 200, 1.0)
    t = meter.time_saved()
    assert t is not None and t.low < 0 < t.high
    assert abs(t.seconds) < 0.1 * sim.base * 200
    assert meter.efficiency() is None


def test_too_few_samples_measure_nothing() -> None:
    meter = SavingsMeter(FULL)
    meter.add_step(FULL_COST, None)
    assert meter.step_time is None and meter.full_step_time is None
    assert meter.time_saved() is None and meter.time_saved_s() == 0.0
    assert meter.efficiency() is None
    assert meter.measured_time_saved() == 0.0  # the full network saves nothing
    sim = Sim(meter)
    sim.run(FULL_COST, 20, 1.0)
    sim.run(cost(0.5), SavingsMeter.SETTLE_STEPS + SavingsMeter.MIN_SAMPLES - 1, 0.5)
    assert meter.ratio() is None and meter.time_saved() is None
    sim.run(cost(0.5), 1, 0.5)
    assert meter.ratio() == pytest.approx(0.5, rel=0.1)


def test_a_short_state_is_bridged_by_the_last_measured_one() -> None:
    """A state too short to be measured (a single cache-verification step) does not cut the
    chain: the next state is measured against the last state measured well enough."""
    meter = SavingsMeter(FULL)
    sim = Sim(meter, noise=0.02)
    sim.run(FULL_COST, 60, 1.0)
    sim.run(cost(0.6), 60, 0.6)
    meter.break_timing()  # validation between epochs
    sim.run(cost(0.55), 1, 0.6)
    sim.run(cost(0.2), 60, 0.25)
    assert meter.measured_time_saved() == pytest.approx(0.75, abs=0.02)
    t = meter.time_saved()
    assert t is not None and t.low <= sim.true_saved <= t.high


def test_projection_and_spread() -> None:
    meter = SavingsMeter(FULL)
    sim = Sim(meter, noise=0.01)
    sim.run(FULL_COST, 100, 1.0)
    sim.run(cost(0.5), 100, 0.5)
    now = meter.time_saved_s()
    assert meter.projected_time_saved_s(100) == pytest.approx(now + 100 * 0.05, rel=0.02)
    assert meter.step_time_spread == pytest.approx(0.01, rel=0.3)
    noisy = SavingsMeter(FULL)
    Sim(noisy, noise=0.1).run(FULL_COST, 200, 1.0)
    assert noisy.step_time_spread == pytest.approx(0.1, rel=0.3)


def test_ranges_hold_the_truth_for_most_seeds() -> None:
    """The range is a statement about noise: over many simulated runs it holds the truth
    nearly always (and is not so wide that it always would)."""
    held, widths = 0, []
    for seed in range(100):
        meter = SavingsMeter(FULL)
        sim = Sim(meter, noise=0.1, seed=seed)
        sim.run(FULL_COST, 100, 1.0)
        sim.run(cost(0.5), 100, 0.5)
        t = meter.time_saved()
        assert t is not None
        held += t.low <= sim.true_saved <= t.high
        widths.append((t.high - t.low) / sim.true_saved)
    assert held >= 95
    assert statistics.median(widths) < 0.3


def test_state_round_trip_and_old_state() -> None:
    meter = SavingsMeter(FULL)
    sim = Sim(meter)
    sim.run(FULL_COST, 100, 1.0)
    sim.run(cost(0.5), 100, 0.5)
    state = meter.state_dict()
    again = SavingsMeter(FULL)
    again.load_state_dict(state)
    assert again.time_saved() == meter.time_saved()
    assert again.steps == meter.steps and again.any_drop
    # a resumed run measures its next state against the state it ended in
    sim2 = Sim(again)
    sim2.run(cost(0.5), 1, 0.5)
    sim2.run(cost(0.25), 50, 0.25)
    assert again.measured_time_saved() == pytest.approx(0.75, abs=0.02)
    old = {"steps": 10, "forward_spent": 1.0, "train_spent": 3.0, "any_drop": False,
           "full_times": [0.2] * 10, "time_spent_dropped": 0.0, "steps_dropped": 0}
    legacy = SavingsMeter(FULL)
    legacy.load_state_dict(old)
    assert legacy.full_step_time == pytest.approx(0.2) and legacy.steps == 10
    Sim(legacy, base=0.2, noise=0.0).run(cost(0.5), 20, 0.5)
    assert legacy.measured_time_saved() == pytest.approx(0.5)


# ---- a device the host runs ahead of ---------------------------------------------------------
def bursty(meter: SavingsMeter, c: StepCost, steps: int, t: float, period: int,
           counter: list[int]) -> None:
    """Host times of an asynchronous device read back every ``period`` steps: the host
    launches in 1 ms and waits at the read-back, so only window sums are right."""
    for _ in range(steps):
        counter[0] += 1
        if counter[0] % period:
            meter.add_step(c, 0.001)
        else:
            meter.add_step(c, period * t - (period - 1) * 0.001)


@pytest.mark.parametrize("offset", [0, 7, 13])
def test_asynchronous_device_window_sums(offset: int) -> None:
    """Bursty host times: averaged over the read-back period the meter is right, also when
    a drop falls inside a window; per step it would be fooled."""
    period = 20
    right, fooled = SavingsMeter(FULL, block=period), SavingsMeter(FULL, block=1)
    for meter in (right, fooled):
        counter = [0]
        bursty(meter, FULL_COST, 400 + offset, 0.1, period, counter)
        bursty(meter, cost(0.5), 800, 0.05, period, counter)
    assert right.full_step_time == pytest.approx(0.1, rel=0.05)
    assert right.step_time == pytest.approx(0.05, rel=0.05)
    assert right.measured_time_saved() == pytest.approx(0.5, abs=0.05)
    t = right.time_saved()
    true_saved = 800 * 0.05
    assert t is not None and t.low <= true_saved <= t.high and t.low > 0
    assert fooled.step_time == pytest.approx(0.001)  # the launch time, not the work


class FakeDevice:
    """A device that runs queued work behind the host: ``advance`` moves its clock."""

    def __init__(self) -> None:
        self.queued = 0.0  # device time at which the queued work ends
        self.now = 0.0

    def enqueue(self, seconds: float) -> None:
        self.queued = max(self.queued, self.now) + seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeEvent:
    device: FakeDevice

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at: float | None = None

    def record(self, stream: Any = None) -> None:
        self.at = max(self.device.queued, self.device.now)

    def query(self) -> bool:
        return self.at is not None and self.device.now >= self.at

    def synchronize(self) -> None:
        assert self.at is not None
        self.device.now = max(self.device.now, self.at)

    def elapsed_time(self, other: FakeEvent) -> float:
        assert self.query() and other.query() and self.at is not None
        assert other.at is not None
        return (other.at - self.at) * 1000.0


def test_cuda_event_clock_reads_device_time(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeDevice()
    FakeEvent.device = device
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda d=None: None)
    clock = CudaEventClock(torch.device("cuda"))
    got: list[tuple[Any, float]] = []
    works = [0.05, 0.07, 0.03, 0.04]
    for k, work in enumerate(works):
        clock.begin()
        device.enqueue(work)
        got += clock.end(k)
        device.advance(0.001)  # the host only launched: the device is behind
    assert len(got) < len(works)  # not all read yet: no synchronisation happened
    clock.pause()
    got += clock.flush()
    assert [k for k, _ in got] == [0, 1, 2, 3]
    assert [s for _, s in got] == pytest.approx(works)
    assert clock.flush() == []


def test_host_clock_and_choice() -> None:
    ticks = iter([1.0, 1.25, 2.0, 2.5])
    clock = HostClock(clock=lambda: next(ticks))
    assert clock.end("x") == []  # never begun
    clock.begin()
    assert clock.end("a") == [("a", 0.25)]
    clock.begin()
    clock.pause()
    assert clock.end("b") == []
    chosen = make_step_clock(torch.device("cpu"))
    assert isinstance(chosen, HostClock) and chosen.per_step
    assert not make_step_clock(torch.device("meta")).per_step


# ---- a real slowdown: busy processes started halfway ----------------------------------------
def _work(iterations: int) -> None:
    x = 0
    for i in range(iterations):
        x += i * i
    assert x >= 0


def _timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_time_saved_keeps_its_sign_when_the_machine_slows_down() -> None:
    """Steps of pure-Python work (the full network: 4 units, dropped: 1) timed by the real
    clock on one CPU; halfway through the dropped steps three busy processes start on the same
    CPU. The measured time saved stays positive throughout and its range holds the truth,
    measured by timing both kinds of steps under each condition."""
    work = 300_000  # about 8 ms: a step spans several of the scheduler's time slices
    meter = SavingsMeter(FULL)
    quarter = cost(0.25)
    own = os.sched_getaffinity(0)
    cpu = min(own)
    os.sched_setaffinity(0, {cpu})
    busy: list[subprocess.Popen[bytes]] = []
    try:
        full_times = [_timed(lambda: _work(4 * work)) for _ in range(30)]
        for t in full_times:
            meter.add_step(FULL_COST, t)
        before = [_timed(lambda: _work(work)) for _ in range(40)]
        for t in before:
            meter.add_step(quarter, t)
        saved = meter.time_saved()
        assert saved is not None and saved.low > 0
        for _ in range(3):
            busy.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
            os.sched_setaffinity(busy[-1].pid, {cpu})
        after: list[float] = []
        for _ in range(40):
            after.append(_timed(lambda: _work(work)))
            meter.add_step(quarter, after[-1])
            saved = meter.time_saved()
            assert saved is not None and saved.low > 0  # the sign never flips
        full_loaded, dropped_loaded = [], []  # the truth under load, still under load
        for _ in range(10):
            full_loaded.append(_timed(lambda: _work(4 * work)))
            dropped_loaded.append(_timed(lambda: _work(work)))
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
        os.sched_setaffinity(0, own)
    slowdown = statistics.median(after) / statistics.median(before)
    assert slowdown > 1.25, f"the busy processes did not slow the steps ({slowdown:.2f}x)"
    r_before = statistics.median(before) / statistics.median(full_times)
    r_after = statistics.median(dropped_loaded) / statistics.median(full_loaded)
    truth = (len(before) * statistics.median(before) * (1 / r_before - 1)
             + len(after) * statistics.median(after) * (1 / r_after - 1))
    t = meter.time_saved()
    assert t is not None and t.low > 0
    slack = 0.25 * truth  # the truth is itself measured, on a shared machine
    assert t.low - slack <= truth <= t.high + slack, (t, truth)
    # the old accounting (dropped steps at the full network's median measured before the
    # load, minus their raw sum) understates the saving by far under the load
    naive = (len(before) + len(after)) * statistics.median(full_times) - sum(before) - sum(after)
    assert naive < t.low
