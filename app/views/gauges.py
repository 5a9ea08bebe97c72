"""Savings and progress at a glance, with numbers written for people ("1.3 M", "2 min 05 s")."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.events import SavingsReport, display_epoch
from learndrop.core.format import DASH
from learndrop.core.format import count as format_count
from learndrop.core.format import duration as format_duration
from learndrop.core.format import percent as format_percent
from learndrop.core.format import rate as format_rate
from learndrop.core.monitor import RunHistory

from ..theme import Theme, current_theme

__all__ = ["GaugesPanel", "format_count", "format_duration", "format_percent", "format_rate"]


def time_saved_detail(s: SavingsReport) -> str:
    """The line under the time saved: its range, the FLOP-predicted figure, the projection
    to the end of the run and the efficiency (or why there is none)."""
    parts = []
    low, high = s.time_saved_low_s_total, s.time_saved_high_s_total
    if low is not None and high is not None:
        parts.append(f"range {format_duration(low, precise=True)} to "
                     f"{format_duration(high, precise=True)}")
    if s.predicted_time_saved_s_total is not None:
        parts.append("FLOP-predicted "
                     + format_duration(s.predicted_time_saved_s_total, precise=True))
    parts.append(f"by the end {format_duration(s.projected_time_saved_s_total)}")
    if s.efficiency_total is not None:
        parts.append(f"efficiency {s.efficiency_total:.2f}")
    elif low is not None and low <= 0:
        parts.append("within noise")
    return " \u00b7 ".join(parts)


class _Card(QFrame):
    """A caption, a large value and a small line under it."""

    def __init__(self, caption: str, tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.caption = QLabel(caption)
        self.value = QLabel(DASH)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.caption.setWordWrap(True)  # narrow gauges wrap their captions, never cut them
        big = QFont(self.font())
        big.setPointSizeF(self.font().pointSizeF() * 1.55)
        big.setBold(True)
        self.value.setFont(big)
        small = QFont(self.font())
        small.setPointSizeF(self.font().pointSizeF() * 0.9)
        self.caption.setFont(small)
        self.detail.setFont(small)
        lay = QVBoxLayout(self)
        m = self.fontMetrics().height() // 3
        lay.setContentsMargins(m, m, m, m)
        lay.setSpacing(1)
        self.suffix = QLabel("")  # what the value is, beside it ("now")
        self.suffix.setFont(small)
        row = QHBoxLayout()
        row.setSpacing(m)
        row.addWidget(self.value)
        row.addWidget(self.suffix, 0, Qt.AlignmentFlag.AlignBottom)
        row.addStretch(1)
        lay.addWidget(self.caption)
        lay.addLayout(row)
        lay.addWidget(self.detail)
        self.setToolTip(tooltip)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)

    def set(self, value: str, detail: str = "") -> None:
        self.value.setText(value)
        self.suffix.setText("")
        self.detail.setText(detail)

    def set_now(self, value: str, so_far: str) -> None:
        """A saving per step now, marked "now" beside its value, and the run's total so far
        under it."""
        self.value.setText(value)
        self.suffix.setText("now" if value != DASH else "")
        self.detail.setText(f"so far {so_far}")


class GaugesPanel(QWidget):
    """Forward/training FLOPs saved, parameters left, time saved, throughput, progress."""

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self.forward = _Card("Forward FLOPs saved", "Now: the share of the full network's "
                             "forward FLOPs that each training step skips at this point. So "
                             "far: the share saved over all the steps trained. Freeze mode "
                             "still runs dropped units forward, so it saves only their "
                             "backward pass; cache and skip save the forward too")
        self.train = _Card("Training FLOPs saved", "Now: the forward and backward FLOPs each "
                           "step saves at this point. So far: the share saved over all the "
                           "steps trained (the figure of the status bar and the run "
                           "history)")
        self.params = _Card("Trainable parameters", "Parameters still being trained")
        self.time = _Card("Time saved (measured)", "Wall-clock time saved so far, measured: "
                          "the steps since the first drop at the full network's measured "
                          "step time, less the time they took. Next to it, what the FLOPs "
                          "saved predict, and the projection to the end of the run")
        self.speed = _Card("Throughput", "Training images per second")
        self.accuracy = _Card("Best val. accuracy", "Best validation accuracy of any epoch")
        grid = QGridLayout()
        grid.setSpacing(self.fontMetrics().height() // 3)
        # the FLOPs saved and the time saved span the width: their values ("24.0% now",
        # "1 min 18 s") and what is under them need the room
        for card, row, col, span in ((self.train, 0, 0, 2), (self.forward, 1, 0, 2),
                                     (self.params, 2, 0, 1), (self.speed, 2, 1, 1),
                                     (self.time, 3, 0, 2), (self.accuracy, 4, 0, 2)):
            grid.addWidget(card, row, col, 1, span)

        self.epoch_label = QLabel("Epoch")
        self.epoch_bar = QProgressBar()
        self.total_label = QLabel("Overall")
        self.total_bar = QProgressBar()
        self.eta_label = QLabel("")
        for label in (self.epoch_label, self.eta_label):
            label.setWordWrap(True)
        for bar in (self.epoch_bar, self.total_bar):
            bar.setRange(0, 100)
            bar.setTextVisible(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        # the progress first: it is what a small window must show without scrolling
        for w in (self.epoch_label, self.epoch_bar, self.total_label, self.total_bar,
                  self.eta_label):
            lay.addWidget(w)
        lay.addSpacing(self.fontMetrics().height() // 2)
        lay.addLayout(grid)
        lay.addStretch(1)
        self.restyle()
        self.refresh()

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        muted = self.theme.muted.name()
        for card in (self.forward, self.train, self.params, self.time, self.speed,
                     self.accuracy):
            card.caption.setStyleSheet(f"color: {muted};")
            card.detail.setStyleSheet(f"color: {muted};")
            card.suffix.setStyleSheet(f"color: {muted};")

    def reset(self) -> None:
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        h = self.history
        s = h.latest_savings()
        if s is not None:
            self.forward.set_now(format_percent(s.forward_flops_saved_now),
                                 format_percent(s.forward_flops_saved_total))
            why = self._forward_detail(s)
            if why:
                self.forward.detail.setText(why)
            self.train.set_now(format_percent(s.train_flops_saved_now),
                               format_percent(s.train_flops_saved_total))
            self.time.set(format_duration(s.time_saved_s_total, precise=True),
                          time_saved_detail(s))
        else:
            for card in (self.forward, self.train, self.time):
                card.set(DASH, "")
        left, total = h.trainable_params(), h.total_params()
        if left is not None and total:
            comm = ""  # a data-parallel run: the gradients all-reduced per step
            if s is not None and s.full_allreduce_bytes_per_step_now:
                comm = (f" \u00b7 all-reduce {format_count(s.allreduce_bytes_per_step_now, 'B')}"
                        f"/step, was {format_count(s.full_allreduce_bytes_per_step_now, 'B')}")
            self.params.set(f"{format_count(left)}", f"of {format_count(total)} "
                            f"({format_percent(left / total, 0)}){comm}")
        else:
            self.params.set(DASH, "")
        ips = h.latest_images_per_s()
        self.speed.set(DASH if ips is None else format_rate(ips).replace(" img/s", ""),
                       "" if ips is None else "images / s")
        best = h.best_val_accuracy()
        self.accuracy.set(format_percent(best), "")
        self._refresh_progress()

    def _forward_detail(self, s: SavingsReport) -> str:
        """Under the forward FLOPs, in place of the share so far: why freeze mode saves none
        although units were dropped (else empty)."""
        mode = self.history.fit_start.mode if self.history.fit_start else ""
        if mode == "freeze" and self.history.drops and s.forward_flops_saved_now < 0.0005:
            return "freeze still runs dropped units forward; cache and skip save it"
        return ""

    def _refresh_progress(self) -> None:
        h = self.history
        fs = h.fit_start
        p = h.last_progress
        epochs = fs.epochs if fs else 0
        epoch = p.epoch if p is not None else h.current_epoch
        if not epochs:
            self.epoch_label.setText("Epoch")
        elif h.fit_end is not None:  # complete epochs, as the run history counts them
            self.epoch_label.setText(f"{h.epochs_complete()} of {epochs} epochs complete")
        else:
            self.epoch_label.setText(f"Epoch {min(display_epoch(epoch), epochs)} of {epochs}")
        ef, tf = h.epoch_fraction(), h.progress_fraction()
        for bar, frac in ((self.epoch_bar, ef), (self.total_bar, tf)):
            value = int(100 * frac)  # whole percent: QProgressBar repaints at once on change
            if bar.value() != value:
                bar.setValue(value)
                bar.setFormat(format_percent(value / 100, 0))
        if h.fit_end is not None:
            self.eta_label.setText(f"Run {h.fit_end.status}")
        elif fs is None:
            self.eta_label.setText("")
        elif h.paused:
            self.eta_label.setText("Time left: paused")
        else:
            self.eta_label.setText(f"Time left: {format_duration(h.eta_s())}")
