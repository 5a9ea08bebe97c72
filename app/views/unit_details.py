"""Details of the selected unit: its numbers, its own learning-score history, and why it has
not dropped yet: each condition of the drop rule with its value now (the engine's rule,
through :meth:`RunHistory.why_not_yet`)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from learndrop.core.format import DASH
from learndrop.core.format import count as format_count
from learndrop.core.format import percent as format_percent
from learndrop.core.monitor import RunHistory

from ..theme import STATE_LABELS, Theme, apply_plot_theme, current_theme, depth_colors
from .why_text import why_html

__all__ = ["UnitDetails"]


class UnitDetails(QWidget):
    """Shows one unit (set with :meth:`set_unit`); empty until a unit is selected."""

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self.unit: str | None = None
        self._drawn_key: tuple[object, ...] = ()

        self.title = QLabel("Click a unit in the strip to see its details")
        bold = QFont(self.font())
        bold.setBold(True)
        self.title.setFont(bold)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setVerticalSpacing(1)
        for key, label in (("state", "State"), ("params", "Parameters"),
                           ("flops", "Forward FLOPs"), ("score", "Latest score"),
                           ("trend", "Trend"), ("streak", "Settled for"),
                           ("dropped", "Dropped")):
            value = QLabel(DASH)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = value
            form.addRow(label + ":", value)
        self.why = QLabel(DASH)
        self.why.setTextFormat(Qt.TextFormat.RichText)
        self.why.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.why.setToolTip("Each condition of the drop rule for this unit with its value at "
                            "the last check: \u2713 met, \u2717 holds it back")
        form.addRow("Why not yet:", self.why)

        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "score")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setYRange(0, 1.05, padding=0)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        self.curve = self.plot.plot(connect="finite")
        self.threshold = pg.InfiniteLine(angle=0, movable=False)
        self.plot.addItem(self.threshold, ignoreBounds=True)
        self.plot_widget.setMinimumHeight(self.fontMetrics().height() * 6)

        body = QHBoxLayout()
        body.addLayout(form)
        body.addWidget(self.plot_widget, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addLayout(body, 1)
        self.restyle()
        self.plot_widget.setVisible(False)

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        apply_plot_theme(self.plot_widget, self.theme)
        self.threshold.setPen(pg.mkPen(self.theme.threshold, width=1, style=Qt.PenStyle.DashLine))
        self._drawn_key = ()

    def reset(self) -> None:
        self.unit = None
        self.title.setText("Click a unit in the strip to see its details")
        for value in self.fields.values():
            value.setText(DASH)
        self.why.setText(DASH)
        self.curve.setData([], [])
        self.plot_widget.setVisible(False)
        self._drawn_key = ()

    def set_unit(self, name: str | None) -> None:
        self.unit = name if name is not None and self.history.has_unit(name) else None
        self.refresh(force=True)

    def field_text(self, key: str) -> str:
        return self.fields[key].text()

    def refresh(self, force: bool = False) -> None:
        h = self.history
        if self.unit is None or not h.has_unit(self.unit):
            return
        i = h.unit_index(self.unit)
        state = h.unit_state(i)
        key = (self.unit, h.n_checks(), state, h.epochs_complete(), len(h.actions))
        if key == self._drawn_key and not force:
            return
        self._drawn_key = key
        self.plot_widget.setVisible(True)
        u = h.units[i]
        self.title.setText(f"{u.name}  (unit {i + 1} of {len(h.units)}"
                           f"{', head' if u.is_head else ''})")
        color = self.theme.state_color(state).name()
        self.fields["state"].setText(f"<span style='color:{color}'>\u25a0</span> "
                                     f"{STATE_LABELS.get(state, state)}")
        self.fields["params"].setText(format_count(u.params))
        self.fields["flops"].setText(f"{format_count(u.forward_flops)} per sample "
                                     f"({format_percent(u.flops_share)})")
        score = h.latest_score(i)
        self.fields["score"].setText(DASH if score is None else f"{score:.3f}")
        trend = float(h.latest_trends[i]) if i < h.latest_trends.shape[0] else math.nan
        self.fields["trend"].setText(DASH if not math.isfinite(trend) else f"{trend:+.3f} / check")
        streak = int(h.latest_streaks[i]) if i < h.latest_streaks.shape[0] else 0
        self.fields["streak"].setText(f"{streak} check{'s' if streak != 1 else ''}")
        d = h.drop_of.get(i)
        back = next((r for r in reversed(h.restores) if r.index == i), None)
        self.fields["dropped"].setText(
            f"step {d.step}, epoch {d.epoch:.2f} ({d.reason})" if d is not None
            else "no" if back is None else f"no: restored at epoch {back.epoch:.2f}, the "
            f"training loss rose from {back.loss_before:.4f} to {back.loss_after:.4f}")
        self.why.setText(why_html(h.why_not_yet(i), d is not None, self.theme))
        x, y = h.unit_scores(i)
        pen = pg.mkPen(depth_colors(len(h.units), self.theme)[i], width=2)
        self.curve.setPen(pen)
        self.curve.setData(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        thr = h.threshold
        self.threshold.setVisible(math.isfinite(thr))
        if math.isfinite(thr):
            self.threshold.setPos(thr)
