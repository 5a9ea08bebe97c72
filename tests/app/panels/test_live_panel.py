"""The live panel (pytest-qt, offscreen): redrawing on a timer only while a run is live,
hidden tabs waiting until shown, whole runs loaded at once and reset."""

from __future__ import annotations

from typing import Any

import pytest

from factories import drops_of, feed
from learndrop.app.panels import LivePanel
from learndrop.core.monitor import RunHistory

pytestmark = pytest.mark.gui


def test_hidden_heatmap_waits_until_shown(live_panel: LivePanel, stream: Any) -> None:
    feed(live_panel, stream[:20])
    live_panel.redraw()
    assert live_panel.is_dirty("heatmap") and live_panel.heatmap.image_shape() == ()
    live_panel.tabs.setCurrentWidget(live_panel.heatmap)
    assert not live_panel.is_dirty("heatmap") and live_panel.heatmap.image_shape()[1] == 11


def test_timer_runs_only_while_live_and_redraws(live_panel: LivePanel, stream: Any,
                                                qtbot: Any) -> None:
    live_panel.on_fit_start(stream[0][1])
    assert live_panel.timer.isActive() and 30 <= live_panel.timer.interval() <= 100
    for hook, ev in stream[1:12]:
        getattr(live_panel, hook)(ev)
    assert live_panel.is_dirty("scores")
    live_panel.timer.timeout.emit()  # one tick (not the event loop: a test may have exited it)
    assert not live_panel.is_dirty("scores") and not live_panel.is_dirty("strip")
    assert live_panel.score_plot.raw.seen == live_panel.history.bins.generation > 0
    feed(live_panel, stream[12:])
    assert not live_panel.timer.isActive() and not live_panel.is_dirty("gauges")


def test_load_history_and_reset(live_panel: LivePanel, stream: Any) -> None:
    h = RunHistory()
    for hook, ev in stream:
        getattr(h, hook)(ev)
    live_panel.load_history(h)
    assert live_panel.score_plot.marker_count() == len(drops_of(stream))
    assert live_panel.event_log.row_count() == len(h.log)
    live_panel.reset()
    assert live_panel.score_plot.marker_count() == 0 and live_panel.event_log.row_count() == 0
    assert live_panel.gauges.forward.value.text() == "\u2013"
