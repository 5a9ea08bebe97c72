"""Learning scores as an image: one row per unit (input at the top), time along x (epochs).

A single :class:`pyqtgraph.ImageItem` with fixed levels 0..1 shows the whole run. Up to
:attr:`ScoreBins.n_bins` checks it shows one column per check, each spanning the interval its
score measures; a longer run is shown through the history's bins (mean score per bin), so the
image never grows past a few hundred columns. A row per scored unit (the head has no score,
so no row); cells without a score (a dropped unit) are grey, the grey of the reports, and a
step line marks the dropped prefix over time. A colour bar explains the colours.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QVBoxLayout, QWidget

from learndrop.core.monitor import RunHistory
from learndrop.core.report import EMPTY_CELL

from ..theme import Theme, apply_plot_theme, current_theme, score_colormap
from ._plot_state import show_axis_values

__all__ = ["HeatmapView"]

#: unit names on the y axis: all of them up to this many units, else every k-th
MAX_TICKS = 40


class HeatmapView(QWidget):
    """Unit-by-time image of learning scores with the dropped-prefix boundary."""

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self._drawn_key: tuple[int, ...] = (-1, -1)
        self._range_key: tuple[float, float, int] = (0.0, 0.0, -1)

        self.view = pg.GraphicsLayoutWidget()
        self.plot = self.view.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "unit")
        self.image = pg.ImageItem(axisOrder="col-major")
        # under the image: its cells without a score (NaN, transparent) show this grey
        self.backdrop = QGraphicsRectItem()
        self.backdrop.setBrush(QBrush(QColor(EMPTY_CELL)))
        self.backdrop.setPen(QPen(Qt.PenStyle.NoPen))
        self.backdrop.setZValue(-1)
        self.backdrop.setVisible(False)
        self.plot.addItem(self.backdrop)
        self.plot.addItem(self.image)
        self.boundary = pg.PlotDataItem(stepMode="center")
        self.boundary.setZValue(10)
        self.plot.addItem(self.boundary)
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=score_colormap(),
                                        interactive=False, label="learning score",
                                        width=max(12, self.fontMetrics().height()))
        self.colorbar.setImageItem(self.image, insert_in=self.plot)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.restyle()

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        apply_plot_theme(self.view, self.theme)
        self.boundary.setPen(pg.mkPen(self.theme.foreground, width=2))
        self._drawn_key = (-1, -1)

    def reset(self) -> None:
        self.image.clear()
        self.backdrop.setVisible(False)
        self.boundary.setData([], [])
        self._drawn_key = (-1, -1)
        self._range_key = (0.0, 0.0, -1)
        self._set_unit_ticks()

    def image_shape(self) -> tuple[int, ...]:
        """Shape of the image shown: (columns, units), or () when empty."""
        img = self.image.image
        return () if img is None else tuple(img.shape)

    def refresh(self, force: bool = False) -> None:
        h = self.history
        key = (h.n_checks(), len(h.drops), len(h.restores))
        if key == self._drawn_key and not force:
            return
        self._drawn_key = key
        bins = h.bins
        n = h.n_checks()
        show_axis_values(self.plot, h.fit_start is not None, ("bottom",))
        rows = self._rows()
        if n == 0 or not rows:
            self.image.clear()
            self.backdrop.setVisible(False)
            self.boundary.setData([], [])
            return
        epochs = h.check_epochs()
        start = min(bins.start, float(epochs[0]))
        if n <= bins.n_bins:
            image = h.score_matrix()
            left, right = start, float(epochs[-1])
        else:
            image = self._binned(h)
            left, right = bins.start, bins.start + (bins.last_bin + 1) * bins.width
        if right <= left:
            right = left + bins.width
        image = image[:, rows]
        self.image.setImage(image, levels=(0.0, 1.0), autoLevels=False)
        self.image.setRect(left, 0.0, right - left, float(len(rows)))
        self.backdrop.setRect(left, 0.0, right - left, float(len(rows)))
        self.backdrop.setVisible(True)
        self._draw_boundary(start, epochs, h.prefix_at_checks(), right,
                            min(h.dropped_prefix_len(), len(rows)))
        range_key = (bins.start, bins.end, len(rows))
        if range_key != self._range_key:
            self._range_key = range_key
            self.plot.setXRange(bins.start, bins.end, padding=0.01)
            self.plot.setYRange(0, len(rows), padding=0)

    def row_names(self) -> list[str]:
        """The units with a row, top to bottom."""
        return [self.history.units[i].name for i in self._rows()]

    def _rows(self) -> list[int]:
        """The units with a row: every unit but the head, which has no learning score."""
        return [u.index for u in self.history.units if not u.is_head]

    @staticmethod
    def _binned(h: RunHistory) -> np.ndarray:
        """Mean score per bin up to the last filled one, empty bins showing the one before."""
        bins = h.bins
        last = bins.last_bin + 1
        filled = bins.filled()[:last]
        src = np.maximum.accumulate(np.where(filled, np.arange(last), 0))
        return bins.mean()[:last][src]

    def _draw_boundary(self, start: float, epochs: np.ndarray, prefix: np.ndarray,
                       right: float, now: int) -> None:
        """The dropped prefix over time as a step line: below it, the dropped units; the
        prefix dropped after the last check is drawn at that check (``now``)."""
        if now > (int(prefix[-1]) if prefix.size else 0):
            prefix = np.concatenate([prefix, [now]])
            epochs = np.concatenate([epochs, [max(right, float(epochs[-1]))]])
        if prefix.size == 0 or not prefix.any():
            self.boundary.setData([], [])
            return
        change = np.flatnonzero(np.diff(prefix)) + 1  # first check of each new prefix length
        first = np.concatenate([[0], change])
        lefts = np.concatenate([[start], epochs[change - 1]])
        x = np.concatenate([lefts, [epochs[-1]]]).astype(np.float64)
        self.boundary.setData(x, prefix[first].astype(np.float64), stepMode="center")

    def _set_unit_ticks(self) -> None:
        units = [u for u in self.history.units if not u.is_head]
        every = max(1, int(np.ceil(len(units) / MAX_TICKS)))
        ticks = [(row + 0.5, u.name) for row, u in enumerate(units) if row % every == 0]
        self.plot.getAxis("left").setTicks([ticks, []])
