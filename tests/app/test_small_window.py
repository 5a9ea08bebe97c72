"""The window at 1024x640 and back (pytest-qt, offscreen): the progress, the strip's caption
and the plots' legends are whole and clear of the data without scrolling, the frame is
taken into account, and the docks follow a drag and grow back with the window."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QApplication

from factories import feed
from learndrop.app.views.network_strip import CAPTIONS
from learndrop.app.window_chrome import fitted_geometry

pytestmark = pytest.mark.gui

SMALL, LARGE = (1024, 640), (1400, 900)


def resize(qtbot: Any, window: Any, size: tuple[int, int]) -> None:
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    qtbot.wait(200)  # the plots lay themselves out in posted events


def test_1024x640_shows_the_progress_caption_and_legends_whole(
        qtbot: Any, make_window: Any, stream: Any) -> None:
    window = make_window()
    feed(window.live, stream)
    resize(qtbot, window, SMALL)
    live = window.live
    bar = window.statusBar()
    assert bar.isVisible() and bar.geometry().bottom() < window.height()
    # the progress is on screen without scrolling the gauges
    view = live.gauges_scroll.viewport()
    assert live.gauges_scroll.verticalScrollBar().value() == 0
    for part in (live.gauges.epoch_bar, live.gauges.total_bar, live.gauges.eta_label):
        top_left = part.mapTo(view, QPoint(0, 0))
        assert view.rect().contains(QRect(top_left, part.size())), part
    assert live.gauges.eta_label.text()
    # the strip's caption is a whole wording, never a cut one
    live.strip.repaint()
    assert live.strip.caption in CAPTIONS
    fm = live.strip.fontMetrics()
    assert fm.horizontalAdvance(live.strip.caption) < live.strip.width() * 0.6
    # the loss and accuracy legends sit above their plots, not on the data
    for plot in (live.metrics.loss_plot, live.metrics.acc_plot):
        title = plot.titleLabel
        assert title.isVisible() and title.text
        assert not title.sceneBoundingRect().intersects(plot.vb.sceneBoundingRect())
        assert title.item.boundingRect().width() <= live.metrics.view.width()  # whole


def test_the_docks_follow_a_drag_and_grow_back_with_the_window(
        qtbot: Any, make_window: Any) -> None:
    window = make_window()
    resize(qtbot, window, LARGE)
    dock = window.setup_dock
    wide = dock.width()
    resize(qtbot, window, SMALL)
    assert dock.width() < wide
    resize(qtbot, window, LARGE)
    assert abs(dock.width() - wide) <= 2
    # the same with the run history's tab in front (the setup dock hidden behind it)
    window.show_history()
    qtbot.wait(50)
    resize(qtbot, window, SMALL)
    assert window.history_dock.width() < wide and window.history_dock.width() <= 0.3 * SMALL[0]
    resize(qtbot, window, LARGE)
    assert abs(window.history_dock.width() - wide) <= 2
    window.setup_dock.raise_()
    qtbot.wait(50)

    # in the small window too, the separator between the docks and the live view drags
    resize(qtbot, window, SMALL)
    narrow = dock.width()
    x = dock.geometry().right() + 3
    y = dock.geometry().center().y()
    qtbot.mouseMove(window, pos=QPoint(x, y))  # the pointer finds the separator first
    qtbot.wait(50)
    qtbot.mousePress(window, Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    for dx in (20, 40, 60, 80):
        qtbot.mouseMove(window, pos=QPoint(x + dx, y))
        qtbot.wait(20)
    qtbot.mouseRelease(window, Qt.MouseButton.LeftButton, pos=QPoint(x + 80, y))
    QApplication.processEvents()
    assert dock.width() >= narrow + 60


def test_the_window_frame_is_kept_on_screen() -> None:
    area = QRect(0, 0, 1024, 610)  # a 1024x640 screen less a 30-pixel panel
    inner = QRect(0, 0, 1024, 640)
    frame = QRect(-4, -28, 1032, 672)  # a title bar of 28 and borders of 4
    fitted = fitted_geometry(frame, inner, area)
    assert fitted.width() == 1024 - 8 and fitted.height() == 610 - 32
    outer = QRect(fitted.x() - 4, fitted.y() - 28, fitted.width() + 8, fitted.height() + 32)
    assert area.contains(outer)
    same = QRect(100, 100, 800, 500)  # a window that fits stays as it is
    assert fitted_geometry(same.adjusted(-4, -28, 4, 4), same, area) == same
