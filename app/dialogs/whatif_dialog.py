"""The what-if explorer: a recorded run (finished or still training, baselines too) replayed
under other drop settings as they are changed.

Threshold, patience, trend tolerance, window, warm-up and order are fields (the threshold
also a slider, and a line to drag on the score plot); every change replays the run's score
history with the engine's own rule (:func:`~learndrop.core.monitor.what_if`) and shows at
once when each unit would drop, next to when it did, with the training FLOPs each would
save and the honesty line of ``learndrop whatif``: exact until the first decision that
differs. "Run with these settings" asks for a new run with them
(``run_requested(run_id, {setting path: value})``).
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from learndrop.core import format as fmt
from learndrop.core.monitor import (
    SETTLE_TESTS,
    RecordedRun,
    RunHistory,
    WhatIf,
    prepare_what_if,
    what_if,
)

from ..views.whatif_views import DropTimeline, WhatIfScores

__all__ = ["WhatIfDialog", "EXPLORED"]

#: the settings the explorer offers, in its order
#: idle time after an update before the neighbouring trend windows are measured ahead
AHEAD_AFTER_MS = 150
EXPLORED = ("threshold", "patience", "settle", "trend_tolerance", "window", "warmup_epochs",
            "order")
_SLIDER_STEPS = 1000


def _decimal_box(top: float, decimals: int, step: float) -> QDoubleSpinBox:
    """A spin box for a setting from 0 to ``top``."""
    box = QDoubleSpinBox()
    box.setRange(0.0, top)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    return box


class WhatIfDialog(QDialog):
    """Explore other drop settings on run ``run_id`` (``run``: its recorded history;
    ``history``: its events as the live views keep them, for the score curves)."""

    run_requested = Signal(int, object)

    def __init__(self, run_id: int, label: str, run: RecordedRun, history: RunHistory,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_id, self.label, self.run, self.history = run_id, label, run, history
        self.setWindowTitle(f"What if: {label}")
        self.current: WhatIf | None = None
        #: how long the last update took (replay and drawing), and its replay, in ms
        self.last_update_ms = self.last_replay_ms = 0.0
        prepare_what_if(run)  # the whole history measured once: each change only decides
        # the trend windows next to the one shown are measured ahead while the dialog is idle,
        # one per event-loop turn, so stepping the window answers as fast as the rest
        self._ahead: list[int] = []
        self._ahead_timer = QTimer(self)
        self._ahead_timer.setSingleShot(True)
        self._ahead_timer.timeout.connect(self._measure_ahead)
        own = run.policy
        end = run.last_step / max(run.steps_per_epoch, 1)

        self.fields: dict[str, Any] = {}
        thr = _decimal_box(1.0, 3, 0.01)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, _SLIDER_STEPS)
        patience = QSpinBox()
        patience.setRange(1, 1000)
        tol = _decimal_box(10.0, 3, 0.01)
        window = QSpinBox()
        window.setRange(2, 1000)
        warmup = _decimal_box(100000.0, 2, 0.25)
        order = QComboBox()
        order.addItems(["prefix", "any"])
        settle = QComboBox()
        settle.addItems(list(SETTLE_TESTS))
        self.fields = {"threshold": thr, "patience": patience, "settle": settle,
                       "trend_tolerance": tol, "window": window, "warmup_epochs": warmup,
                       "order": order}
        tips = {"threshold": "settled at or below this learning score",
                "patience": "settled checks in a row before a drop",
                "settle": "noise: a trend is flat within the unit's own score noise; "
                          "tolerance: within the trend tolerance",
                "trend_tolerance": "settle=tolerance: a score trend within this (per check) "
                                   "counts as flat",
                "window": "checks the trend is fitted over",
                "warmup_epochs": "epochs before any drop (fractions allowed)",
                "order": "prefix: front to back only; any: any settled unit"}
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(thr)
        row.addWidget(self.slider, 1)
        form.addRow("Threshold:", row)
        for key, label_text in (("patience", "Patience (checks):"),
                                ("settle", "Flat trend test:"),
                                ("trend_tolerance", "Trend tolerance:"),
                                ("window", "Trend window (checks):"),
                                ("warmup_epochs", "Warm-up (epochs):"), ("order", "Order:")):
            form.addRow(label_text, self.fields[key])
        for key, widget in self.fields.items():
            widget.setToolTip(f"{tips[key]} (the run's own: {getattr(own, key)})")
        self.slider.setToolTip(thr.toolTip())

        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.honesty = QLabel()
        self.honesty.setWordWrap(True)
        # three lines kept for it: a wrapped label would otherwise be squeezed by the table
        self.honesty.setMinimumHeight(self.fontMetrics().lineSpacing() * 3)
        self.timeline = DropTimeline(history, end)
        self.scores = WhatIfScores(history)
        self.table = QTableWidget(len(run.units), 3)
        self.table.setHorizontalHeaderLabels(["unit", "would drop", "dropped"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for c in (1, 2):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch)
        header.setToolTip("The epoch each unit would drop at with these settings, and the "
                          "epoch it dropped at in the recorded run (-: never)")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        for i, u in enumerate(run.units):
            self.table.setItem(i, 0, QTableWidgetItem(u.name))
            for c in (1, 2):
                item = QTableWidgetItem("")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, c, item)

        reset = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.run_button = reset.addButton("Run with these settings",
                                          QDialogButtonBox.ButtonRole.ActionRole)
        self.run_button.setToolTip("Load the run's settings with these drop settings into the "
                                   "form and start a new run")
        own_button = reset.addButton("The run's own", QDialogButtonBox.ButtonRole.ResetRole)
        own_button.setToolTip("Back to the settings the run was recorded with")
        own_button.clicked.connect(self.reset_to_own)
        self.run_button.clicked.connect(self._request_run)
        reset.rejected.connect(self.reject)

        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addLayout(form)
        left_lay.addWidget(self.summary)
        left_lay.addWidget(self.honesty)
        left_lay.addWidget(self.table, 1)
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.scores)
        plots.addWidget(self.timeline)
        caption = QLabel("Top: the recorded scores; filled dots where each unit would drop "
                         "with these settings, rings where it did (drag the threshold line). "
                         "Bottom: grey where each unit was dropped as recorded, blue where it "
                         "would be; red dashes: the prediction is exact up to here.")
        caption.setWordWrap(True)
        right = QWidget()
        right_lay = QVBoxLayout(right)
        right_lay.setContentsMargins(0, 0, 0, 0)
        right_lay.addWidget(plots, 1)
        right_lay.addWidget(caption)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Run <b>{label}</b>: {len(run.checks)} score checks, mode "
                             f"{run.mode}{'' if own.enabled else ', recorded without drops'}"))
        lay.addWidget(split, 1)
        lay.addWidget(reset)

        self.reset_to_own(update=False)
        thr.valueChanged.connect(self._threshold_typed)
        self.slider.valueChanged.connect(
            lambda v: thr.setValue(v / _SLIDER_STEPS))
        self.scores.threshold_dragged.connect(lambda v: thr.setValue(round(v, 3)))
        for key in EXPLORED[1:]:
            widget = self.fields[key]
            signal = (widget.currentTextChanged if isinstance(widget, QComboBox)
                      else widget.valueChanged)
            signal.connect(lambda *_: self.update_result())
        settle.currentTextChanged.connect(lambda text: tol.setEnabled(text == "tolerance"))
        tol.setEnabled(settle.currentText() == "tolerance")
        fh = self.fontMetrics().height()
        self.resize(fh * 80, fh * 44)
        split.setSizes([fh * 26, fh * 54])
        self.update_result()

    # ---- settings ------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings tried, by their drop setting names."""
        out: dict[str, Any] = {}
        for key, widget in self.fields.items():
            out[key] = (widget.currentText() if isinstance(widget, QComboBox)
                        else widget.value())
        return out

    def set_settings(self, **settings: Any) -> None:
        """Set some of the fields (one update at the end)."""
        self._quiet = True
        try:
            for key, value in settings.items():
                widget = self.fields[key]
                if isinstance(widget, QComboBox):
                    widget.setCurrentText(str(value))
                else:
                    widget.setValue(value)
        finally:
            self._quiet = False
        self.update_result()

    def reset_to_own(self, update: bool = True) -> None:
        own = self.run.policy
        self._quiet = True
        try:
            for key in EXPLORED:
                widget = self.fields[key]
                if isinstance(widget, QComboBox):
                    widget.setCurrentText(str(getattr(own, key)))
                else:
                    widget.setValue(getattr(own, key))
            self.slider.setValue(round(own.threshold * _SLIDER_STEPS))
        finally:
            self._quiet = False
        if update:
            self.update_result()

    def _threshold_typed(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * _SLIDER_STEPS))
        self.slider.blockSignals(False)
        self.update_result()

    # ---- the result ----------------------------------------------------------------------
    def update_result(self) -> WhatIf | None:
        """Replay the run with the settings in the fields and show it."""
        if getattr(self, "_quiet", False):
            return self.current
        t0 = time.perf_counter()
        result = what_if(self.run, enabled=True, **self.settings())
        self.last_replay_ms = 1e3 * (time.perf_counter() - t0)
        self.current = result
        self.timeline.show_result(result)
        self.scores.show_result(result)
        self._show_numbers(result)
        self.last_update_ms = 1e3 * (time.perf_counter() - t0)
        window = int(self.fields["window"].value())
        self._ahead = [w for w in (window + 1, window - 1, window + 2, window - 2) if w >= 2]
        self._ahead_timer.start(AHEAD_AFTER_MS)
        return result

    def _measure_ahead(self) -> None:
        if self._ahead:
            prepare_what_if(self.run, window=self._ahead.pop(0))
            self._ahead_timer.start(0)

    def _show_numbers(self, r: WhatIf) -> None:
        would = sum(u.drop_epoch is not None for u in r.units)
        did = sum(u.recorded_drop_epoch is not None for u in r.units)
        self.summary.setText(
            f"Training FLOPs saved: <b>{fmt.percent(r.train_flops_saved)}</b> with these "
            f"settings, {fmt.percent(r.recorded_train_flops_saved)} as recorded<br>"
            f"Units dropped: <b>{would}</b> with these settings, {did} as recorded")
        if r.first_difference is None:
            self.honesty.setText("Every decision is the recorded run's: the prediction is "
                                 "exact.")
        else:
            self.honesty.setText(f"Exact until epoch {r.first_difference_epoch:.2f} (check "
                                 f"{r.first_difference + 1}), the first decision that differs "
                                 f"from the recorded run; after it the network would have "
                                 f"trained differently.")
        unknown = any(u.unknown for u in r.units)
        if unknown:
            self.honesty.setText(self.honesty.text() + " ?: the recorded run dropped this "
                                 "unit, so its history ends there.")
        for i, u in enumerate(r.units):
            self._cell(i, 1, "-" if u.drop_epoch is None else
                       f"{u.drop_epoch:.2f}{'  ?' if u.unknown else ''}")
            self._cell(i, 2, "-" if u.recorded_drop_epoch is None
                       else f"{u.recorded_drop_epoch:.2f}")

    def _cell(self, row: int, column: int, text: str) -> None:
        item = self.table.item(row, column)
        if item is not None and item.text() != text:
            item.setText(text)

    def _request_run(self) -> None:
        changes = {f"drop.{k}": v for k, v in self.settings().items()}
        changes["drop.enabled"] = True
        self.run_requested.emit(self.run_id, changes)
        self.accept()
