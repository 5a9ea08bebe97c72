"""Growing buffers and binned score envelopes: the storage behind :class:`RunHistory`.

:class:`GrowingArray` keeps rows in a preallocated float64 buffer that doubles when full, so
an append costs O(width) amortised; :class:`ScoreBins` keeps per-unit min/max/mean in a
fixed number of bins whatever the run's length; :func:`ema_smoothed` smooths score columns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["GrowingArray", "ScoreBins", "ema_smoothed", "ema_run", "ema_step"]


class GrowingArray:
    """Rows of a fixed width in a preallocated float64 buffer that doubles when full."""

    def __init__(self, width: int, capacity: int = 64, fill: float = math.nan) -> None:
        self.width = int(width)
        self._fill = fill
        self._buf = np.full((max(1, capacity), self.width), fill, dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, row: Any) -> None:
        if self._n == self._buf.shape[0]:
            bigger = np.full((2 * self._buf.shape[0], self.width), self._fill, dtype=np.float64)
            bigger[: self._n] = self._buf[: self._n]
            self._buf = bigger
        self._buf[self._n] = row
        self._n += 1

    def view(self) -> np.ndarray:
        """The filled rows, shape (n, width): a view, not a copy."""
        return self._buf[: self._n]

    def column(self, j: int) -> np.ndarray:
        return self._buf[: self._n, j]

    def last(self) -> np.ndarray | None:
        return self._buf[self._n - 1] if self._n else None

    def clear(self) -> None:
        self._n = 0
        self._buf[:] = self._fill


class ScoreBins:
    """Per-unit min, max and mean of the scores in fixed bins along the x axis (epochs).

    The bins cover ``[start, start + span)``; a value beyond doubles the span and merges bins
    pairwise, so memory stays ``n_bins x units`` however long the run gets, and a plot can draw
    the min/max envelope ("peak" downsampling) of any number of checks in O(bins) points.
    Every bin carries the generation in which it last changed, so a view redraws only what
    changed since it last looked (:meth:`changed_since`).
    """

    def __init__(self, n_units: int, n_bins: int = 512, start: float = 0.0,
                 span: float = 1.0) -> None:
        self.n_units, self.n_bins = int(n_units), int(n_bins)
        self.start, self.span = float(start), float(span) if span > 0 else 1.0
        shape = (self.n_bins, self.n_units)
        self.lo = np.full(shape, np.nan)
        self.hi = np.full(shape, np.nan)
        self.total = np.zeros(shape)
        self.count = np.zeros(shape, dtype=np.int64)
        self.xsum = np.zeros(self.n_bins)
        self.xcount = np.zeros(self.n_bins, dtype=np.int64)
        self.gen = np.zeros(self.n_bins, dtype=np.int64)
        self.generation = 0
        self.merges = 0
        self.last_bin = -1

    @property
    def width(self) -> float:
        return self.span / self.n_bins

    @property
    def end(self) -> float:
        return self.start + self.span

    def bin_of(self, x: float) -> int:
        """Bin index of ``x``; the end of the range belongs to the last bin."""
        b = int(np.floor((x - self.start) / self.width))
        return self.n_bins - 1 if b == self.n_bins and x <= self.end else b

    def add(self, x: float, row: np.ndarray) -> None:
        """Add one check's scores (NaN where not scored) at position ``x``: O(units)."""
        b = max(0, self.bin_of(x))
        while b >= self.n_bins:
            self._merge()
            b = max(0, self.bin_of(x))
        finite = ~np.isnan(row)
        np.fmin(self.lo[b], row, out=self.lo[b])
        np.fmax(self.hi[b], row, out=self.hi[b])
        self.total[b] += np.where(finite, row, 0.0)
        self.count[b] += finite
        self.xsum[b] += x
        self.xcount[b] += 1
        self.generation += 1
        self.gen[b] = self.generation
        self.last_bin = max(self.last_bin, b)

    def rebuild(self, xs: np.ndarray, rows: np.ndarray) -> None:
        """Start over from all checks at once (vectorised)."""
        for arr, empty in ((self.lo, np.nan), (self.hi, np.nan), (self.total, 0),
                           (self.count, 0), (self.xsum, 0), (self.xcount, 0)):
            arr[:] = empty
        self.last_bin = -1
        self.generation += 1
        self.gen[:] = self.generation
        if xs.shape[0] == 0:
            return
        while self.bin_of(float(np.max(xs))) >= self.n_bins:
            self.span *= 2
            self.merges += 1
        b = np.clip(np.floor((xs - self.start) / self.width).astype(np.int64), 0,
                    self.n_bins - 1)
        np.fmin.at(self.lo, b, rows)
        np.fmax.at(self.hi, b, rows)
        finite = ~np.isnan(rows)
        np.add.at(self.total, b, np.where(finite, rows, 0.0))
        np.add.at(self.count, b, finite)
        np.add.at(self.xsum, b, xs)
        np.add.at(self.xcount, b, 1)
        self.generation += 1
        self.gen[:] = self.generation
        self.last_bin = int(b.max())

    def _merge(self) -> None:
        half = self.n_bins // 2
        for extreme, op in ((self.lo, np.fmin), (self.hi, np.fmax)):
            extreme[:half] = op(extreme[0::2], extreme[1::2])
            extreme[half:] = np.nan
        summed: tuple[np.ndarray, ...] = (self.total, self.count, self.xsum, self.xcount)
        for arr in summed:
            arr[:half] = arr[0::2] + arr[1::2]
            arr[half:] = 0
        self.span *= 2
        self.merges += 1
        self.last_bin = self.last_bin // 2 if self.last_bin >= 0 else -1
        self.generation += 1
        self.gen[:] = self.generation

    def filled(self) -> np.ndarray:
        return self.xcount > 0

    def x(self) -> np.ndarray:
        """Mean x of the checks in each bin (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.xcount > 0, self.xsum / np.maximum(self.xcount, 1), np.nan)

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)

    def changed_since(self, generation: int) -> np.ndarray:
        """Indices of the bins that changed after ``generation``."""
        return np.flatnonzero(self.gen > generation)


def ema_smoothed(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average along axis 0: ``y = alpha * x + (1 - alpha) * y_prev``.

    ``alpha`` is the weight of the newest value (1 = no smoothing). NaN inputs give NaN
    outputs and leave the running average untouched, so a column may start late or stop early.
    Works on 1-D arrays and on (rows x columns) matrices, one loop over rows.
    """
    x = np.asarray(values, dtype=np.float64)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    flat = x.reshape(x.shape[0], -1) if x.ndim else x.reshape(1, 1)
    out, _ = ema_run(flat, alpha)
    return out.reshape(x.shape)


def ema_run(rows: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed rows and the final running state (one value per column)."""
    out = np.full_like(rows, np.nan)
    state = np.full(rows.shape[1], np.nan)
    for r in range(rows.shape[0]):
        state = ema_step(state, rows[r], alpha)
        out[r] = np.where(np.isnan(rows[r]), np.nan, state)
    return out, state


def ema_step(state: np.ndarray, row: np.ndarray, alpha: float) -> np.ndarray:
    fresh = np.isnan(state)
    blended = alpha * row + (1.0 - alpha) * state
    new = np.where(fresh, row, blended)
    return np.where(np.isnan(row), state, new)
