"""A speed-up between two runs is a result only on one machine, under a similar load, and
outside the noise of their step times."""

from __future__ import annotations

import dataclasses

from learndrop.core.monitor import SpeedComparison, compare_speed
from learndrop.core.savings import SavingsReport
from learndrop.core.summary import RunSummary


def spread(value: float) -> SavingsReport:
    """Savings whose step time spreads by ``value`` (the rest does not matter here)."""
    return SavingsReport(step_time_spread_now=value)


BASE = RunSummary(wall_time_s=100.0, machine="host: cpu x 2, cpu", load_per_cpu=1.0,
                  savings=spread(0.05))


def run(**changes: object) -> RunSummary:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_a_clear_speedup_on_one_machine_is_a_result() -> None:
    c = compare_speed(run(wall_time_s=50.0), BASE)
    assert c.speedup == 2.0 and c.is_result and c.text == "2.00x"


def test_identical_settings_under_different_loads_are_flagged() -> None:
    """The same run twice, once on a busy machine: its 5.83x is the load's."""
    c = compare_speed(run(wall_time_s=100 / 5.83, load_per_cpu=1.0),
                      run(load_per_cpu=3.2, savings=spread(0.4)))
    assert not c.is_result
    assert c.text == "5.83x (not a result: machine load 1.0 vs 3.2 per CPU)"


def test_overlapping_spreads_are_noise() -> None:
    c = compare_speed(run(wall_time_s=95.0), BASE)
    assert not c.is_result and "within step-time noise" in c.text
    clear = compare_speed(run(wall_time_s=80.0, savings=spread(0.02)),
                          run(savings=spread(0.02)))
    assert clear.is_result


def test_other_machines_and_unknowns() -> None:
    c = compare_speed(run(wall_time_s=50.0, machine="other: gpu x 16, cuda"), BASE)
    assert c.caveats == ("different machines",)
    old = RunSummary(wall_time_s=50.0)  # recorded before machines and loads were
    assert compare_speed(old, RunSummary(wall_time_s=100.0)).is_result
    assert compare_speed(RunSummary(), BASE) == SpeedComparison(None)
    assert compare_speed(RunSummary(), BASE).text == "\u2013"
