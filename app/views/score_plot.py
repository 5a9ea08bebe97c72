"""Learning score of every unit over training, coloured by depth.

Hundreds of long curves are slow to draw if every new check repaints all of them, so this view
draws from the history's :class:`~learndrop.core.monitor.ScoreBins`: the min/max envelope of
the scores in a fixed number of bins over the planned run (peak downsampling done once, as
checks arrive). The x range is the whole planned run and stays put, and the curves are cut
into chunks of bins, one curve item per (colour band, chunk): a new check changes only the
last chunk's items, so Qt repaints a thin strip at the right end instead of the whole plot.
Neighbouring units share a colour band (at most :data:`MAX_BANDS`), their curves joined in one
item with NaN separators.

Eleven or more curves are a tangle, so hovering the plot names the unit whose curve is nearest
the cursor (a readout with its score and epoch) and draws that curve bold. Smoothing is an
exponential moving average over a chosen number of checks; with it on, the drop markers sit
on the smoothed curves.

The curve layers live in :mod:`._score_curves`, the search for the hovered curve in
:mod:`._score_hover`.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from learndrop.core.monitor import RunHistory, ScoreBins

from ..theme import (
    Theme,
    apply_plot_theme,
    current_theme,
    depth_colors,
    depth_gradient_css,
)
from ._plot_state import show_axis_values
from ._score_curves import CHUNK_BINS, LOG_FLOOR, CurveLayer
from ._score_hover import nearest_curve
from ._score_legend import ScoreLegend
from .action_marks import ActionMarks, RestoreMarks

__all__ = ["CHUNK_BINS", "MAX_BANDS", "DEFAULT_SPAN", "ScorePlot"]

#: the most colour bands (curve items per chunk) used for the units
MAX_BANDS = 16
#: checks the moving average spans by default (its weight of the newest check: 2 / (span + 1))
DEFAULT_SPAN = 6


class ScorePlot(QWidget):
    """Per-unit learning-score curves, threshold line, drop markers, log and EMA toggles."""

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self._bands: list[np.ndarray] = []
        self._selected: int | None = None
        self._drawn_key: tuple[object, ...] = ()
        self._range_key: tuple[float, float] = (math.nan, math.nan)
        self.raw, self.smooth, self.selection = CurveLayer(1), CurveLayer(2), CurveLayer(10)
        self._smooth_state = False
        self._y_bottom = math.nan

        self.log_box = QCheckBox("Log scale")
        self.log_box.setToolTip("Scores on a logarithmic axis: small scores near the drop "
                                "threshold spread out, so a unit settling is easier to see")
        self.smooth_box = QCheckBox("Smooth")
        self.smooth_box.setToolTip("Draw each score's exponential moving average over the "
                                   "number of checks on the right (the raw scores fade); drop "
                                   "markers then sit on the smoothed curves")
        self.span_box = QSpinBox()
        self.span_box.setRange(2, 100)
        self.span_box.setValue(DEFAULT_SPAN)
        self.span_box.setSuffix(" checks")
        self.span_box.setToolTip("Smoothing strength: the moving average spans about this "
                                 "many checks (more: smoother, slower to follow)")
        self.span_box.setEnabled(False)
        self.log_box.toggled.connect(self._on_log_toggled)
        self.smooth_box.toggled.connect(self._on_smooth_toggled)
        self.span_box.valueChanged.connect(self._on_span_changed)
        self.depth_bar = QLabel()
        self.depth_bar.setMinimumWidth(self.fontMetrics().averageCharWidth() * 6)
        self.depth_bar.setFixedHeight(max(6, self.fontMetrics().height() // 2))
        self.depth_bar.setToolTip("Colour = depth: curves go from blue at the input to orange "
                                  "at the output")
        top = QHBoxLayout()
        top.addWidget(self.log_box)
        top.addWidget(self.smooth_box)
        top.addWidget(self.span_box)
        top.addStretch(1)
        # the colour legend: its own widget, so that a narrow window can show it elsewhere
        # (the live panel puts it beside the tabs)
        self.depth_legend = QWidget()
        legend = QHBoxLayout(self.depth_legend)
        legend.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("input"), self.depth_bar, QLabel("output")):
            w.setToolTip(self.depth_bar.toolTip())
            legend.addWidget(w)
        top.addWidget(self.depth_legend)

        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "learning score")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        # no grid: axis grid lines make the axes span the plot, so every new point would
        # repaint the axes and their labels too
        self.plot.setMenuEnabled(False)
        self.threshold_line = pg.InfiniteLine(angle=0, movable=False)
        self.threshold_label = pg.InfLineLabel(self.threshold_line, text="", position=0.02,
                                               anchors=[(0, 1), (0, 1)])
        self.plot.addItem(self.threshold_line, ignoreBounds=True)
        self.threshold_line.setZValue(15)
        # one small item per unit, made up front: showing a drop's marker repaints its own
        # spot, where adding an item (or a point to a shared one) repaints the whole plot
        self._marker_items: dict[int, pg.ScatterPlotItem] = {}
        self._markers: list[pg.ScatterPlotItem] = []
        self._drops_shown = 0
        # the hover readout: the nearest curve's unit, score and epoch, and that curve bold
        self.readout = pg.TextItem("", anchor=(0, 1))
        self.readout.setZValue(30)
        self.readout.setVisible(False)
        self.plot.vb.addItem(self.readout, ignoreBounds=True)
        self.hover_curve = pg.PlotCurveItem(connect="finite")
        self.hover_curve.setZValue(12)
        self.plot.vb.addItem(self.hover_curve, ignoreBounds=True)
        self.hovered: int | None = None
        legend_pt = f"{max(7.0, self.font().pointSizeF() * 0.85):.1f}pt"
        self.legend = ScoreLegend(self.plot, legend_pt)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.action_marks = ActionMarks(self.plot, self, self.theme)  # pins, pauses, stops
        self.restore_marks = RestoreMarks(self.plot, self, self.theme)  # drops undone

        self.plot_widget.setMinimumHeight(self.fontMetrics().height() * 9)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot_widget, 1)
        self.restyle()
        self._apply_y_range()

    # ---- public ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop all curve items and set up colour bands for the history's units."""
        for layer in (self.raw, self.smooth, self.selection):
            layer.clear(self.plot.vb)
        scored = np.array([u.index for u in self.history.units if not u.is_head], dtype=int)
        nb = min(len(scored), MAX_BANDS)
        edges = np.linspace(0, len(scored), nb + 1).round().astype(int) if nb else np.zeros(1)
        self._bands = [scored[a:b] for a, b in pairwise(edges.tolist()) if b > a]
        self.raw.groups = self.smooth.groups = self._bands
        self.history.smoothed_score_matrix(self.alpha)
        self.set_hovered(None)
        self._selected = None
        self.selection.groups = []
        self._drawn_key = ()
        self._range_key = (math.nan, math.nan)
        self._y_bottom = math.nan  # a new run is fitted whole, whatever was zoomed before
        self._apply_y_range()
        self._clear_markers()
        for m in self._marker_items.values():
            self.plot.vb.removeItem(m)
        self._marker_items = {}
        self.action_marks.clear()
        self.restore_marks.clear()
        for i in scored.tolist():
            m = pg.ScatterPlotItem(symbol="o")
            m.setZValue(20)
            m.setVisible(False)
            self.plot.vb.addItem(m, ignoreBounds=True)
            self._marker_items[i] = m
        self._restyle_curves()

    def curve_count(self) -> int:
        """Colour bands (curve items per chunk) used for the units."""
        return len(self._bands)

    def item_count(self) -> int:
        return len(self.raw.items)

    def units_drawn(self) -> int:
        return int(sum(len(b) for b in self._bands))

    def marker_count(self) -> int:
        return len(self._markers)

    def marker_positions(self) -> list[tuple[float, float]]:
        return [(float(m.data["x"][0]), float(m.data["y"][0])) for m in self._markers]

    def unit_curve(self, i: int, smoothed: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) drawn for unit ``i``, all chunks joined (for inspection and tests)."""
        layer = self.smooth if smoothed else self.raw
        g = next(k for k, band in enumerate(layer.groups) if i in band)
        j = int(np.flatnonzero(layer.groups[g] == i)[0])
        k = len(layer.groups[g])
        xs, ys = [], []
        for (gg, _c), item in sorted(layer.items.items(), key=lambda kv: kv[0][1]):
            if gg != g:
                continue
            x, y = item.getData()
            if x is None or len(x) == 0:
                continue
            xs.append(x.reshape(k, -1)[j, :-1])
            ys.append(y.reshape(k, -1)[j, :-1])
        return (np.concatenate(xs), np.concatenate(ys)) if xs else (np.array([]), np.array([]))

    def set_selected(self, name: str | None) -> None:
        self._selected = None if name is None else self.history.unit_index(name)
        self.selection.clear(self.plot.vb)
        self.selection.groups = [] if self._selected is None else [np.array([self._selected])]
        self._restyle_curves()

    def set_log_scale(self, on: bool) -> None:
        self.log_box.setChecked(on)

    def set_smoothing(self, on: bool) -> None:
        self.smooth_box.setChecked(on)

    def set_smoothing_span(self, checks: int) -> None:
        self.span_box.setValue(checks)

    @property
    def alpha(self) -> float:
        """The moving average's weight of the newest check."""
        return 2.0 / (self.span_box.value() + 1)

    def view_options(self) -> dict[str, object]:
        """The reader's choices (log scale, smoothing and its span), to restore later."""
        return {"log_scale": self.log_box.isChecked(), "smooth": self.smooth_box.isChecked(),
                "smooth_checks": self.span_box.value()}

    def set_view_options(self, options: dict[str, object]) -> None:
        """Restore :meth:`view_options` (unknown or damaged values are left as they are)."""
        span = options.get("smooth_checks")
        if isinstance(span, int) and not isinstance(span, bool):
            self.set_smoothing_span(span)
        for key, box in (("log_scale", self.log_box), ("smooth", self.smooth_box)):
            if isinstance(options.get(key), bool):
                box.setChecked(bool(options[key]))

    # ---- hover readout -----------------------------------------------------------------------
    def curve_near(self, x: float, y: float) -> tuple[int, float, float] | None:
        """The unit whose drawn curve passes nearest (``x``, ``y``) in plot coordinates, with
        its epoch and score at the check nearest ``x``; None when no curve is near."""
        bottom, top = self.plot.vb.viewRange()[1]
        return nearest_curve(self.history, x, y, self.smooth_box.isChecked(),
                             self.log_box.isChecked(), top - bottom)

    def set_hovered(self, unit: int | None, x: float = 0.0, y: float = 0.0) -> None:
        """Name unit ``unit`` at (``x``, ``y``) and draw its curve bold (None: nobody)."""
        self.hovered = unit
        if unit is None:
            self.readout.setVisible(False)
            self.hover_curve.setData([], [])
            return
        h = self.history
        found = self.curve_near(x, y)
        epoch, score = (found[1], found[2]) if found and found[0] == unit else (x, math.nan)
        self.readout.setText(f"{h.units[unit].name}: {score:.3f} at epoch {epoch:.2f}"
                             if math.isfinite(score) else h.units[unit].name)
        left, right = self.plot.vb.viewRange()[0]
        # on the cursor's left in the right half of the plot, so it is never cut off
        self.readout.setAnchor((1, 1) if x > (left + right) / 2 else (0, 1))
        self.readout.setPos(x, y)
        self.readout.setVisible(True)
        xs, ys = h.unit_scores(unit)
        if self.smooth_box.isChecked():
            ys = h.smoothed_score_matrix()[: len(xs), unit]
        ys = np.asarray(ys, dtype=np.float64)
        if self.log_box.isChecked():
            ys = np.log10(np.maximum(ys, LOG_FLOOR))
        colors = depth_colors(len(h.units), self.theme)
        self.hover_curve.setPen(pg.mkPen(colors[unit], width=3))
        self.hover_curve.setData(np.asarray(xs, dtype=np.float64), ys, connect="finite")

    def readout_text(self) -> str:
        return self.readout.textItem.toPlainText() if self.readout.isVisible() else ""

    def _on_mouse_moved(self, pos: QPointF) -> None:
        if not self.plot.sceneBoundingRect().contains(pos):
            if self.hovered is not None:
                self.set_hovered(None)
            return
        point = self.plot.vb.mapSceneToView(pos)
        found = self.curve_near(point.x(), point.y())
        if found is None:
            if self.hovered is not None:
                self.set_hovered(None)
            return
        self.set_hovered(found[0], point.x(), point.y())

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        apply_plot_theme(self.plot_widget, self.theme)
        self.restore_marks.restyle(self.theme)
        pen = pg.mkPen(self.theme.threshold, width=1.5, style=Qt.PenStyle.DashLine)
        self.threshold_line.setPen(pen)
        self.threshold_label.setColor(self.theme.threshold)
        self.threshold_label.fill = pg.mkBrush(self.theme.faded(self.theme.background, 200))
        self.depth_bar.setStyleSheet(f"background: {depth_gradient_css(self.theme)};"
                                     "border-radius: 2px;")
        # the readout on a background of its own, over the curves as over the white
        self.readout.setColor(self.theme.foreground)
        self.readout.fill = pg.mkBrush(self.theme.faded(self.theme.background, 245))
        self.readout.border = pg.mkPen(self.theme.faded(self.theme.foreground, 90))
        self._restyle_curves()

    def refresh(self, force: bool = False) -> None:
        """Redraw what changed in the history since the last time."""
        h = self.history
        if not self._bands and h.units:
            self.reset()
        if force:
            for layer in (self.raw, self.smooth, self.selection):
                layer.merges = -1
        self._sync_x_range(h.bins)
        self.legend.update(h, self.theme)
        show_axis_values(self.plot, h.fit_start is not None)
        if self.log_box.isChecked():
            self._apply_y_range()
        smooth = self.smooth_box.isChecked()
        self._update_layer(self.raw, h.bins)
        if smooth:
            self._update_layer(self.smooth, h.smooth_bins)
        if self.selection.groups:
            self._update_layer(self.selection, h.smooth_bins if smooth else h.bins)
        key = (h.threshold, self.log_box.isChecked(), self.theme.dark, smooth, self.alpha)
        if key != self._drawn_key:
            self._drawn_key = key
            self._clear_markers()
            self._draw_threshold()
        self._add_markers()
        self.action_marks.update()
        self.restore_marks.update()

    # ---- curve layers ------------------------------------------------------------------------
    def _restyle_curves(self) -> None:
        """Pens for every layer (smoothing fades the raw curves), then a full redraw."""
        colors = depth_colors(len(self.history.units), self.theme)
        smooth = self.smooth_box.isChecked()
        if smooth != self._smooth_state:  # the selected curve switches its source
            self._smooth_state = smooth
            self.selection.clear(self.plot.vb)
        # one-pixel pens: Qt strokes wider polylines segment by segment, many times slower
        band_colors = [colors[int(b[len(b) // 2])] for b in self._bands] if colors else []
        self.raw.pens = [pg.mkPen(self.theme.faded(c, 60) if smooth else c, width=1)
                         for c in band_colors]
        self.smooth.pens = [pg.mkPen(c, width=1) for c in band_colors]
        self.selection.pens = ([pg.mkPen(colors[self._selected], width=3)]
                               if self._selected is not None and colors else [])
        for layer in (self.raw, self.smooth, self.selection):
            for (g, _c), item in layer.items.items():
                if g < len(layer.pens):
                    item.setPen(layer.pens[g])
        for item in self.smooth.items.values():
            item.setVisible(smooth)
        self.refresh()

    def _update_layer(self, layer: CurveLayer, bins: ScoreBins) -> None:
        layer.update(bins, self.plot.vb, self.log_box.isChecked(),
                     visible=layer is not self.smooth or self.smooth_box.isChecked())

    def _sync_x_range(self, bins: ScoreBins) -> None:
        key = (bins.start, bins.end)
        if key != self._range_key:
            self._range_key = key
            self.plot.setXRange(bins.start, bins.end, padding=0.01)

    # ---- markers and threshold ---------------------------------------------------------------
    def _clear_markers(self) -> None:
        for m in self._markers:
            m.setVisible(False)
        self._markers.clear()
        self._drops_shown = 0

    def _add_markers(self) -> None:
        """A marker for each drop not shown yet, at its epoch and score, coloured by depth."""
        h = self.history
        if self._drops_shown > len(h.drops):
            self._clear_markers()
        if self._drops_shown == len(h.drops):
            return
        colors = depth_colors(len(h.units), self.theme)
        size = max(7.0, self.fontMetrics().height() * 0.55)
        pen = pg.mkPen(self.theme.foreground, width=1.2)
        new = h.drops[self._drops_shown:]
        self._drops_shown = len(h.drops)
        smoothed = h.smoothed_score_matrix() if self.smooth_box.isChecked() else None
        for d in new:
            m = self._marker_items.get(d.index)
            if m is None:
                continue
            y = 0.0 if d.score is None else d.score
            if smoothed is not None and 0 < d.check <= smoothed.shape[0]:
                value = smoothed[d.check - 1, d.index]  # on the smoothed curve, at its end
                y = float(value) if np.isfinite(value) else y
            if self.log_box.isChecked():
                y = math.log10(max(y, LOG_FLOOR))
            m.setData([d.epoch], [y], size=size, pen=pen, brush=pg.mkBrush(colors[d.index]),
                      symbol="o")
            m.setToolTip(f"{d.name} dropped at epoch {d.epoch:.2f}"
                         f"{'' if d.score is None else f' (score {d.score:.3f})'}")
            m.setVisible(True)
            self._markers.append(m)

    def _draw_threshold(self) -> None:
        thr = self.history.threshold
        if not math.isfinite(thr) or thr <= 0:
            self.threshold_line.setVisible(False)
            return
        self.threshold_line.setVisible(True)
        self.threshold_line.setPos(math.log10(thr) if self.log_box.isChecked() else thr)
        self.threshold_label.setFormat(f"threshold {thr:g}")

    def _on_smooth_toggled(self, on: bool) -> None:
        self.span_box.setEnabled(on)
        self.set_hovered(None)
        self._restyle_curves()

    def _on_span_changed(self, _checks: int) -> None:
        self.history.smoothed_score_matrix(self.alpha)  # recomputed once for the new span
        self.set_hovered(None)
        self.refresh(force=True)

    def _on_log_toggled(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self._y_bottom = math.nan
        self._apply_y_range()
        self.refresh(force=True)

    def _apply_y_range(self) -> None:
        """0..1, or in log scale from the decade of the lowest score (at least 1e-3) to 1."""
        if self.log_box.isChecked():
            lo = np.nanmin(self.history.bins.lo) if self.history.bins.last_bin >= 0 else 1.0
            low = max(math.log10(LOG_FLOOR),
                      math.floor(math.log10(lo)) if np.isfinite(lo) and lo > 0 else -1.0)
            bottom = min(low, -1.0)
        else:
            bottom = 0.0
        if bottom != self._y_bottom:
            self._y_bottom = bottom
            top = 0.05 if self.log_box.isChecked() else 1.05
            self.plot.setYRange(bottom, top, padding=0.02)
