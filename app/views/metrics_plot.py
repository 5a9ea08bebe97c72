"""Loss and accuracy over training: train and validation per epoch, plus the batch loss."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget

from learndrop.core.monitor import RunHistory

from ..theme import Theme, apply_plot_theme, current_theme
from ._plot_state import line_legend, show_axis_values
from .action_marks import ActionMarks, RestoreMarks

__all__ = ["MetricsPlot"]

# epoch table columns in RunHistory.epochs
_EPOCH_X, _TRAIN_LOSS, _TRAIN_ACC, _VAL_LOSS, _VAL_ACC, _VAL_SCALED = 1, 2, 3, 4, 5, 6


def _nice_ceil(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    return next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= value * (1 - 1e-12))


#: the legend's names where the plot is too narrow for the full ones
_SHORT = {"batch loss": "batch", "validation": "val.", "validation (scaled-down)": "val. scaled"}


class MetricsPlot(QWidget):
    """Two stacked plots sharing the epoch axis: loss on top, accuracy below."""

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self._drawn_key: tuple[int, int] = (-1, -1)
        self._span: tuple[float, float] = (0.0, 0.0)
        self._y_ranges: tuple[tuple[float, float], tuple[float, float]] = ((0, 0), (0, 0))

        self.view = pg.GraphicsLayoutWidget()
        self.loss_plot = self.view.addPlot(row=0, col=0)
        self.acc_plot = self.view.addPlot(row=1, col=0)
        self.acc_plot.setXLink(self.loss_plot)
        self._legend_pt = max(7.0, self.font().pointSizeF() * 0.85)
        self._legends: tuple[object, ...] = ()
        for plot, label in ((self.loss_plot, "loss"), (self.acc_plot, "accuracy")):
            plot.setMenuEnabled(False)
            plot.setLabel("left", label)
            plot.getAxis("bottom").enableAutoSIPrefix(False)
            plot.getAxis("left").enableAutoSIPrefix(False)
            # one width for both left axes: the linked x axes then read the same epochs
            plot.getAxis("left").setWidth(int(self.fontMetrics().height() * 3.4))
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
        self.acc_plot.setLabel("bottom", "epoch")
        self.batch_loss = self.loss_plot.plot(name="batch loss")
        self.train_loss = self.loss_plot.plot(name="train", symbol="o")
        self.val_loss = self.loss_plot.plot(name="validation", symbol="s")
        self.train_acc = self.acc_plot.plot(name="train", symbol="o")
        self.val_acc = self.acc_plot.plot(name="validation", symbol="s")
        self.val_scaled = self.acc_plot.plot(name="validation (scaled-down)", symbol="t")
        self.val_scaled.setVisible(False)
        # the user's pins, pauses, resumes and stops, on both plots
        self.action_marks = [ActionMarks(self.loss_plot, self, self.theme),
                             ActionMarks(self.acc_plot, self, self.theme, labelled=False)]
        # the drops the policy undid: the loss rise that undid them shows on the loss plot
        self.restore_marks = [RestoreMarks(self.loss_plot, self, self.theme),
                              RestoreMarks(self.acc_plot, self, self.theme, labelled=False)]

        # two plots that stay readable when the window is small
        self.view.setMinimumHeight(self.fontMetrics().height() * 13)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.restyle()

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        apply_plot_theme(self.view, self.theme)
        for marks in self.restore_marks:
            marks.restyle(self.theme)
        t = self.theme
        train = t.states["learning"]
        val = t.threshold
        size = max(5.0, self.fontMetrics().height() * 0.4)
        self.batch_loss.setPen(pg.mkPen(t.faded(train, 110), width=1))
        for item, color, dashed in ((self.train_loss, train, False), (self.val_loss, val, False),
                                    (self.train_acc, train, False), (self.val_acc, val, False),
                                    (self.val_scaled, t.states["pinned"], True)):
            style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
            item.setPen(pg.mkPen(color, width=2, style=style))
            item.setSymbolBrush(pg.mkBrush(color))
            item.setSymbolPen(pg.mkPen(color))
            item.setSymbolSize(size)
        self._legends = ()
        self._drawn_key = (-1, -1)

    def reset(self) -> None:
        for item in (self.batch_loss, self.train_loss, self.val_loss, self.train_acc,
                     self.val_acc, self.val_scaled):
            item.setData([], [])
        for marks in (*self.action_marks, *self.restore_marks):
            marks.clear()
        self._show_scaled(False)
        self._drawn_key = (-1, -1)
        self._span = (0.0, 0.0)
        self._y_ranges = ((0, 0), (0, 0))

    def _show_scaled(self, on: bool) -> None:
        """The scaled-down network's accuracy exists only in skip mode."""
        self.val_scaled.setVisible(on)

    def _update_legends(self) -> None:
        """Each plot's legend above it, naming the series that have data (none when empty),
        and axis numbers only on a plot with data."""
        marks = {"o": "●", "s": "■", "t": "▲"}
        shown = []
        for plot, items in ((self.loss_plot, (self.batch_loss, self.train_loss,
                                              self.val_loss)),
                            (self.acc_plot, (self.train_acc, self.val_acc, self.val_scaled))):
            entries = []
            for item in items:
                x, _y = item.getData()
                if item.isVisible() and x is not None and len(x):
                    name = item.name() or ""
                    entries.append((item.opts["pen"].color(),
                                    marks.get(str(item.opts.get("symbol")), ""), name,
                                    _SHORT.get(name, name)))
            shown.append((plot, entries))
        key: tuple[object, ...] = (self.theme.foreground.name(), self.width(), *(
            (id(p), tuple((c.name(), m, n) for c, m, n, _s in e)) for p, e in shown))
        if key == self._legends:
            return
        self._legends = key
        for plot, entries in shown:  # over the plot's area, right of its left axis
            room = self.width() - plot.getAxis("left").width() - 2 * self._margin()
            line_legend(plot, entries, self.theme.foreground, self._legend_pt, room)
        has_run = self.history.fit_start is not None
        show_axis_values(self.loss_plot, has_run)
        show_axis_values(self.acc_plot, has_run)

    def refresh(self, force: bool = False) -> None:
        h = self.history
        for marks in (*self.action_marks, *self.restore_marks):
            marks.update()
        key = (len(h.progress), len(h.epochs))
        if key == self._drawn_key and not force:
            return
        progress_changed = force or key[0] != self._drawn_key[0]
        epochs_changed = force or key[1] != self._drawn_key[1]
        self._drawn_key = key
        span = (h.bins.start, h.bins.end)
        if span != self._span:  # the planned run: the x axis stays put while it fills
            self._span = span
            self.loss_plot.setXRange(*span, padding=0.01)
        if progress_changed and len(h.progress):
            p = h.progress.view()
            self.batch_loss.setData(p[:, 1], p[:, 2])
        ep = h.epochs.view()
        if epochs_changed and ep.shape[0]:
            x = ep[:, _EPOCH_X]
            self.train_loss.setData(x, ep[:, _TRAIN_LOSS])
            self.val_loss.setData(x, ep[:, _VAL_LOSS])
            self.train_acc.setData(x, ep[:, _TRAIN_ACC])
            self.val_acc.setData(x, ep[:, _VAL_ACC])
            scaled = ep[:, _VAL_SCALED]
            has_scaled = bool(np.isfinite(scaled).any())
            self._show_scaled(has_scaled)
            if has_scaled:
                self.val_scaled.setData(x, scaled, connect="finite")
        self._sync_y_ranges()
        self._update_legends()

    def _sync_y_ranges(self) -> None:
        """Y ranges that move in steps, not with every point: a still axis is not repainted."""
        h = self.history
        ep = h.epochs.view()
        losses = [h.progress.view()[:, 2], ep[:, _TRAIN_LOSS], ep[:, _VAL_LOSS]]
        accs = [ep[:, _TRAIN_ACC], ep[:, _VAL_ACC], ep[:, _VAL_SCALED]]
        loss = np.concatenate(losses)
        loss = loss[np.isfinite(loss)]
        acc = np.concatenate(accs)
        acc = acc[np.isfinite(acc)]
        loss_range = (0.0, _nice_ceil(float(loss.max()) * 1.05)) if loss.size else (0.0, 1.0)
        if acc.size:  # fractions (0..1) or percent, in steps of a tenth of the scale
            step = 0.1 if acc.max() <= 1.5 else 10.0
            acc_range = (math.floor(float(acc.min()) / step) * step,
                         math.ceil(float(acc.max()) / step - 1e-9) * step)
        else:
            acc_range = (0.0, 1.0)
        if (loss_range, acc_range) != self._y_ranges:
            self._y_ranges = (loss_range, acc_range)
            self.loss_plot.setYRange(*loss_range, padding=0.02)
            self.acc_plot.setYRange(*acc_range, padding=0.02)

    def _margin(self) -> int:
        return self.fontMetrics().height()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """The legends take the wording that fits the new width."""
        super().resizeEvent(event)
        self._update_legends()

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of one curve: batch_loss, train_loss, val_loss, train_acc, val_acc."""
        curves = {"batch_loss": self.batch_loss, "train_loss": self.train_loss,
                  "val_loss": self.val_loss, "train_acc": self.train_acc,
                  "val_acc": self.val_acc, "val_scaled": self.val_scaled}
        x, y = curves[name].getOriginalDataset()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)
