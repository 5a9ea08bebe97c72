"""Numbers written for people, the same way in the command line, the reports and the app.

Every formatter takes what a run records (a number, ``None`` or NaN for "not known") and
returns text; anything that is not a finite number becomes :data:`DASH`.

=================  ==================  =========================================
formatter          value               text
=================  ==================  =========================================
:func:`percent`    0.412               ``41.2%`` (``digits`` after the point)
:func:`points`     0.0125              ``+1.25 points`` (a difference of shares)
:func:`count`      1_300_000           ``1.3 M``; with ``unit="FLOPs"``: ``1.3 MFLOPs``
:func:`duration`   125                 ``2 min 05 s``; 42.4 -> ``42.4 s``
:func:`step_time`  0.0123              ``12.3 ms``; 0.00045 -> ``450 µs``; 2.5 -> ``2.50 s``
:func:`span`       42, 38, 46          ``42.0 s (38.0 s to 46.0 s)``: a figure and its range
:func:`speedup`    1.714               ``1.71x``
:func:`clock`      125                 ``2:05``; 42.4 -> ``42 s`` (status lines)
:func:`rate`       1234.4              ``1,234 img/s``
:func:`score`      0.12345             ``0.123``
:func:`when`       a Unix time         ``2024-05-01 14:03`` (local time)
=================  ==================  =========================================

:func:`short_names` shortens names for a legend or a column head so that names that differ
stay different.
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["DASH", "is_number", "percent", "points", "count", "duration", "step_time", "span",
           "speedup", "clock", "rate", "score", "when", "short_names"]

#: what every formatter writes for a value that is not known
DASH = "\u2013"

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def is_number(v: Any) -> bool:
    """True for a finite int or float (``bool`` is not a number here)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def percent(fraction: Any, digits: int = 1) -> str:
    """A share as a percentage: 0.412 -> ``41.2%``; ``digits=0`` -> ``41%``."""
    return f"{fraction * 100:.{digits}f}%" if is_number(fraction) else DASH


def points(difference: Any) -> str:
    """A difference of two shares in percentage points: 0.0125 -> ``+1.25 points``."""
    return f"{difference * 100:+.2f} points" if is_number(difference) else DASH


def count(n: Any, unit: str = "") -> str:
    """A large count with a metric prefix: 950 -> ``950``, 1_300_000 -> ``1.3 M``,
    250_000 -> ``250 k``; with a unit: ``1.3 MFLOPs``, ``950 FLOPs``."""
    if not is_number(n):
        return DASH
    a = abs(float(n))
    for k, (div, prefix) in enumerate(_PREFIXES):
        if a < div:
            continue
        v = n / div
        if round(abs(v)) >= 1000 and k > 0:  # 999_960 is 1.0 M, not 1000 k
            div, prefix = _PREFIXES[k - 1]
            v = n / div
        text = f"{v:.1f}" if round(abs(v), 1) < 100 else f"{v:.0f}"
        return f"{text} {prefix}{unit}"
    text = f"{n:.0f}"
    if text in ("1000", "-1000"):  # 999.7 rounds up into the next prefix
        return count(math.copysign(1000.0, n), unit)
    return f"{text} {unit}" if unit else text


def duration(seconds: Any, precise: bool = False) -> str:
    """A span of time: 42.4 -> ``42.4 s``, 125 -> ``2 min 05 s``, 3720 -> ``1 h 02 min``,
    97200 -> ``1 d 3 h``; negative spans get a minus sign. ``precise`` keeps two significant
    digits below 10 s, so a small amount never reads as nothing: 0.042 -> ``0.042 s``."""
    if not is_number(seconds):
        return DASH
    sign = "-" if seconds < 0 else ""
    s = abs(float(seconds))
    if precise and 0 < s < 9.95:
        return f"{sign}{s:.2g} s" if s >= 1 else f"{sign}{float(f'{s:.2g}')} s"
    if round(s, 1) < 60:
        return f"{sign}{s:.1f} s"
    whole = round(s)
    if whole < 3600:
        return f"{sign}{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{sign}{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{sign}{whole // 86400} d {whole % 86400 // 3600} h"


def step_time(seconds: Any) -> str:
    """A short time such as one training step's: 0.0123 -> ``12.3 ms``, 0.123 -> ``123 ms``,
    0.00045 -> ``450 µs``, 2.5 -> ``2.50 s``; longer spans as :func:`duration`."""
    if not is_number(seconds):
        return DASH
    s = abs(float(seconds))
    sign = "-" if seconds < 0 else ""
    if s >= 10:
        return duration(seconds)
    if round(s, 2) >= 1:
        return f"{sign}{s:.2f} s"
    ms = s * 1000
    if round(ms, 1) >= 100:
        return f"{sign}{ms:.0f} ms"
    if round(ms, 1) >= 1:
        return f"{sign}{ms:.1f} ms"
    return f"{sign}{ms * 1000:.0f} \u00b5s"


def span(value: Any, low: Any, high: Any, unit: Any = None) -> str:
    """A figure with its range, each written by ``unit`` (default :func:`duration`):
    ``42.0 s (38.0 s to 46.0 s)``; the figure alone when the range is not known."""
    write = unit or duration
    if not is_number(low) or not is_number(high):
        return str(write(value))
    return f"{write(value)} ({write(low)} to {write(high)})"


def speedup(factor: Any) -> str:
    """How many times faster: 1.714 -> ``1.71x``."""
    return f"{factor:.2f}x" if is_number(factor) else DASH


def clock(seconds: Any) -> str:
    """Time as a status line shows it: 42.4 -> ``42 s``, 185 -> ``3:05``,
    3723 -> ``1:02:03``; negative or unknown -> the dash."""
    if not is_number(seconds) or seconds < 0:
        return DASH
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def rate(images_per_s: Any) -> str:
    """Throughput: 1234.4 -> ``1,234 img/s``; from 10,000 on with a prefix:
    ``12.3 k img/s``."""
    if not is_number(images_per_s):
        return DASH
    if images_per_s >= 10_000:
        return f"{count(images_per_s)} img/s"
    return f"{images_per_s:,.0f} img/s"


def score(v: Any) -> str:
    """A learning score with three decimals: 0.12345 -> ``0.123``."""
    return f"{v:.3f}" if is_number(v) else DASH


def short_names(names: list[str], width: int) -> list[str]:
    """Each name in at most ``width`` characters, cut with an ellipsis where that keeps
    different names different: in the middle, else keeping their ends (runs named
    ``model-data-date-time`` differ at the end), else their starts; numbered as a last
    resort."""
    width = max(width, 5)

    def middle(n: str) -> str:
        return n if len(n) <= width else n[: (width - 1) // 2] + "\u2026" + n[-(width // 2):]

    def end(n: str) -> str:
        return n if len(n) <= width else "\u2026" + n[-(width - 1):]

    def start(n: str) -> str:
        return n if len(n) <= width else n[: width - 1] + "\u2026"

    distinct = len(set(names))
    for cut in (middle, end, start):
        out = [cut(n) for n in names]
        if len(set(out)) == distinct:
            return out
    return [f"{k + 1}: {middle(n)[: width - 3 - len(str(k + 1))]}\u2026"
            for k, n in enumerate(names)]


def when(t: Any, seconds: bool = False) -> str:
    """A Unix time as local date and minute, ``2024-05-01 14:03``, or to the second
    (``14:03:27``) where several things happen within a minute."""
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return time.strftime(shape, time.localtime(t)) if is_number(t) else DASH
