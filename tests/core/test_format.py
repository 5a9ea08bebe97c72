"""The shared formatters: every expected text is written out, never computed."""

from __future__ import annotations

import math
import time

import pytest

from learndrop.core import format as fmt

DASH = "\u2013"
UNKNOWN = [None, math.nan, math.inf, -math.inf, "0.5", True]


@pytest.mark.parametrize("value, digits, text", [
    (0.412, 1, "41.2%"), (0.41249, 2, "41.25%"), (1, 1, "100.0%"), (0, 0, "0%"),
    (0.004, 1, "0.4%"), (-0.125, 1, "-12.5%"), (0.9951, 0, "100%"),
])
def test_percent(value: float, digits: int, text: str) -> None:
    assert fmt.percent(value, digits) == text


@pytest.mark.parametrize("value, text", [
    (0.0125, "+1.25 points"), (-0.003, "-0.30 points"), (0, "+0.00 points"),
])
def test_points(value: float, text: str) -> None:
    assert fmt.points(value) == text


@pytest.mark.parametrize("value, unit, text", [
    (950, "", "950"), (0, "", "0"), (999, "", "999"), (999.7, "", "1.0 k"),
    (1000, "", "1.0 k"), (1_300_000, "", "1.3 M"), (250_000, "", "250 k"),
    (99_960, "", "100 k"), (999_960, "", "1.0 M"), (4.5e9, "", "4.5 G"),
    (2e12, "", "2.0 T"), (-1_300_000, "", "-1.3 M"), (4_000_000, "FLOPs", "4.0 MFLOPs"),
    (950, "FLOPs", "950 FLOPs"), (28_954, "", "29.0 k"),
])
def test_count(value: float, unit: str, text: str) -> None:
    assert fmt.count(value, unit) == text


@pytest.mark.parametrize("value, text", [
    (0, "0.0 s"), (0.04, "0.0 s"), (42.4, "42.4 s"), (59.94, "59.9 s"), (59.96, "1 min 00 s"),
    (60, "1 min 00 s"), (125, "2 min 05 s"), (119.6, "2 min 00 s"), (3599.4, "59 min 59 s"),
    (3600, "1 h 00 min"), (3720, "1 h 02 min"), (86399, "23 h 59 min"), (97200, "1 d 3 h"),
    (-42.4, "-42.4 s"), (-125, "-2 min 05 s"),
])
def test_duration(value: float, text: str) -> None:
    assert fmt.duration(value) == text


@pytest.mark.parametrize("value, text", [
    (0, "0 s"), (42.4, "42 s"), (59.6, "1:00"), (185, "3:05"), (3723, "1:02:03"),
    (-1, DASH),
])
def test_clock(value: float, text: str) -> None:
    assert fmt.clock(value) == text


@pytest.mark.parametrize("value, text", [
    (1234.4, "1,234 img/s"), (9999.4, "9,999 img/s"), (12_345, "12.3 k img/s"),
    (0, "0 img/s"),
])
def test_rate(value: float, text: str) -> None:
    assert fmt.rate(value) == text


def test_score() -> None:
    assert fmt.score(0.12345) == "0.123"
    assert fmt.score(1) == "1.000"


@pytest.mark.parametrize("seconds, text", [
    (0.0123, "12.3 ms"), (0.1234, "123 ms"), (0.00045, "450 \u00b5s"), (0.0, "0 \u00b5s"),
    (0.9996, "1.00 s"), (2.5, "2.50 s"), (0.09996, "100 ms"), (-0.004, "-4.0 ms"),
    (42.4, "42.4 s")])
def test_step_times_in_sensible_units(seconds: float, text: str) -> None:
    assert fmt.step_time(seconds) == text


def test_span_and_speedup() -> None:
    assert fmt.span(42, 38, 46) == "42.0 s (38.0 s to 46.0 s)"
    assert fmt.span(42, None, 46) == "42.0 s"
    assert fmt.span(0.01, 0.009, 0.011, fmt.step_time) == "10.0 ms (9.0 ms to 11.0 ms)"
    assert fmt.speedup(1.714) == "1.71x"


def test_when_is_local_date_and_minute() -> None:
    t = time.mktime((2024, 5, 1, 14, 3, 59, 0, 0, -1))
    assert fmt.when(t) == "2024-05-01 14:03"


@pytest.mark.parametrize("value", UNKNOWN)
def test_unknown_values_are_a_dash(value: object) -> None:
    for f in (fmt.percent, fmt.points, fmt.count, fmt.duration, fmt.clock, fmt.rate,
              fmt.score, fmt.when, fmt.step_time, fmt.speedup):
        assert f(value) == DASH, f.__name__


def test_the_report_tables_use_the_same_formatters() -> None:
    from learndrop.core.report import tables

    assert tables.pct(0.412) == "41.2%" and tables.duration(125) == "2 min 05 s"
    assert tables.count(4_000_000, "FLOPs") == "4.0 MFLOPs" and tables.score(0.5) == "0.500"


def test_short_names_keep_different_names_different() -> None:
    a, b = "small_cnn-digits-20261201-153012", "small_cnn-digits-20261201-160544"
    assert fmt.short_names([a, b], 22) == ["small_cnn-\u20261201-153012",
                                           "small_cnn-\u20261201-160544"]
    assert fmt.short_names(["x" * 30 + "-a", "x" * 30 + "-b"], 10) == [
        "xxxx\u2026xxx-a", "xxxx\u2026xxx-b"]
    assert fmt.short_names(["short", "names"], 22) == ["short", "names"]
    assert fmt.short_names(["same", "same"], 22) == ["same", "same"]


def test_precise_duration_never_reads_as_nothing() -> None:
    assert fmt.duration(0.042, precise=True) == "0.042 s"
    assert fmt.duration(3.456, precise=True) == "3.5 s"
    assert fmt.duration(0.042) == "0.0 s" and fmt.duration(125, precise=True) == "2 min 05 s"
