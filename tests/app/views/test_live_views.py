"""The live views fed a synthetic but realistic event stream through the live panel
(pytest-qt, offscreen): score curves, heatmap, network strip, gauges, event log, metrics and
unit details."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

from factories import drops_of, feed, make_live_stream
from learndrop.app.panels import LivePanel
from learndrop.app.views import (
    block_widths,
    format_count,
    format_duration,
    format_percent,
    format_rate,
)
from learndrop.app.views.score_plot import CHUNK_BINS, MAX_BANDS
from learndrop.core.events import FitEnd

pytestmark = pytest.mark.gui


def test_stream_has_drops(stream: list[tuple[str, Any]]) -> None:
    assert 2 <= len(drops_of(stream)) < 10


def test_score_plot_curves_markers_and_threshold(live_panel: LivePanel, stream: Any) -> None:
    feed(live_panel, stream)
    sp = live_panel.score_plot
    scored = [u for u in live_panel.history.units if not u.is_head]
    assert sp.units_drawn() == len(scored)
    assert sp.curve_count() == len(scored)  # few units: one item per unit
    assert sp.marker_count() == len(drops_of(stream))
    # the first dropped unit's curve runs through every check up to its drop, then stops
    h = live_panel.history
    first = drops_of(stream)[0].index
    x, y = sp.unit_curve(first)
    seen = np.unique(x[np.isfinite(y)])
    np.testing.assert_allclose(seen, h.check_epochs()[: h.drop_of[first].check])
    assert len(np.unique(sp.unit_curve(10)[0])) == h.n_checks()  # never dropped
    assert sp.threshold_line.isVisible() and sp.threshold_line.value() == pytest.approx(0.2)
    sp.set_log_scale(True)
    assert sp.threshold_line.value() == pytest.approx(math.log10(0.2))
    assert np.nanmax(sp.unit_curve(10)[1]) <= 0.0  # curves are drawn in log10
    sp.set_smoothing(True)
    assert all(item.isVisible() for item in sp.smooth.items.values())
    _xs, ys = sp.unit_curve(10, smoothed=True)
    assert np.isfinite(ys).sum() > 0 and np.nanmax(ys) < np.nanmax(sp.unit_curve(10)[1]) + 1e-9
    sp.set_smoothing(False)
    assert not any(item.isVisible() for item in sp.smooth.items.values())


def test_many_units_use_few_items(qtbot: Any) -> None:
    p = LivePanel()
    qtbot.addWidget(p)
    feed(p, make_live_stream(n_units=60, epochs=2))
    assert p.score_plot.curve_count() == MAX_BANDS
    assert p.score_plot.units_drawn() == 59


def test_heatmap_shape_and_boundary(live_panel: LivePanel, stream: Any) -> None:
    feed(live_panel, stream)
    live_panel.tabs.setCurrentWidget(live_panel.heatmap)
    n_checks = sum(1 for hook, _ in stream if hook == "on_scores")
    assert live_panel.heatmap.image_shape() == (n_checks, 11)  # a row per unit but the head
    x, y = live_panel.heatmap.boundary.getOriginalDataset()
    h = live_panel.history
    assert y is not None and y[0] == 0
    assert y.max() == max(h.prefix_at_checks().max(), h.dropped_prefix_len())
    assert x[-1] == pytest.approx(h.check_epochs()[-1])


def test_long_run_heatmap_and_curves_stay_small(qtbot: Any) -> None:
    p = LivePanel()
    qtbot.addWidget(p)
    stream = make_live_stream(n_units=6, epochs=4, checks_per_epoch=300)
    feed(p, stream)
    p.tabs.setCurrentWidget(p.heatmap)
    n_checks = p.history.n_checks()
    bins = p.history.bins
    assert n_checks > bins.n_bins
    assert p.heatmap.image_shape() == (bins.last_bin + 1, 5)
    # min/max of every bin: at most two points per bin plus one joint per chunk
    x, _y = p.score_plot.unit_curve(4)
    assert len(x) <= 2 * bins.n_bins + bins.n_bins // CHUNK_BINS
    assert p.score_plot.item_count() <= p.score_plot.curve_count() * bins.n_bins // CHUNK_BINS


def test_strip_states_pin_and_menu(live_panel: LivePanel, stream: Any, qtbot: Any) -> None:
    feed(live_panel, stream[:-1])  # still running: actions enabled
    strip, h = live_panel.strip, live_panel.history
    theme = strip.theme
    first = drops_of(stream)[0].index
    assert strip.state_of(first) == "dropped"
    assert strip.color_of(first) == theme.states["dropped"]
    live = h.dropped_prefix_len()
    assert strip.state_of(live) in ("learning", "settling")
    menu = strip.menu_for(live)
    texts = [a.text() for a in menu.actions()]
    assert "Pin unit" in texts and "Drop now" in texts
    pin = next(a for a in menu.actions() if a.text() == "Pin unit")
    with qtbot.waitSignal(live_panel.unit_action_requested) as sig:
        pin.trigger()
    assert sig.args == ["pin", h.units[live].name]
    assert strip.state_of(live) == "pinned" and strip.color_of(live) == theme.states["pinned"]
    unpin = [a for a in strip.menu_for(live).actions() if a.text() == "Unpin"]
    assert len(unpin) == 1
    drop = next(a for a in strip.menu_for(live + 1).actions() if a.text() == "Drop now")
    with qtbot.waitSignal(live_panel.unit_action_requested) as sig:
        drop.trigger()
    assert sig.args == ["drop", h.units[live + 1].name]
    head_texts = [a.text() for a in strip.menu_for(len(h.units) - 1).actions()]
    assert "Drop now" not in head_texts and "Pin unit" not in head_texts
    assert not [a for a in strip.menu_for(first).actions() if a.data() in ("pin", "drop")]


def test_strip_widths_click_and_tooltip(live_panel: LivePanel, stream: Any, qtbot: Any) -> None:
    widths = block_widths([0.7, 0.3, 0.0], 100.0, 10.0)
    assert sum(widths) == pytest.approx(100.0) and widths[2] == pytest.approx(10.0)
    assert widths[0] > widths[1] > widths[2]
    feed(live_panel, stream)
    live_panel.show()
    strip = live_panel.strip
    r0, r_head = strip.block_rect(0), strip.block_rect(11)
    assert r0.width() > r_head.width() >= 6
    center = r_head.center().toPoint()
    assert strip.unit_at(center) == 11
    with qtbot.waitSignal(live_panel.unit_selected) as sig:
        qtbot.mouseClick(strip, Qt.MouseButton.LeftButton,
                         pos=strip.block_rect(3).center().toPoint())
    assert sig.args == [live_panel.history.units[3].name]
    assert live_panel.details.unit == live_panel.history.units[3].name
    assert "params" in strip.tooltip_text(0).lower() or "parameters" in strip.tooltip_text(0)


def test_gauges_show_latest_numbers(live_panel: LivePanel, stream: Any) -> None:
    feed(live_panel, stream)
    g = live_panel.gauges  # the last epoch's savings: 0.8168, 0.5445, 1,020,000 params, 78.4 s
    assert g.forward.value.text() == "81.7%"
    assert g.train.value.text() == "54.5%"
    # the big figures are the saving per step now, and say so; the run's share so far is
    # under them (the figure the status bar and the run history show)
    assert g.forward.suffix.text() == g.train.suffix.text() == "now"
    assert g.train.detail.text().startswith("so far ")
    assert g.forward.detail.text().startswith("so far ")
    assert g.params.value.text() == "1.0 M"
    assert g.time.value.text() == "1 min 18 s"
    assert g.time.detail.text() == ("range 1 min 05 s to 1 min 31 s \u00b7 FLOP-predicted "
                                    "1 min 38 s \u00b7 by the end 49.0 s \u00b7 efficiency 0.80")
    assert g.speed.value.text() == "1,500" and g.speed.detail.text() == "images / s"
    assert g.accuracy.value.text() == "83.0%"  # the best validation accuracy, 0.48 + 0.05 x 7
    assert g.total_bar.value() == 100 and "finished" in g.eta_label.text()


def test_gauges_follow_a_drop_before_the_epoch_ends(live_panel: LivePanel, stream: Any) -> None:
    """The engine reports the savings of a new drop state at once (on_savings); the gauges
    show it without waiting for the epoch's end."""
    import dataclasses

    first = next(i for i, (hook, _) in enumerate(stream) if hook == "on_drop")
    ends = [ev for hook, ev in stream[:first] if hook == "on_epoch_end"]
    feed(live_panel, stream[: first + 1])
    live_panel.redraw()
    g = live_panel.gauges
    before = g.train.value.text()
    now = dataclasses.replace(ends[-1].savings, step=stream[first][1].step,
                              train_flops_saved_now=0.125, trainable_params_now=1000)
    live_panel.on_savings(now)
    live_panel.redraw()
    assert before != "12.5%" and g.train.value.text() == "12.5%"
    assert g.params.value.text() == "1.0 k"
    assert live_panel.history.latest_savings() is now


def test_time_saved_within_noise_says_so() -> None:
    import dataclasses

    from learndrop.app.views.gauges import time_saved_detail
    from learndrop.core.events import SavingsReport

    noisy = SavingsReport(100, 0.4, 0.45, 0.3, 0.35, 10, 20, 0.01, 0.012, 0.1, 8.0, 12.0,
                          None, time_saved_low_s_total=-2.0, time_saved_high_s_total=18.0,
                          predicted_time_saved_s_total=10.0)
    assert time_saved_detail(noisy) == ("range -2 s to 18.0 s \u00b7 FLOP-predicted 10.0 s "
                                        "\u00b7 by the end 12.0 s \u00b7 within noise")
    unknown = dataclasses.replace(noisy, time_saved_low_s_total=None,
                                  time_saved_high_s_total=None,
                                  predicted_time_saved_s_total=None)
    assert time_saved_detail(unknown) == "by the end 12.0 s"


def test_formatting() -> None:
    assert format_percent(0.412) == "41.2%"
    assert format_count(1_300_000) == "1.3 M" and format_count(950) == "950"
    assert format_count(4.5e9) == "4.5 G" and format_count(250_000) == "250 k"
    # one duration format for the app, the reports and the command line (core.format)
    assert format_duration(125) == "2 min 05 s" and format_duration(42.4) == "42.4 s"
    assert format_duration(3720) == "1 h 02 min" and format_duration(None) == "\u2013"
    assert format_rate(1234.4) == "1,234 img/s"


def test_event_log_lists_drops_and_errors(live_panel: LivePanel, stream: Any, qtbot: Any) -> None:
    feed(live_panel, stream[:-1])
    live_panel.on_warning("disk almost full")
    live_panel.on_error("CUDA out of memory")
    live_panel.on_fit_end(FitEnd("failed", "out of memory"))
    log = live_panel.event_log
    rows = [log.row_text(r) for r in range(log.row_count())]
    for d in drops_of(stream):
        assert any("Drop" in r and d.unit in r for r in rows)
    assert sum("Checkpoint" in r for r in rows) == 8
    err = next(r for r in range(log.row_count()) if "CUDA" in log.row_text(r))
    assert log.tree.topLevelItem(err).foreground(3).color() == log.theme.error
    text = log.copy_to_clipboard()
    assert "CUDA out of memory" in text and text.count("\n") == log.row_count() - 1


def test_metrics_and_details(live_panel: LivePanel, stream: Any) -> None:
    feed(live_panel, stream)
    x, y = live_panel.metrics.curve_data("val_acc")
    assert list(x) == pytest.approx(list(range(1, 9)))
    assert y[-1] == pytest.approx(0.48 + 0.05 * 7)
    assert len(live_panel.metrics.curve_data("batch_loss")[0]) == 32
    d = drops_of(stream)[0]
    live_panel.select_unit(d.unit)
    assert "Dropped" in live_panel.details.field_text("state")
    assert f"step {d.step}" in live_panel.details.field_text("dropped")


def test_gauges_explain_savings_and_follow_pause_and_end(live_panel: LivePanel,
                                                          stream: Any) -> None:
    """Time saved: measured (never rounded to nothing) next to the FLOP-predicted value;
    freeze mode's zero forward saving says why; the time left says paused while paused; a
    run that ended counts its complete epochs."""
    import dataclasses

    from learndrop.core.events import UserAction

    ends = [i for i, (hook, _) in enumerate(stream) if hook == "on_epoch_end"]
    cut = ends[3] + 1
    feed(live_panel, stream[:cut])
    g = live_panel.gauges
    last = stream[ends[3]][1]
    small = dataclasses.replace(last.savings, time_saved_s_total=0.042,
                                forward_flops_saved_now=0.0)
    live_panel.on_epoch_end(dataclasses.replace(last, savings=small))
    live_panel.redraw()
    assert g.time.value.text() == "0.042 s"
    assert "FLOP-predicted" in g.time.detail.text()
    predicted = small.predicted_time_saved_s_total
    assert format_duration(predicted, precise=True) in g.time.detail.text()
    assert g.forward.value.text() == "0.0%" and "freeze" in g.forward.detail.text()
    assert "cache and skip save it" in g.forward.detail.text()
    assert g.eta_label.text().startswith("Time left: ") and "paused" not in g.eta_label.text()
    live_panel.on_user_action(UserAction("pause", "", last.step, 4.0, 0.0))
    live_panel.redraw()
    assert g.eta_label.text() == "Time left: paused"
    live_panel.on_user_action(UserAction("resume", "", last.step, 4.0, 0.0))
    report = next(ev for hook, ev in stream[cut:] if hook == "on_progress")
    live_panel.on_progress(report)  # a report in the fifth epoch
    live_panel.redraw()
    assert g.epoch_label.text() == f"Epoch {report.epoch + 1} of 8"
    live_panel.on_fit_end(FitEnd("stopped", ""))
    live_panel.redraw()
    assert g.epoch_label.text() == "4 of 8 epochs complete"  # as the run history counts


def test_score_plot_names_the_curve_under_the_cursor(live_panel: LivePanel, stream: Any,
                                                     qtbot: Any) -> None:
    """Hovering a curve names its unit with the score and epoch there, and draws it bold;
    away from every curve nothing is named."""
    from PySide6.QtCore import QPointF

    feed(live_panel, stream)
    live_panel.show()
    qtbot.waitExposed(live_panel)
    sp, h = live_panel.score_plot, live_panel.history
    k = h.n_checks() - 1
    unit = 10  # never dropped
    epoch, score = float(h.check_epochs()[k]), float(h.score_matrix()[k, unit])
    found = sp.curve_near(epoch, score)
    assert found is not None and found[0] == unit and found[2] == pytest.approx(score)
    assert sp.curve_near(epoch, 5.0) is None  # far above every curve
    # through the mouse: the scene position of that point
    scene = sp.plot.vb.mapViewToScene(QPointF(epoch, score))
    sp._on_mouse_moved(scene)
    assert sp.hovered == unit
    assert sp.readout_text().startswith(f"{h.units[unit].name}: {score:.3f} at epoch")
    assert len(sp.hover_curve.getData()[0]) == h.n_checks()
    sp._on_mouse_moved(sp.plot.vb.mapViewToScene(QPointF(epoch, 5.0)))
    assert sp.hovered is None and sp.readout_text() == ""
    assert "logarithmic" in sp.log_box.toolTip() and "moving average" in sp.smooth_box.toolTip()


def test_smoothing_strength_and_markers_on_the_smoothed_curves(live_panel: LivePanel,
                                                               stream: Any) -> None:
    feed(live_panel, stream)
    sp, h = live_panel.score_plot, live_panel.history
    raw_markers = sp.marker_positions()
    sp.set_smoothing(True)
    assert sp.span_box.isEnabled() and h.smoothing_alpha == pytest.approx(2 / 7)
    live_panel.redraw()
    smoothed = h.smoothed_score_matrix()
    expected = [(d.epoch, pytest.approx(float(smoothed[d.check - 1, d.index])))
                for d in h.drops]
    assert sp.marker_positions() == expected and sp.marker_positions() != raw_markers
    before = float(smoothed[-1, 10])
    sp.set_smoothing_span(20)
    assert h.smoothing_alpha == pytest.approx(2 / 21)
    assert float(h.smoothed_score_matrix()[-1, 10]) != pytest.approx(before)
    assert sp.view_options() == {"log_scale": False, "smooth": True, "smooth_checks": 20}
    sp.set_smoothing(False)
    live_panel.redraw()
    assert sp.marker_positions() == raw_markers


def test_event_log_hides_checkpoints(live_panel: LivePanel, stream: Any) -> None:
    feed(live_panel, stream)
    log = live_panel.event_log
    rows = log.row_count()
    log.kind_actions["checkpoint"].setChecked(False)
    assert log.row_count() == rows - 8
    assert not any("Checkpoint" in log.row_text(r) for r in range(log.row_count()))
    assert log.view_options() == {"hidden": "checkpoint"}
    live_panel.on_checkpoint(stream[-2][1])
    live_panel.redraw()
    assert log.row_count() == rows - 8  # new ones stay hidden too
    log.set_view_options({"hidden": ""})
    assert log.row_count() == rows + 1


def test_head_and_tiny_units_can_be_hovered_and_clicked(live_panel: LivePanel, stream: Any,
                                                        qtbot: Any) -> None:
    """The head's share of the work is tiny; its block still has a finger's width, shows
    its tooltip and selects it."""
    feed(live_panel, stream)
    live_panel.show()
    strip = live_panel.strip
    head = len(live_panel.history.units) - 1
    assert live_panel.history.units[head].flops_share < 0.001
    rect = strip.block_rect(head)
    assert rect.width() >= strip.min_block_width() - 0.5
    assert strip.unit_at(rect.center().toPoint()) == head
    assert "(head)" in strip.tooltip_text(head)
    with qtbot.waitSignal(live_panel.unit_selected) as sig:
        qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert sig.args == [live_panel.history.units[head].name]
    assert strip.state_of(head) == "kept"  # the head always trains, never "settling"


def test_kept_units_and_a_pin_that_blocks_later_drops(live_panel: LivePanel, stream: Any,
                                                      qtbot: Any) -> None:
    import dataclasses

    start = stream[0][1]
    config = {"drop": {"threshold": 0.2, "pinned": [], "keep_last": 1, "order": "prefix"}}
    feed(live_panel, [("on_fit_start", dataclasses.replace(start, config=config)),
                      *stream[1:-1]])
    h, strip = live_panel.history, live_panel.strip
    last = len(h.units) - 2  # the unit before the head always trains (keep_last = 1)
    check = next(ev for hook, ev in reversed(stream) if hook == "on_scores")
    live_panel.on_scores(dataclasses.replace(check, settled=(True,) * len(check.settled)))
    assert h.latest_settled[last] and strip.state_of(last) == "kept"  # not "settling"
    first_live = h.dropped_prefix_len()
    notices: list[str] = []
    live_panel.notice.connect(notices.append)
    live_panel.strip.unit_action_requested.emit("pin", h.units[first_live].name)
    assert notices and "drop front to back" in notices[0]
    assert h.units[first_live + 1].name in notices[0]
    assert any("cannot be dropped either" in e.text for e in h.log)
