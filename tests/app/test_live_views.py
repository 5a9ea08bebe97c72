"""Live views fed with a synthetic but realistic event stream (pytest-qt, offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math
from typing import Any

import numpy as np
import pytest

from learndrop.core.events import (
    CheckpointSaved,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    SavingsReport,
    ScoreCheck,
    UnitInfo,
)

pytestmark = pytest.mark.gui

THRESHOLD = 0.2


def make_units(n: int = 12) -> tuple[UnitInfo, ...]:
    """A ResNet-like list: stem, blocks, head; earlier units cost more FLOPs."""
    names = ["stem"] + [f"layer{1 + k // 3}.{k % 3}" for k in range(n - 2)] + ["fc"]
    flops = [max(1, int(4e7 / (1 + 0.5 * i))) for i in range(n - 1)] + [5_000]
    total = sum(flops)
    return tuple(UnitInfo(index=i, name=nm, modules=(nm,), params=2_000 * (i + 1) ** 2,
                          forward_flops=f, flops_share=f / total, is_head=(i == n - 1),
                          skippable=0 < i < n - 1)
                 for i, (nm, f) in enumerate(zip(names, flops)))


def make_stream(n_units: int = 12, epochs: int = 8, checks_per_epoch: int = 4,
                steps_per_epoch: int = 100, seed: int = 0) -> list[tuple[str, Any]]:
    """(hook name, event) pairs in the engine's order, with prefix drops after warm-up."""
    rng = np.random.default_rng(seed)
    units = make_units(n_units)
    n = len(units)
    total_params = sum(u.params for u in units)
    start = FitStart("demo", {"drop": {"threshold": THRESHOLD, "pinned": []}}, units, epochs,
                     steps_per_epoch, epochs * steps_per_epoch, "cpu", "freeze", True,
                     total_params, sum(u.forward_flops for u in units), "/tmp/demo")
    out: list[tuple[str, Any]] = [("on_fit_start", start)]
    dropped = np.zeros(n, dtype=bool)
    streak = np.zeros(n, dtype=int)
    tau = np.linspace(3.0, 30.0, n)  # checks until a unit's score falls by e
    check = 0
    for ep in range(epochs):
        out.append(("on_epoch_start", ep + 1))
        for c in range(checks_per_epoch):
            step = ep * steps_per_epoch + (c + 1) * steps_per_epoch // checks_per_epoch
            out.append(("on_progress", Progress(step, ep + 1, step - ep * steps_per_epoch,
                                                steps_per_epoch, 2.3 * math.exp(-step / 300),
                                                0.05, 1500.0, step * 0.1,
                                                (epochs * steps_per_epoch - step) * 0.1)))
            raw = np.exp(-check / tau) * (1 + 0.1 * rng.standard_normal(n))
            scores = [None if (dropped[i] or units[i].is_head) else float(np.clip(raw[i], 0, 1))
                      for i in range(n)]
            settled = [s is not None and s < THRESHOLD for s in scores]
            streak = np.where(settled, streak + 1, 0)
            out.append(("on_scores", ScoreCheck(step, step / steps_per_epoch, 0.05,
                                                tuple(None if s is None else s * 0.01
                                                      for s in scores),
                                                tuple(scores), tuple(0.0 for _ in scores),
                                                tuple(settled), tuple(int(k) for k in streak),
                                                0.001)))
            first = int(np.flatnonzero(~dropped)[0])
            if ep >= 1 and streak[first] >= 2 and not units[first].is_head and first < n - 2:
                dropped[first] = True
                out.append(("on_drop", DropEvent(step, step / steps_per_epoch, units[first].name,
                                                 first, "policy", scores[first], "freeze")))
            check += 1
        share = sum(u.flops_share for u, d in zip(units, dropped) if d)
        step = (ep + 1) * steps_per_epoch
        sav = SavingsReport(step, share, share * 2 / 3, share * 0.6, share * 0.4,
                            total_params - sum(u.params for u, d in zip(units, dropped) if d),
                            total_params, 0.1 * (1 - share), 0.1, share * 0.8,
                            12.0 * (ep + 1) * share, 60.0 * share, 0.8 if share else None)
        train_acc, val_acc = min(0.99, 0.5 + 0.05 * ep), min(0.97, 0.48 + 0.05 * ep)
        out.append(("on_epoch_end", EpochEnd(ep + 1, step, 2.0 / (ep + 2), train_acc,
                                              2.1 / (ep + 2), val_acc, None, 10.0,
                                              10.0 * (ep + 1), 10.0 * (epochs - ep - 1), 1500.0,
                                              0.05, tuple(u.name for u, d in zip(units, dropped)
                                                          if d), sav)))
        out.append(("on_checkpoint", CheckpointSaved(ep + 1, step, f"/tmp/demo/ckpt{ep + 1}.pt")))
    out.append(("on_fit_end", FitEnd("finished", "")))
    return out


def feed(panel: Any, events: list[tuple[str, Any]]) -> None:
    for hook, ev in events:
        getattr(panel, hook)(ev)


@pytest.fixture
def stream() -> list[tuple[str, Any]]:
    return make_stream()


@pytest.fixture
def panel(qtbot: Any) -> Any:
    from learndrop.app.live_panel import LivePanel

    p = LivePanel()
    qtbot.addWidget(p)
    p.resize(1400, 900)
    return p


def _drops(stream: list[tuple[str, Any]]) -> list[DropEvent]:
    return [ev for hook, ev in stream if hook == "on_drop"]


def test_stream_has_drops(stream: list[tuple[str, Any]]) -> None:
    assert 2 <= len(_drops(stream)) < 10


def test_score_plot_curves_markers_and_threshold(panel: Any, stream: Any) -> None:
    feed(panel, stream)
    sp = panel.score_plot
    scored = [u for u in panel.history.units if not u.is_head]
    assert sp.units_drawn() == len(scored)
    assert sp.curve_count() == len(scored)  # few units: one item per unit
    assert sp.marker_count() == len(_drops(stream))
    # the first dropped unit's curve runs through every check up to its drop, then stops
    h = panel.history
    first = _drops(stream)[0].index
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
    from learndrop.app.live_panel import LivePanel
    from learndrop.app.score_plot import MAX_BANDS

    p = LivePanel()
    qtbot.addWidget(p)
    feed(p, make_stream(n_units=60, epochs=2))
    assert p.score_plot.curve_count() == MAX_BANDS
    assert p.score_plot.units_drawn() == 59


def test_heatmap_shape_and_boundary(panel: Any, stream: Any) -> None:
    feed(panel, stream)
    panel.tabs.setCurrentWidget(panel.heatmap)
    n_checks = sum(1 for hook, _ in stream if hook == "on_scores")
    assert panel.heatmap.image_shape() == (n_checks, 12)
    x, y = panel.heatmap.boundary.getOriginalDataset()
    prefix = panel.history.prefix_at_checks()
    assert y is not None and y.max() == prefix.max() and y[0] == 0
    assert x[-1] == pytest.approx(panel.history.check_epochs()[-1])


def test_long_run_heatmap_and_curves_stay_small(qtbot: Any) -> None:
    from learndrop.app.live_panel import LivePanel
    from learndrop.app.score_plot import CHUNK_BINS

    p = LivePanel()
    qtbot.addWidget(p)
    stream = make_stream(n_units=6, epochs=4, checks_per_epoch=300)
    feed(p, stream)
    p.tabs.setCurrentWidget(p.heatmap)
    n_checks = p.history.n_checks()
    bins = p.history.bins
    assert n_checks > bins.n_bins
    assert p.heatmap.image_shape() == (bins.last_bin + 1, 6)
    # min/max of every bin: at most two points per bin plus one joint per chunk
    x, _y = p.score_plot.unit_curve(4)
    assert len(x) <= 2 * bins.n_bins + bins.n_bins // CHUNK_BINS
    assert p.score_plot.item_count() <= p.score_plot.curve_count() * bins.n_bins // CHUNK_BINS


def test_hidden_heatmap_waits_until_shown(panel: Any, stream: Any) -> None:
    feed(panel, stream[:20])
    panel.redraw()
    assert panel.is_dirty("heatmap") and panel.heatmap.image_shape() == ()
    panel.tabs.setCurrentWidget(panel.heatmap)
    assert not panel.is_dirty("heatmap") and panel.heatmap.image_shape()[1] == 12


def test_strip_states_pin_and_menu(panel: Any, stream: Any, qtbot: Any) -> None:
    feed(panel, stream[:-1])  # still running: actions enabled
    strip, h = panel.strip, panel.history
    theme = strip.theme
    first = _drops(stream)[0].index
    assert strip.state_of(first) == "dropped"
    assert strip.color_of(first) == theme.states["dropped"]
    live = h.dropped_prefix_len()
    assert strip.state_of(live) in ("learning", "settling")
    menu = strip.menu_for(live)
    texts = [a.text() for a in menu.actions()]
    assert "Pin unit" in texts and "Drop now" in texts
    pin = next(a for a in menu.actions() if a.text() == "Pin unit")
    with qtbot.waitSignal(panel.unit_action_requested) as sig:
        pin.trigger()
    assert sig.args == ["pin", h.units[live].name]
    assert strip.state_of(live) == "pinned" and strip.color_of(live) == theme.states["pinned"]
    unpin = [a for a in strip.menu_for(live).actions() if a.text() == "Unpin"]
    assert len(unpin) == 1
    drop = next(a for a in strip.menu_for(live + 1).actions() if a.text() == "Drop now")
    with qtbot.waitSignal(panel.unit_action_requested) as sig:
        drop.trigger()
    assert sig.args == ["drop", h.units[live + 1].name]
    head_texts = [a.text() for a in strip.menu_for(len(h.units) - 1).actions()]
    assert "Drop now" not in head_texts and "Pin unit" not in head_texts
    assert not [a for a in strip.menu_for(first).actions() if a.data() in ("pin", "drop")]


def test_strip_widths_click_and_tooltip(panel: Any, stream: Any, qtbot: Any) -> None:
    from PySide6.QtCore import Qt

    from learndrop.app.network_strip import block_widths

    widths = block_widths([0.7, 0.3, 0.0], 100.0, 10.0)
    assert sum(widths) == pytest.approx(100.0) and widths[2] == pytest.approx(10.0)
    assert widths[0] > widths[1] > widths[2]
    feed(panel, stream)
    panel.show()
    strip = panel.strip
    r0, r_head = strip.block_rect(0), strip.block_rect(11)
    assert r0.width() > r_head.width() >= 6
    center = r_head.center().toPoint()
    assert strip.unit_at(center) == 11
    with qtbot.waitSignal(panel.unit_selected) as sig:
        qtbot.mouseClick(strip, Qt.MouseButton.LeftButton,
                         pos=strip.block_rect(3).center().toPoint())
    assert sig.args == [panel.history.units[3].name]
    assert panel.details.unit == panel.history.units[3].name
    assert "params" in strip.tooltip_text(0).lower() or "parameters" in strip.tooltip_text(0)


def test_gauges_show_latest_numbers(panel: Any, stream: Any) -> None:
    feed(panel, stream)
    g = panel.gauges  # the last epoch's savings: 0.8168, 0.5445, 1,020,000 params, 78.4 s
    assert g.forward.value.text() == "81.7%"
    assert g.train.value.text() == "54.5%"
    assert g.params.value.text() == "1.0 M"
    assert g.time.value.text() == "1 m 18 s"
    assert g.speed.value.text() == "1,500" and g.speed.detail.text() == "images / s"
    assert g.accuracy.value.text() == "83.0%"  # the best validation accuracy, 0.48 + 0.05 x 7
    assert g.total_bar.value() == 100 and "finished" in g.eta_label.text()


def test_formatting() -> None:
    from learndrop.app.gauges import (
        format_count,
        format_duration,
        format_percent,
        format_rate,
    )

    assert format_percent(0.412) == "41.2%"
    assert format_count(1_300_000) == "1.3 M" and format_count(950) == "950"
    assert format_count(4.5e9) == "4.5 G" and format_count(250_000) == "250 k"
    assert format_duration(125) == "2 m 05 s" and format_duration(42.4) == "42 s"
    assert format_duration(3720) == "1 h 02 m" and format_duration(None) == "\u2013"
    assert format_rate(1234.4) == "1,234 img/s"


def test_event_log_lists_drops_and_errors(panel: Any, stream: Any, qtbot: Any) -> None:
    feed(panel, stream[:-1])
    panel.on_warning("disk almost full")
    panel.on_error("CUDA out of memory")
    panel.on_fit_end(FitEnd("failed", "out of memory"))
    log = panel.event_log
    rows = [log.row_text(r) for r in range(log.row_count())]
    for d in _drops(stream):
        assert any("Drop" in r and d.unit in r for r in rows)
    assert sum("Checkpoint" in r for r in rows) == 8
    err = next(r for r in range(log.row_count()) if "CUDA" in log.row_text(r))
    assert log.tree.topLevelItem(err).foreground(3).color() == log.theme.error
    text = log.copy_to_clipboard()
    assert "CUDA out of memory" in text and text.count("\n") == log.row_count() - 1


def test_metrics_and_details(panel: Any, stream: Any) -> None:
    feed(panel, stream)
    x, y = panel.metrics.curve_data("val_acc")
    assert list(x) == pytest.approx(list(range(1, 9)))
    assert y[-1] == pytest.approx(0.48 + 0.05 * 7)
    assert len(panel.metrics.curve_data("batch_loss")[0]) == 32
    d = _drops(stream)[0]
    panel.select_unit(d.unit)
    assert "Dropped" in panel.details.field_text("state")
    assert f"step {d.step}" in panel.details.field_text("dropped")


def test_timer_runs_only_while_live_and_redraws(panel: Any, stream: Any, qtbot: Any) -> None:
    panel.on_fit_start(stream[0][1])
    assert panel.timer.isActive() and 30 <= panel.timer.interval() <= 100
    for hook, ev in stream[1:12]:
        getattr(panel, hook)(ev)
    assert panel.is_dirty("scores")
    panel.timer.timeout.emit()  # one tick (not the event loop: a test may have exited it)
    assert not panel.is_dirty("scores") and not panel.is_dirty("strip")
    assert panel.score_plot.raw.seen == panel.history.bins.generation > 0
    feed(panel, stream[12:])
    assert not panel.timer.isActive() and not panel.is_dirty("gauges")


def test_load_history_and_reset(panel: Any, stream: Any) -> None:
    from learndrop.core.monitor import RunHistory

    h = RunHistory()
    for hook, ev in stream:
        getattr(h, hook)(ev)
    panel.load_history(h)
    assert panel.score_plot.marker_count() == len(_drops(stream))
    assert panel.event_log.row_count() == len(h.log)
    panel.reset()
    assert panel.score_plot.marker_count() == 0 and panel.event_log.row_count() == 0
    assert panel.gauges.forward.value.text() == "\u2013"
