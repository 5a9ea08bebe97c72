"""The score plot's curve layers: one curve item per (colour band, chunk of bins), each the
min/max envelope of its band's units as one polyline with NaN separators, redrawn chunk by
chunk as checks arrive."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from learndrop.core.monitor import ScoreBins

__all__ = ["CHUNK_BINS", "LOG_FLOOR", "CurveLayer", "banded", "chunk_points"]

#: bins per curve item along x
CHUNK_BINS = 32
#: log-scale floor: scores below it are drawn at it
LOG_FLOOR = 1e-3


def banded(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``y`` (points x units) as one polyline, units separated by NaN."""
    k, n = y.shape[1], y.shape[0]
    yy = np.full((k, n + 1), np.nan)
    yy[:, :-1] = y.T
    xx = np.full((k, n + 1), np.nan)
    xx[:, :-1] = x
    return xx.ravel(), yy.ravel()


def chunk_points(bins: ScoreBins, x: np.ndarray, idx: np.ndarray, before: np.ndarray,
                 units: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """Min then max of each filled bin in the chunk, led by the previous bin's max."""
    y = np.empty((2 * idx.size, units.size))
    y[0::2] = bins.lo[idx][:, units]
    y[1::2] = bins.hi[idx][:, units]
    xs = np.repeat(x[idx], 2)
    if before.size:
        p = before[-1]
        xs = np.concatenate([[x[p]], xs])
        y = np.vstack([bins.hi[p, units][None, :], y])
    if log:
        y = np.log10(np.maximum(y, LOG_FLOOR))
    return banded(xs, y)


class CurveLayer:
    """Curve items of one kind (raw, smoothed or the selected unit) by (group, chunk)."""

    def __init__(self, z: float) -> None:
        self.z = z
        self.items: dict[tuple[int, int], pg.PlotCurveItem] = {}
        self.seen = -1
        self.merges = -1
        self.groups: list[np.ndarray] = []
        self.pens: list[object] = []

    def clear(self, vb: pg.ViewBox) -> None:
        """Take every item off the view box ``vb``; the next update redraws all."""
        for item in self.items.values():
            vb.removeItem(item)
        self.items.clear()
        self.seen, self.merges = -1, -1

    def update(self, bins: ScoreBins, vb: pg.ViewBox, log: bool, visible: bool) -> None:
        """Redraw the chunks that changed in ``bins`` since the last update (all of them
        after the bins merged); new items go on ``vb``, shown when ``visible``."""
        if not self.groups:
            return
        if self.merges != bins.merges:
            changed = np.arange(bins.last_bin + 1)
            for item in self.items.values():
                item.setData([], [])
        else:
            changed = bins.changed_since(self.seen)
        self.seen, self.merges = bins.generation, bins.merges
        if changed.size == 0:
            return
        chunks = set((changed // CHUNK_BINS).tolist())
        last_chunk = bins.last_bin // CHUNK_BINS
        chunks |= {c + 1 for c in chunks if c + 1 <= last_chunk}  # they start where c ends
        x, filled = bins.x(), bins.filled()
        for c in sorted(chunks):
            b0, b1 = c * CHUNK_BINS, min(bins.n_bins, (c + 1) * CHUNK_BINS)
            idx = np.flatnonzero(filled[b0:b1]) + b0
            before = np.flatnonzero(filled[:b0])
            for g, units in enumerate(self.groups):
                xs, ys = chunk_points(bins, x, idx, before, units, log)
                item = self.items.get((g, c))
                if item is None:
                    item = pg.PlotCurveItem(pen=self.pens[g] if g < len(self.pens) else None,
                                            connect="finite")
                    item.setZValue(self.z)
                    item.setVisible(visible)
                    vb.addItem(item, ignoreBounds=True)
                    self.items[(g, c)] = item
                item.setData(xs, ys, connect="finite")
