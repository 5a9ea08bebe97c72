"""Load check: memory and run-store size as score checks pile up.

Three measurements, each printing how the process's resident memory (RSS) and the run
store's size (database plus its write-ahead log) grow with the number of score checks, with
a straight-line fit (bytes per check and R^2):

- ``stream``: a synthetic event stream of a 52-unit network (ResNet-152's count) through
  :class:`StoreRecorder` -- many thousands of checks in seconds, no training;
- ``long``: a real run with a score check after every optimizer step
  (digits, small_cnn, ``drop.check_every=1``, nothing drops so every unit is scored);
- ``deep``: ResNet-152 (52 units) on tiny synthetic images, a check every 2 steps.

Usage::

    python scripts/load_check.py [--only stream,long,deep] [--checks 20000] [--epochs 30]
                                 [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def store_bytes(path: Path) -> int:
    """On disk: the database file plus its write-ahead log."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def store_logical_bytes(path: Path) -> int:
    """The database's own size as a reader sees it (the log's pages included once)."""
    import sqlite3

    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * size)
    finally:
        conn.close()


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Slope and R^2 of a least-squares line."""
    if len(xs) < 3:
        return float("nan"), float("nan")
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    total = ((y - y.mean()) ** 2).sum()
    return float(slope), float(1 - (resid ** 2).sum() / total) if total > 0 else 1.0


class Sampler:
    """Samples (checks, RSS, store size, store size on disk) every ``every`` checks."""

    def __init__(self, store: Path, every: int) -> None:
        self.store, self.every = store, every
        self.samples: list[tuple[int, int, int, int]] = []
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks % self.every == 0:
            self.samples.append((self.checks, rss_bytes(), store_logical_bytes(self.store),
                                 store_bytes(self.store)))

    def result(self, name: str, units: int, wall_s: float, **extra: Any) -> dict[str, Any]:
        s = self.samples
        checks = [c for c, *_ in s]
        store_slope, store_r2 = fit(checks, [b for _, _, b, _ in s])
        # memory: leave out the first fifth (allocator and caches warming up)
        warm = s[len(s) // 5:]
        rss_slope, rss_r2 = fit([c for c, *_ in warm], [r for _, r, *_ in warm])
        return {
            "name": name, "units": units, "checks": self.checks, "wall_s": round(wall_s, 1),
            "store_mb_end": round(s[-1][2] / 2**20, 2) if s else 0,
            "store_on_disk_mb_end": round(s[-1][3] / 2**20, 2) if s else 0,
            "store_bytes_per_check": round(store_slope, 1),
            "store_bytes_per_check_per_unit": round(store_slope / max(units - 1, 1), 1),
            "store_linear_r2": round(store_r2, 4),
            "rss_mb_first": round(s[0][1] / 2**20, 1) if s else 0,
            "rss_mb_end": round(s[-1][1] / 2**20, 1) if s else 0,
            "rss_bytes_per_check_after_warmup": round(rss_slope, 1),
            "samples": s, **extra,
        }


# ---- stream ---------------------------------------------------------------------------------
def check_stream(work: Path, checks: int) -> dict[str, Any]:
    from learndrop.core.events import (
        EpochEnd,
        FitEnd,
        FitStart,
        Progress,
        SavingsReport,
        ScoreCheck,
        UnitInfo,
    )
    from learndrop.core.store import StoreRecorder

    n = 52
    units = tuple(UnitInfo(index=i, name=f"unit{i}", modules=(f"m{i}",), params=1000 * i,
                           forward_flops=10_000 * i, flops_share=1 / n, is_head=i == n - 1)
                  for i in range(n))
    store = work / "stream.sqlite"
    steps_per_epoch = 500
    epochs = max(checks // steps_per_epoch, 1)
    rec = StoreRecorder(store)
    sampler = Sampler(store, every=max(checks // 40, 1))
    t0 = time.perf_counter()
    rec.on_fit_start(FitStart(
        run_name="stream", config={"model": {"name": "resnet152"}, "data": {"dataset": "x"}},
        units=units, epochs=epochs, steps_per_epoch=steps_per_epoch,
        total_steps=epochs * steps_per_epoch, device="cpu", mode="freeze", drop_enabled=True,
        total_params=60_000_000, forward_flops=10**9, output_dir=str(work / "stream")))
    rng = np.random.default_rng(0)
    step = 0
    savings = SavingsReport(step=0, forward_flops_saved_now=0.1, train_flops_saved_now=0.2,
                            forward_flops_saved_total=0.1, train_flops_saved_total=0.2,
                            trainable_params_now=1000, total_params=2000,
                            step_time_s_now=0.1, full_step_time_s_now=0.2,
                            measured_time_saved_now=0.5, time_saved_s_total=1.0,
                            projected_time_saved_s_total=2.0, efficiency_total=1.0)
    for epoch in range(epochs):
        rec.on_epoch_start(epoch)
        for _ in range(steps_per_epoch):
            step += 1
            if step % 20 == 0:
                rec.on_progress(Progress(step=step, epoch=epoch, batch=step % steps_per_epoch,
                                         batches=steps_per_epoch, loss=1.0, lr=0.1,
                                         images_per_s=100.0, elapsed_s=step * 0.1, eta_s=1.0))
            vals = rng.random(n)
            rec.on_scores(ScoreCheck(
                step=step, epoch=step / steps_per_epoch, lr=0.1,
                changes=tuple(float(v) for v in vals[:-1]) + (None,),
                scores=tuple(float(v) for v in vals[:-1]) + (None,),
                trends=tuple(float(v) - 0.5 for v in vals[:-1]) + (None,),
                settled=(False,) * n, streaks=(0,) * n, cost_s=0.001))
            sampler.check()
        rec.on_epoch_end(EpochEnd(
            epoch=epoch, step=step, train_loss=1.0, train_accuracy=0.5, val_loss=1.0,
            val_accuracy=0.5, val_accuracy_scaled=None, epoch_time_s=1.0,
            elapsed_s=step * 0.1, eta_s=1.0, images_per_s=100.0, lr=0.1, dropped=(),
            savings=savings))
    rec.on_fit_end(FitEnd(status="finished", message="done", summary={}))
    wall = time.perf_counter() - t0
    assert rec.error is None, rec.error
    return sampler.result("stream (synthetic events, 52 units)", n, wall,
                          recorder_s=round(rec.time_spent_s, 2),
                          recorder_ms_per_check=round(1000 * rec.time_spent_s / checks, 3))


# ---- real runs -------------------------------------------------------------------------------
def check_training(work: Path, name: str, settings: dict[str, Any], every: int
                   ) -> dict[str, Any]:
    from learndrop.core.config import RunConfig
    from learndrop.core.events import Callback
    from learndrop.core.store import StoreRecorder
    from learndrop.core.training import Trainer

    cfg = RunConfig()
    for key, value in settings.items():
        cfg.set(key, value)
    cfg.output.dir = str(work / name)
    store = work / f"{name}.sqlite"
    sampler = Sampler(store, every=every)
    units: list[int] = []

    class Probe(Callback):
        def on_fit_start(self, ev: Any) -> None:
            units.append(len(ev.units))

        def on_scores(self, ev: Any) -> None:
            sampler.check()

    rec = StoreRecorder(store)
    t0 = time.perf_counter()
    result = Trainer(cfg, [rec, Probe()]).fit()
    wall = time.perf_counter() - t0
    assert rec.error is None, rec.error
    s = result.summary
    return sampler.result(name, units[0] if units else 0, wall, status=result.status,
                          score_overhead=round(s.get("score_overhead", 0.0), 4),
                          recorder_s=round(rec.time_spent_s, 2))


def check_long(work: Path, epochs: int) -> dict[str, Any]:
    return check_training(work, "long", {
        "data.dataset": "digits", "model.name": "small_cnn", "data.image_size": 16,
        "train.batch_size": 16, "train.epochs": epochs, "drop.check_every": 1,
        "drop.threshold": 0.0, "train.log_every": 20, "train.device": "cpu"}, every=50)


def check_deep(work: Path, epochs: int) -> dict[str, Any]:
    return check_training(work, "deep", {
        "data.dataset": "synthetic", "data.synthetic_samples": 300,
        "data.synthetic_size": 8, "model.name": "resnet152", "train.batch_size": 4,
        "train.epochs": epochs, "drop.check_every": 2, "drop.threshold": 0.0,
        "train.log_every": 10, "train.device": "cpu"}, every=5)


def report(results: list[dict[str, Any]]) -> str:
    rows = [("", *[r["name"].split(" ")[0] for r in results])]
    keys = [("units (scored + head)", "units"), ("score checks", "checks"),
            ("wall time, s", "wall_s"), ("store at the end, MiB", "store_mb_end"),
            ("  on disk with its write-ahead log, MiB", "store_on_disk_mb_end"),
            ("store bytes per check", "store_bytes_per_check"),
            ("store bytes per check per unit", "store_bytes_per_check_per_unit"),
            ("store growth linear (R^2)", "store_linear_r2"),
            ("RSS at the first sample, MiB", "rss_mb_first"),
            ("RSS at the end, MiB", "rss_mb_end"),
            ("RSS growth per check after warm-up, bytes", "rss_bytes_per_check_after_warmup"),
            ("recorder time, s", "recorder_s")]
    for label, key in keys:
        rows.append((label, *[str(r.get(key, "")) for r in results]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="stream,long,deep")
    ap.add_argument("--checks", type=int, default=20000, help="checks in the stream test")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the long run")
    ap.add_argument("--deep-epochs", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("LEARNDROP_HOME", tempfile.mkdtemp(prefix="learndrop-load-"))
    import torch

    if os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory(prefix="learndrop-load-") as tmp:
        work = Path(tmp)
        for part in args.only.split(","):
            t0 = time.perf_counter()
            if part == "stream":
                results.append(check_stream(work, args.checks))
            elif part == "long":
                results.append(check_long(work, args.epochs))
            elif part == "deep":
                results.append(check_deep(work, args.deep_epochs))
            else:
                ap.error(f"unknown part {part!r}")
            print(f"{part}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
