"""The window on a small screen (pytest-qt, offscreen): everything fits and stays readable
down to 1024x640, with a run shown."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QScrollArea

from factories import feed

pytestmark = pytest.mark.gui

SMALL = (1024, 640)


def test_window_fits_1024x640_with_readable_parts(qtbot: Any, make_window: Any,
                                                  stream: Any) -> None:
    window = make_window()
    feed(window.live, stream)  # a whole run shown: long log lines, many units
    window.live.select_unit(stream[0][1].units[3].name)
    window.resize(*SMALL)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == SMALL, timeout=5000)
    qtbot.wait(200)  # the plots lay themselves out in posted events
    hint = window.minimumSizeHint()
    assert hint.width() <= SMALL[0] and hint.height() <= SMALL[1], hint

    live = window.live
    metrics = live.metrics
    for plot in (metrics.loss_plot, metrics.acc_plot):  # no plot collapses to a sliver
        assert plot.size().height() >= 100 and plot.size().width() >= 150
    assert live.score_plot.plot_widget.height() >= 150
    assert live.score_plot.plot_widget.width() >= 250
    assert live.tabs.tabBar().tabRect(1).right() <= live.tabs.tabBar().width()  # both tabs
    # the gauges scroll instead of being cut: their width is the viewport's
    scroll = live.gauges_scroll
    assert scroll.viewport().width() >= 150
    assert live.gauges.width() == scroll.viewport().width()
    assert live.event_log.height() >= 80 and live.details.height() >= 80
    # the form keeps every field whole: it scrolls down, never cuts off to the side
    form = next(a for a in window.setup.findChildren(QScrollArea))
    assert form.widget().width() <= form.viewport().width()
    assert form.widget().width() >= form.widget().minimumSizeHint().width()
    assert window.setup_dock.width() <= 0.3 * SMALL[0]
    for action in window.toolbar.actions():
        button = window.toolbar.widgetForAction(action)
        assert button is not None and button.isVisible()
        assert button.geometry().right() <= window.toolbar.width()
