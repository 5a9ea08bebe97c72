"""The sweep dialog: the settings of the form as the base, the settings to vary with their
values, seeds, a baseline, runs at a time; the queue of runs while it trains, the grouped
table when it ends, and its report.

The sweep is the one ``learndrop sweep`` trains (:mod:`learndrop.core.sweep`), recorded in the
run store as one sweep, so the history lists its runs and ``learndrop sweep --resume`` can
continue it. ``runs_requested(ids)`` asks to show its runs side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.config import RunConfig, field_paths
from learndrop.core.errors import LearnDropError

from ..services.sweep_job import SweepJob, plan_sweep
from ..theme import current_theme

__all__ = ["SweepDialog"]

_QUEUE = ("#", "role", "settings", "seed", "state", "run")


class SweepDialog(QDialog):
    runs_requested = Signal(object)

    def __init__(self, base: RunConfig, store: str | Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.base, self.store = base, store
        self.job: SweepJob | None = None
        self._closing = False  # asked to close while training: closes once stopped
        self._ended = False  # the sweep's end was heard (its thread may not have exited yet)
        self.vary = QTableWidget(0, 2)
        self.vary.setHorizontalHeaderLabels(["setting", "values (separated by commas)"])
        self.vary.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.vary.setColumnWidth(0, self.fontMetrics().averageCharWidth() * 30)
        self.vary.verticalHeader().setVisible(False)
        add, remove = QPushButton("Add setting"), QPushButton("Remove")
        add.clicked.connect(lambda: self.add_setting())
        remove.clicked.connect(self._remove_setting)
        self.seeds = QSpinBox()
        self.seeds.setRange(1, 100)
        self.baseline = QCheckBox("Also train the baseline (no drops) for each seed")
        self.parallel = QSpinBox()
        self.parallel.setRange(1, 64)
        self.parallel.setToolTip("Runs trained at a time, each in its own process")
        self.name = QLineEdit()
        self.name.setPlaceholderText("model-dataset-time")
        self.plan_line = QLabel()
        self.plan_line.setWordWrap(True)
        self.start_button, self.stop_button = QPushButton("Start"), QPushButton("Stop")
        self.report_button = QPushButton("Report…")
        self.side_button = QPushButton("Side by side")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.report_button.clicked.connect(self._ask_report)
        self.side_button.clicked.connect(
            lambda: self.runs_requested.emit(self.job.run_ids() if self.job else []))
        for b in (self.stop_button, self.report_button, self.side_button):
            b.setEnabled(False)
        self.queue = QTableWidget(0, len(_QUEUE))
        self.queue.setHorizontalHeaderLabels(list(_QUEUE))
        self.queue.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.queue.verticalHeader().setVisible(False)
        self.queue.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table_box = QPlainTextEdit()
        self.table_box.setReadOnly(True)
        self.table_box.setPlaceholderText("The grouped table shows here when the sweep ends.")
        self.table_box.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.table_box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

        form = QFormLayout()
        form.addRow("Seeds:", self.seeds)
        form.addRow("", self.baseline)
        form.addRow("Runs at a time:", self.parallel)
        form.addRow("Name:", self.name)
        buttons = QHBoxLayout()
        for b in (add, remove):
            buttons.addWidget(b)
        buttons.addStretch(1)
        actions = QHBoxLayout()
        actions.addWidget(self.plan_line, 1)
        for b in (self.start_button, self.stop_button, self.side_button, self.report_button):
            actions.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Base: the settings of the form ({base.model.name} on "
                             f"{base.data.dataset}, {base.train.epochs} epochs). Vary:"))
        lay.addWidget(self.vary)
        lay.addLayout(buttons)
        lay.addLayout(form)
        lay.addLayout(actions)
        lay.addWidget(QLabel("Queue:"))
        lay.addWidget(self.queue, 1)
        lay.addWidget(self.table_box)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay.addWidget(close)
        self.vary.itemChanged.connect(lambda *_: self.check())
        self.add_setting("drop.threshold", "0.5, 0.6, 0.7")
        for w in (self.seeds, self.parallel):
            w.valueChanged.connect(lambda *_: self.check())
        self.baseline.toggled.connect(lambda *_: self.check())
        fh = self.fontMetrics().height()
        self.resize(fh * 60, fh * 44)
        self.check()

    # ---- the settings to vary -------------------------------------------------------------
    def add_setting(self, path: str = "", values: str = "") -> None:
        row = self.vary.rowCount()
        self.vary.insertRow(row)
        box = QComboBox()
        box.setEditable(True)
        box.addItems(field_paths())
        box.setCurrentText(path)
        box.currentTextChanged.connect(lambda *_: self.check())
        self.vary.setCellWidget(row, 0, box)
        self.vary.setItem(row, 1, QTableWidgetItem(values))
        self.check()

    def _remove_setting(self) -> None:
        row = self.vary.currentRow() if self.vary.currentRow() >= 0 else self.vary.rowCount() - 1
        if row >= 0:
            self.vary.removeRow(row)
        self.check()

    def varied(self) -> list[tuple[str, str]]:
        out = []
        for row in range(self.vary.rowCount()):
            box = self.vary.cellWidget(row, 0)
            item = self.vary.item(row, 1)
            out.append((box.currentText() if isinstance(box, QComboBox) else "",
                        item.text() if item is not None else ""))
        return out

    def check(self) -> Any:
        """The sweep planned from the fields, or None with the reason shown."""
        try:
            plan = plan_sweep(self.base, self.varied(), self.seeds.value(),
                              self.baseline.isChecked())
        except LearnDropError as exc:
            self.plan_line.setStyleSheet(f"color: {current_theme().error.name()};")
            self.plan_line.setText(exc.message)
            self.start_button.setEnabled(False)
            return None
        self.plan_line.setStyleSheet("")
        self.plan_line.setText(f"{len(plan.jobs())} runs: {len(plan.combinations())} "
                               f"combinations \u00d7 {plan.seeds} seed(s)"
                               + (" and the baselines" if plan.baseline else ""))
        self.start_button.setEnabled(self.job is None)
        return plan

    # ---- training -------------------------------------------------------------------------
    def start(self) -> bool:
        plan = self.check()
        if plan is None or self.job is not None:
            return False
        try:
            self.job = SweepJob(plan, self.store, name=self.name.text().strip() or None,
                                parallel=self.parallel.value(), parent=self)
        except LearnDropError as exc:
            self.plan_line.setText(exc.message)
            return False
        self.job.job_changed.connect(self._job_changed)
        self.job.finished.connect(self._finished)
        self.job.failed.connect(self._failed)
        self._fill_queue()
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.setWindowTitle(f"Sweep {self.job.runner.name}")
        self.job.start()
        return True

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.stop_button.setEnabled(False)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def _fill_queue(self) -> None:
        assert self.job is not None
        plan = self.job.runner.plan
        self.queue.setRowCount(len(self.job.states))
        for row, st in enumerate(self.job.states):
            paths = plan.paths if st.job.role == "run" else [
                p for p in plan.paths if not p.startswith("drop.")]
            what = ", ".join(f"{p.split('.', 1)[1]}={v}" for p, v in zip(paths, st.job.values))
            cells = [str(st.job.index + 1), st.job.role, what or "-", str(st.job.seed),
                     st.state, st.run_name]
            for col, text in enumerate(cells):
                self.queue.setItem(row, col, QTableWidgetItem(text))

    def _job_changed(self, state: Any) -> None:
        row = int(state.job.index)
        for col, text in ((4, state.state + (f": {state.message}" if state.state == "failed"
                                              else "")), (5, state.run_name)):
            item = self.queue.item(row, col)
            if item is not None:
                item.setText(text)
                item.setToolTip(text)

    def queue_states(self) -> list[str]:
        return [item.text() if (item := self.queue.item(r, 4)) is not None else ""
                for r in range(self.queue.rowCount())]

    def _finished(self, outcome: Any) -> None:
        assert self.job is not None
        self._ended = True
        if self._closing:
            self.close()
            return
        self._fill_queue()
        self.stop_button.setEnabled(False)
        self.report_button.setEnabled(True)
        self.side_button.setEnabled(True)
        done = f"{outcome.done} of {len(self.job.states)} runs finished"
        self.plan_line.setText(done + ("; stopped: continue it with learndrop sweep --resume "
                                       f"{self.job.runner.name}" if outcome.stopped else ""))
        self.table_box.setPlainText(self.job.table_text())

    def _failed(self, message: str) -> None:
        self._ended = True
        if self._closing:
            self.close()
            return
        self.stop_button.setEnabled(False)
        self.plan_line.setStyleSheet(f"color: {current_theme().error.name()};")
        self.plan_line.setText(message)

    def _ask_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Sweep report", "sweep-report.html",
                                              "HTML (*.html);;PDF (*.pdf)")
        if path:
            self.write_report(path)

    def write_report(self, path: str | Path) -> Path | None:
        if self.job is None:
            return None
        try:
            return self.job.write_report(path)
        except LearnDropError as exc:
            self.plan_line.setText(exc.message)
            return None

    def _stop_before_closing(self) -> bool:
        """Asked to close (Close, Esc, the window's frame) while the sweep trains: stop it
        after the current batch (the runs trained are kept) and close once it has stopped,
        never leaving it training out of sight nor the window frozen; True while it stops."""
        if not self.running or self._ended:
            return False
        if not self._closing:
            self._closing = True
            self.stop()
            self.start_button.setEnabled(False)
            self.plan_line.setStyleSheet("")
            self.plan_line.setText("Stopping the sweep after the current batch (the runs "
                                   "trained are kept); this window closes once it has "
                                   "stopped")
        return True

    def reject(self) -> None:
        if not self._stop_before_closing():
            super().reject()

    def closeEvent(self, event: Any) -> None:
        if self._stop_before_closing():
            event.ignore()
            return
        super().closeEvent(event)
