"""Measure the live views' cost: redraw time at scale and GUI-thread responsiveness.

(a) Redraw: a 1400x900 LivePanel gets a 150-unit run's score checks in chunks up to 10,000
    checks; after each chunk every view is marked dirty and one frame (refresh + paint) is
    timed, for the score-plot tab and the heatmap tab.
(b) Responsiveness: a background thread emits a simulated engine stream (progress, score checks,
    drops, epoch ends) through queued Qt signals while a 10 ms QTimer in the GUI thread records
    the largest gap between its ticks.

(c) What-if explorer: a 150-unit run of 1,000 score checks in the explorer; each change of a
    setting (threshold, patience, trend tolerance, warm-up, window, order) is timed from the
    change to the end of Qt's paint: the replay with the engine's rule and the redraw.

Targets: a frame at 10k checks well under 50 ms; largest timer gap under 100 ms; a what-if
update under 100 ms.

    QT_QPA_PLATFORM=offscreen python scripts/bench_gui.py [--units 150] [--checks 10000]
    QT_QPA_PLATFORM=offscreen python scripts/bench_gui.py --whatif-only [--whatif-checks 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from learndrop.app.dialogs import WhatIfDialog
from learndrop.app.panels import LivePanel
from learndrop.core.events import (
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    SavingsReport,
    ScoreCheck,
    UnitInfo,
)
from learndrop.core.monitor import RunHistory, recorded_run

STEPS_PER_CHECK = 10
STEPS_PER_EPOCH = 500
#: frames left out after a bulk feed and a tab switch (a shown tab lays out, then paints)
WARMUP_FRAMES = 2


class SyntheticRun:
    """A plausible event stream: scores decay, deeper units later; prefix drops."""

    def __init__(self, n_units: int, n_checks: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n = n_units
        flops = np.linspace(2.0, 0.5, n_units)
        flops[-1] = 0.01
        share = flops / flops.sum()
        self.units = tuple(UnitInfo(i, "head" if i == n_units - 1 else f"block{i}",
                                    (f"m{i}",), 10_000 * (1 + i % 7), int(1e6 * flops[i]),
                                    float(share[i]), is_head=(i == n_units - 1))
                           for i in range(n_units))
        t = np.arange(n_checks)[:, None]
        tau = np.linspace(0.05, 0.9, n_units)[None, :] * n_checks
        self.scores = np.clip(np.exp(-t / tau) * (1 + 0.15 * rng.standard_normal(
            (n_checks, n_units))), 0.0, 1.0)
        self.n_checks = n_checks
        self.dropped = 0
        self.total_steps = n_checks * STEPS_PER_CHECK

    def fit_start(self) -> FitStart:
        return FitStart("bench", {"drop": {"threshold": 0.2}}, self.units,
                        self.total_steps // STEPS_PER_EPOCH, STEPS_PER_EPOCH, self.total_steps,
                        "cpu", "freeze", True, sum(u.params for u in self.units),
                        sum(u.forward_flops for u in self.units), "")

    def events_for_check(self, k: int) -> list[tuple[str, Any]]:
        """Events around check ``k`` in engine order."""
        step = (k + 1) * STEPS_PER_CHECK
        epoch = step / STEPS_PER_EPOCH
        row = self.scores[k]
        scores = tuple(None if (i < self.dropped or i == self.n - 1) else float(row[i])
                       for i in range(self.n))
        settled = tuple(s is not None and s < 0.2 for s in scores)
        out: list[tuple[str, Any]] = [
            ("on_progress", Progress(step, int(epoch) + 1, step % STEPS_PER_EPOCH,
                                     STEPS_PER_EPOCH, 1.0 / (1 + epoch), 0.05, 2000.0,
                                     step * 0.01, (self.total_steps - step) * 0.01)),
            ("on_scores", ScoreCheck(step, epoch, 0.05, scores, scores, (0.0,) * self.n,
                                     settled, tuple(int(s) for s in settled), 0.001))]
        if settled[self.dropped] and self.dropped < self.n - 2 and k > 50:
            u = self.units[self.dropped]
            out.append(("on_drop", DropEvent(step, epoch, u.name, u.index, "policy",
                                             scores[self.dropped], "freeze")))
            self.dropped += 1
        if step % STEPS_PER_EPOCH == 0:
            frac = float(sum(u.flops_share for u in self.units[: self.dropped]))
            sav = SavingsReport(step, frac, frac * 2 / 3, frac / 2, frac / 3, 1000, 2000, 0.01,
                                0.02, frac * 0.8, step * 0.001, step * 0.002, 0.8)
            e = int(epoch)
            out.append(("on_epoch_end", EpochEnd(e, step, 1 / (1 + e), 0.5, 1.1 / (1 + e), 0.5,
                                                 None, 5.0, step * 0.01, 1.0, 2000.0, 0.05, (),
                                                 sav)))
        return out


def rss_mb() -> float:
    """This process's resident memory (Linux), to show how the app's memory grows."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def live_frame_ms(app: QApplication, panel: LivePanel, run: SyntheticRun, k: int) -> float:
    """One live frame: the events of check ``k`` arrive, the timer's redraw runs and Qt
    paints what changed."""
    for hook, ev in run.events_for_check(k):
        getattr(panel, hook)(ev)
    t0 = time.perf_counter()
    panel.redraw()
    app.processEvents()
    return 1e3 * (time.perf_counter() - t0)


def full_paint_ms(panel: LivePanel) -> float:
    """Everything redrawn from scratch (what a resize, zoom or tab switch costs)."""
    t0 = time.perf_counter()
    for view in panel.views.values():
        view.refresh(force=True)  # type: ignore[attr-defined]
    panel.grab()
    return 1e3 * (time.perf_counter() - t0)


def bench_redraw(app: QApplication, n_units: int, n_checks: int, chunk: int) -> None:
    frames = 5
    run = SyntheticRun(n_units, n_checks + 4 * frames * (n_checks // chunk + 1))
    panel = LivePanel()
    panel.resize(1400, 900)
    panel.show()
    panel.on_fit_start(run.fit_start())
    panel.timer.stop()  # frames are driven by hand here
    app.processEvents()
    rows: list[tuple[int, int, list[float], list[float], float, float, float]] = []
    feed_s, n_events, k = 0.0, 0, 0
    target = n_checks
    while k < target:
        t0 = time.perf_counter()
        for _ in range(max(0, min(chunk, target - k - 2 * (frames + WARMUP_FRAMES)))):
            for hook, ev in run.events_for_check(k):
                getattr(panel, hook)(ev)
                n_events += 1
            k += 1
        feed_s += time.perf_counter() - t0
        panel.tabs.setCurrentIndex(0)
        for _ in range(WARMUP_FRAMES):  # the bulk feed and the tab switch settle here
            live_frame_ms(app, panel, run, k)
            k += 1
        scores = []
        for _ in range(frames):
            scores.append(live_frame_ms(app, panel, run, k))
            k += 1
        full_scores = full_paint_ms(panel)
        panel.tabs.setCurrentIndex(1)
        for _ in range(WARMUP_FRAMES):
            live_frame_ms(app, panel, run, k)
            k += 1
        heat = []
        for _ in range(frames):
            heat.append(live_frame_ms(app, panel, run, k))
            k += 1
        full_heat = full_paint_ms(panel)
        rows.append((panel.history.n_checks(), len(panel.history.drops), scores, heat,
                     full_scores, full_heat, rss_mb()))
    print(f"\n(a) redraw cost, {n_units} units, LivePanel 1400x900, all views live")
    print("    live frame = one check's events, the timer's redraw, Qt's paint (mean/max of 5,")
    print(f"    after {WARMUP_FRAMES} unmeasured frames that absorb the bulk feed and the tab "
          "switch, whose cost is the 'full' column)")
    print("    full = every view rebuilt and the whole panel painted (resize, zoom, tab switch)")
    print(f"{'checks':>7} {'drops':>6} {'scores tab ms':>16} {'heatmap tab ms':>16} "
          f"{'full(scores)':>13} {'full(heatmap)':>14} {'RSS MB':>7}")
    for n, d, s, h, fs, fh, mem in rows:
        print(f"{n:>7} {d:>6} {statistics.mean(s):>7.1f} / {max(s):>6.1f} "
              f"{statistics.mean(h):>7.1f} / {max(h):>6.1f} {fs:>13.1f} {fh:>14.1f} "
              f"{mem:>7.0f}")
    every = [v for r in rows for v in r[2] + r[3]]
    if len(rows) >= 2:
        grow = (rows[-1][6] - rows[0][6]) / max(rows[-1][0] - rows[0][0], 1) * 2**20
        print(f"  app memory growth: {grow:,.0f} bytes per score check "
              f"({grow / n_units:,.1f} per unit and check)")
    print(f"  all live frames: mean {statistics.mean(every):.1f} ms, max {max(every):.1f} ms")
    print(f"  feeding the history: {1e6 * feed_s / max(1, n_events):.0f} us per event")
    panel.close()


class Emitter(QObject):
    """Lives in the GUI thread; its signals are emitted from the producer thread (queued)."""

    event = Signal(str, object)


def bench_responsiveness(app: QApplication, n_units: int, preload: int, seconds: float,
                         checks_per_s: float) -> None:
    total = preload + int(seconds * checks_per_s) + 10
    run = SyntheticRun(n_units, total)
    panel = LivePanel()
    panel.resize(1400, 900)
    panel.show()
    panel.on_fit_start(run.fit_start())
    for k in range(preload):
        for hook, ev in run.events_for_check(k):
            getattr(panel, hook)(ev)
    for _ in range(3):  # the first paint of a big history happens before the measurement
        panel.redraw()
        app.processEvents()
        time.sleep(0.05)

    emitter = Emitter()
    emitter.event.connect(lambda hook, ev: getattr(panel, hook)(ev))
    stop = threading.Event()
    sent = [0]

    def produce() -> None:
        k = preload
        period = 1.0 / checks_per_s
        next_t = time.perf_counter()
        while not stop.is_set() and k < total:
            for hook, ev in run.events_for_check(k):
                emitter.event.emit(hook, ev)
                sent[0] += 1
            k += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))

    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    ticker = QTimer()
    ticker.setInterval(10)
    ticker.timeout.connect(tick)
    ticker.start()
    producer = threading.Thread(target=produce, name="bench-producer", daemon=True)
    producer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    ticker.stop()  # before the join, which blocks this thread for the producer's last sleep
    stop.set()
    producer.join()
    panel.on_fit_end(FitEnd("finished", ""))
    g = np.array(gaps[1:])
    print(f"\n(b) GUI-thread responsiveness, {n_units} units, {preload} checks preloaded, "
          f"{checks_per_s:g} checks/s + progress for {seconds:g} s ({sent[0]} events, "
          f"queued signals from a thread)")
    print(f"  10 ms timer gaps: median {np.median(g):.1f} ms  p99 {np.percentile(g, 99):.1f} ms"
          f"  max {g.max():.1f} ms  (ticks {g.size})")
    print(f"  checks shown at the end: {panel.history.n_checks()}")
    panel.close()


def bench_whatif(app: QApplication, n_units: int, n_checks: int) -> None:
    run = SyntheticRun(n_units, n_checks)
    events: list[Any] = [run.fit_start()]
    for k in range(n_checks):
        events += [ev for _, ev in run.events_for_check(k)]
    history = RunHistory()
    for ev in events:
        name = {"FitStart": "on_fit_start", "Progress": "on_progress", "ScoreCheck": "on_scores",
                "DropEvent": "on_drop", "EpochEnd": "on_epoch_end"}[type(ev).__name__]
        getattr(history, name)(ev)
    t0 = time.perf_counter()
    view = WhatIfDialog(1, "bench", recorded_run(events), history)
    view.resize(1400, 820)
    view.show()
    app.processEvents()
    opened = 1e3 * (time.perf_counter() - t0)
    changes: list[tuple[str, dict[str, Any]]] = (
        [("threshold", {"threshold": t / 100}) for t in range(10, 95, 5)]
        + [("patience", {"patience": p}) for p in (1, 3, 4, 2)]
        + [("trend tolerance", {"trend_tolerance": t}) for t in (0.01, 0.05, 0.3, 0.1)]
        + [("warm-up", {"warmup_epochs": w}) for w in (0, 3, 6, 1)]
        + [("window, stepped by 1", {"window": w}) for w in (4, 5, 6)]
        + [("window, seen before", {"window": w}) for w in (4, 5, 3)]
        + [("window, jump (cold)", {"window": w}) for w in (12,)]
        + [("order any", {"order": "any"}), ("order prefix", {"order": "prefix"})])
    times: dict[str, list[float]] = {}
    replays: dict[str, list[float]] = {}
    for kind, settings in changes:
        t0 = time.perf_counter()
        view.set_settings(**settings)
        app.processEvents()
        times.setdefault(kind, []).append(1e3 * (time.perf_counter() - t0))
        replays.setdefault(kind, []).append(view.last_replay_ms)
        idle_until = time.perf_counter() + 0.6  # a person's pause: the dialog's idle work runs
        while time.perf_counter() < idle_until:
            app.processEvents()
            time.sleep(0.01)
    print(f"\n(c) what-if explorer, {n_units} units x {n_checks} score checks, 1400x820: "
          f"opened (first replay included) in {opened:.0f} ms")
    print("    one update = the setting changed, the run replayed with the rule, the views "
          "redrawn and painted")
    for kind, values in times.items():
        print(f"  {kind:<22} mean {statistics.mean(values):7.1f} ms   max {max(values):7.1f} ms"
              f"   (replay alone: mean {statistics.mean(replays[kind]):6.1f} ms; "
              f"{len(values)} changes)")
    view.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=150)
    ap.add_argument("--checks", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rate", type=float, default=20.0, help="score checks per second in (b)")
    ap.add_argument("--whatif-checks", type=int, default=1000, help="score checks in (c)")
    ap.add_argument("--whatif-only", action="store_true", help="measure (c) only")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    bench_whatif(app, args.units, args.whatif_checks)
    if args.whatif_only:
        return
    bench_redraw(app, args.units, args.checks, args.chunk)
    bench_responsiveness(app, args.units, max(0, args.checks - int(args.seconds * args.rate)),
                         args.seconds, args.rate)


if __name__ == "__main__":
    main()
