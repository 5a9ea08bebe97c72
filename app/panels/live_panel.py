"""The live view of a training run: all the run's views in one panel.

The panel is an engine :class:`~learndrop.core.events.Callback`: its methods are the engine's
hooks and take the engine's event objects, so the main window hands it the bridge's hooks
with :func:`~learndrop.core.events.call_hook` and the run library replays stored runs into it
the same way. Each hook records the event in a :class:`~learndrop.core.monitor.RunHistory`
and marks the views that show it as dirty; a timer redraws dirty views about 20 times a
second, so a burst of events costs one redraw.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QTabWidget, QVBoxLayout, QWidget

from learndrop.core.events import (
    Callback,
    CheckpointSaved,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    RestoreEvent,
    SavingsReport,
    ScoreCheck,
    UserAction,
)
from learndrop.core.monitor import RunHistory

from ..views import (
    EventLog,
    GaugesPanel,
    HeatmapView,
    LiveView,
    MetricsPlot,
    NetworkStrip,
    ScorePlot,
    UnitDetails,
)

__all__ = ["REDRAW_INTERVAL_MS", "LivePanel"]

#: redraw period while a run is live (20 Hz)
REDRAW_INTERVAL_MS = 50

_SCORES = ("strip", "scores", "heatmap", "details")


class LivePanel(QWidget, Callback):
    """Network strip, score plot and heatmap, metrics, gauges, event log and unit details."""

    unit_action_requested = Signal(str, str)  # action ("pin", "unpin", "drop"), unit name
    unit_selected = Signal(str)
    notice = Signal(str)  # one line for the status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = RunHistory()
        h = self.history
        self.strip = NetworkStrip(h)
        self.score_plot = ScorePlot(h)
        self.heatmap = HeatmapView(h)
        self.metrics = MetricsPlot(h)
        self.gauges = GaugesPanel(h)
        self.event_log = EventLog(h)
        self.details = UnitDetails(h)
        self.views: dict[str, LiveView] = {
            "strip": self.strip, "scores": self.score_plot, "heatmap": self.heatmap,
            "metrics": self.metrics, "gauges": self.gauges, "log": self.event_log,
            "details": self.details}
        self._dirty: set[str] = set()
        self._split_done = False
        self._clock: float | None = None  # a replay's clock, handed to the run's history

        self.tabs = QTabWidget()
        self.tabs.addTab(self.score_plot, "Scores")
        self.tabs.addTab(self.heatmap, "Heatmap")
        # the curves' colour legend beside the tabs, where there is room, while they show
        self.tabs.setCornerWidget(self.score_plot.depth_legend, Qt.Corner.TopRightCorner)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        fh = self.fontMetrics().height()
        # every part keeps a readable size down to a 1024x640 window: the gauges scroll
        # rather than squeeze the plots, and no splitter collapses a plot to nothing
        self.gauges_scroll = QScrollArea()
        self.gauges_scroll.setWidget(self.gauges)
        self.gauges_scroll.setWidgetResizable(True)
        self.gauges_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.gauges_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.gauges_scroll.setMinimumWidth(int(fh * 12.5))
        self.gauges_scroll.setMaximumWidth(fh * 26)
        self.gauges_scroll.setMinimumHeight(fh * 8)
        self.metrics.setMinimumWidth(fh * 10)

        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.tabs)
        main.addWidget(self.metrics)
        main.addWidget(self.gauges_scroll)
        main.setChildrenCollapsible(False)
        main.setStretchFactor(0, 5)
        main.setStretchFactor(1, 3)
        main.setStretchFactor(2, 0)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.event_log)
        bottom.addWidget(self.details)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(main)
        body.addWidget(bottom)
        body.setChildrenCollapsible(False)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 1)
        self.main_splitter, self.bottom_splitter, self.body_splitter = main, bottom, body

        lay = QVBoxLayout(self)
        m = fh // 3
        lay.setContentsMargins(m, m, m, m)
        lay.addWidget(self.strip)
        lay.addWidget(body, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_INTERVAL_MS)
        self.timer.timeout.connect(self.redraw)
        self.strip.unit_selected.connect(self._on_unit_selected)
        self.strip.unit_action_requested.connect(self._on_unit_action)

    # ---- engine events -----------------------------------------------------------------------
    def on_fit_start(self, event: FitStart) -> None:
        self._use_history(RunHistory())
        if self._clock is not None:
            self.history.on_clock(self._clock)
        self.history.on_fit_start(event)
        self._reset_views()
        self.strip.set_actions_enabled(True)
        self.timer.start()

    def on_epoch_start(self, epoch: int) -> None:
        self.history.on_epoch_start(epoch)
        self._mark("gauges")

    def on_progress(self, event: Progress) -> None:
        self.history.on_progress(event)
        self._mark("metrics", "gauges")

    def on_scores(self, event: ScoreCheck) -> None:
        self.history.on_scores(event)
        self._mark(*_SCORES)

    def on_drop(self, event: DropEvent) -> None:
        self.history.on_drop(event)
        self._mark(*_SCORES, "gauges", "log")

    def on_restore(self, event: RestoreEvent) -> None:
        self.history.on_restore(event)
        self._mark(*_SCORES, "metrics", "gauges", "log")

    def on_savings(self, event: SavingsReport) -> None:
        self.history.on_savings(event)
        self._mark("gauges")

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.history.on_epoch_end(event)
        self._mark("metrics", "gauges")

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        self.history.on_checkpoint(event)
        self._mark("log")

    def on_user_action(self, event: UserAction) -> None:
        self.history.on_user_action(event)
        self._mark("strip", "details", "gauges", "log", "scores", "metrics")

    def on_clock(self, wall_time: float) -> None:
        """A replayed run's events come with the time they happened."""
        self._clock = wall_time
        self.history.on_clock(wall_time)

    def on_warning(self, message: str) -> None:
        self.history.on_warning(message)
        self._mark("log")

    def on_info(self, message: str) -> None:
        self.history.on_info(message)
        self._mark("log")

    def go_live(self) -> None:
        """A replayed run goes on live (a resumed run after its earlier sessions were
        replayed): its next events happen now."""
        self._clock = None
        self.history.clear_clock()

    @Slot(str)
    def on_error(self, message: str) -> None:
        self.history.on_error(message)
        self._mark("log")
        self.redraw()

    def on_fit_end(self, event: FitEnd) -> None:
        self.history.on_fit_end(event)
        self.strip.set_actions_enabled(False)
        self._mark(*self.views)
        self.redraw()
        self.timer.stop()

    # ---- whole runs --------------------------------------------------------------------------
    @Slot()
    def reset(self) -> None:
        """Empty every view (no run shown)."""
        self.timer.stop()
        self._clock = None
        self._use_history(RunHistory())
        self.strip.set_actions_enabled(False)
        self._reset_views()
        self.redraw()

    def load_history(self, history: RunHistory) -> None:
        """Show a finished or replayed run at once."""
        self.timer.stop()
        self._use_history(history)
        self.strip.set_actions_enabled(history.running)
        self._reset_views()
        self.redraw()

    @Slot(str, bool)
    def set_pinned(self, unit: str, pinned: bool) -> None:
        """Show a unit as pinned (or not), e.g. when the run's config pins it."""
        if self.history.has_unit(unit):
            self.history.set_pinned(unit, pinned)
            self._mark("strip", "details")
            self.redraw()

    def view_options(self) -> dict[str, dict[str, object]]:
        """The reader's choices in the views, by view, to restore at the next start."""
        return {"score_plot": self.score_plot.view_options(),
                "event_log": self.event_log.view_options()}

    def set_view_options(self, options: dict[str, dict[str, object]]) -> None:
        self.score_plot.set_view_options(options.get("score_plot", {}))
        self.event_log.set_view_options(options.get("event_log", {}))

    def select_unit(self, name: str) -> None:
        self.strip.set_selected(name)
        self._on_unit_selected(name)

    # ---- drawing -----------------------------------------------------------------------------
    @Slot()
    def redraw(self) -> None:
        """Redraw the dirty views (the timer calls this; a hidden tab waits until shown)."""
        if not self._dirty:
            return
        current = self.tabs.currentWidget()
        for key in list(self._dirty):
            view = self.views[key]
            if view in (self.score_plot, self.heatmap) and view is not current:
                continue
            view.refresh()
            self._dirty.discard(key)

    def is_dirty(self, key: str) -> bool:
        return key in self._dirty

    def showEvent(self, event: QShowEvent) -> None:
        """Split the space by proportions once, at the first show (size hints vary)."""
        super().showEvent(event)
        if self._split_done:
            return
        self._split_done = True
        w, h = max(self.width(), 600), max(self.height(), 400)
        side = self.gauges_scroll.minimumWidth() + self.fontMetrics().height() * 2
        rest = max(200, w - side)
        self.main_splitter.setSizes([int(rest * 0.6), int(rest * 0.4), side])
        self.body_splitter.setSizes([int(h * 0.68), int(h * 0.32)])
        self.bottom_splitter.setSizes([int(w * 0.55), int(w * 0.45)])

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            # after the children have their new palette too
            QTimer.singleShot(0, self.restyle)
        super().changeEvent(event)

    def restyle(self) -> None:
        """Follow the palette (light or dark) in every view."""
        for view in self.views.values():
            view.restyle()
        self._mark(*self.views)
        self.redraw()

    # ---- internals ---------------------------------------------------------------------------
    def _use_history(self, history: RunHistory) -> None:
        self.history = history
        for view in self.views.values():
            view.history = history

    def _mark(self, *keys: str) -> None:
        self._dirty.update(keys)

    def _reset_views(self) -> None:
        for view in self.views.values():
            view.reset()
        self.strip.set_selected(None)
        self._mark(*self.views)

    def _on_tab_changed(self, _index: int) -> None:
        self.score_plot.depth_legend.setVisible(self.tabs.currentWidget() is self.score_plot)
        self.redraw()

    def _on_unit_selected(self, name: str) -> None:
        self.details.set_unit(name)
        self.score_plot.set_selected(name)
        self.unit_selected.emit(name)

    def _on_unit_action(self, action: str, unit: str) -> None:
        """Show a pin at once (the run confirms it at its next step, and the log says so
        then); say when a pin keeps later units from being dropped."""
        if action in ("pin", "unpin") and self.history.has_unit(unit):
            self.history.set_pinned(unit, action == "pin")
            self._mark("strip", "details")
        blocked = self.history.blocked_by_pin(unit) if action == "pin" else []
        if blocked:
            names = ", ".join(blocked[:3]) + (f" and {len(blocked) - 3} more"
                                              if len(blocked) > 3 else "")
            text = (f"{unit} is pinned: units drop front to back (drop order prefix), so "
                    f"{names} cannot be dropped either while it is pinned")
            self.history.note("info", text)
            self._mark("log")
        self.unit_action_requested.emit(action, unit)
        if blocked:
            self.notice.emit(text)
        self.redraw()
