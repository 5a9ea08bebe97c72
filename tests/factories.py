"""Factories shared by the tests: a plausible run's event stream (recorded or replayed), a
longer one for the live views, a callback recording hooks, the settings of a tiny real run,
folders of images, small IDX data set files, and the check of a one-line error.

Importable from any test (``pytest`` puts ``tests/`` on the path); fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import gzip
import math
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from learndrop.core.config import RunConfig
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
    UnitInfo,
)
from learndrop.core.store import EpochStart, RunMessage, StoreRecorder
from learndrop.core.summary import RunSummary

UNITS = (
    UnitInfo(0, "stem", ("conv1", "bn1"), 464, 1_200_000, 0.30),
    UnitInfo(1, "block1", ("layer1.0",), 9_280, 1_600_000, 0.40, skippable=True),
    UnitInfo(2, "block2", ("layer2.0",), 18_560, 1_000_000, 0.25, skippable=True),
    UnitInfo(3, "head", ("fc",), 650, 200_000, 0.05, is_head=True),
)


def make_events(name: str = "demo-run", *, epochs: int = 3, steps_per_epoch: int = 4,
                drop: bool = True, output_dir: str = "", status: str = "finished",
                accuracy_gain: float = 0.0) -> list[tuple[str, Any]]:
    """A realistic event stream as (hook, payload) pairs, in the engine's order."""
    config = {"data": {"dataset": "digits"}, "model": {"name": "small_cnn"},
              "drop": {"enabled": drop, "mode": "freeze", "threshold": 0.3},
              "train": {"epochs": epochs, "batch_size": 32}}
    out: list[tuple[str, Any]] = [("on_fit_start", FitStart(
        run_name=name, config=config, units=UNITS, epochs=epochs,
        steps_per_epoch=steps_per_epoch, total_steps=epochs * steps_per_epoch, device="cpu",
        mode="freeze", drop_enabled=drop, total_params=28_954, forward_flops=4_000_000,
        output_dir=output_dir))]
    dropped: list[str] = []
    step, check, elapsed, cum = 0, 0, 0.0, 0.0
    for epoch in range(epochs):  # indexed from 0, as the engine does
        out.append(("on_epoch_start", epoch))
        for batch in range(1, steps_per_epoch + 1):
            step += 1
            elapsed += 0.25
            if batch % 2 == 0:
                out.append(("on_progress", Progress(
                    step=step, epoch=epoch, batch=batch, batches=steps_per_epoch,
                    loss=2.3 / step, lr=0.05, images_per_s=512.0 + step,
                    elapsed_s=elapsed, eta_s=10.0 - elapsed)))
                check += 1
                live = [u.name not in dropped and not u.is_head for u in UNITS]
                scores = tuple((1.0 / (check + u.index)) if live[u.index] else None
                               for u in UNITS)
                out.append(("on_scores", ScoreCheck(
                    step=step, epoch=step / steps_per_epoch, lr=0.05,
                    changes=tuple(None if s is None else s * 0.01 for s in scores),
                    scores=scores,
                    trends=tuple(None if s is None else -0.05 * s for s in scores),
                    settled=tuple(s is not None and s < 0.3 for s in scores),
                    streaks=tuple(int(s is not None and s < 0.3) for s in scores),
                    cost_s=0.001)))
            if drop and step in (6, 10):
                unit = UNITS[len(dropped)]
                dropped.append(unit.name)
                out.append(("on_drop", DropEvent(step=step, epoch=step / steps_per_epoch,
                                                 unit=unit.name, index=unit.index,
                                                 reason="policy", score=0.25, mode="freeze")))
        if epoch == 1:
            out.append(("on_warning", "loss spiked at step 7"))
        fwd = sum(u.flops_share for u in UNITS if u.name in dropped) / 3
        cum = (cum * epoch + fwd) / (epoch + 1)
        savings = SavingsReport(
            step=step, forward_flops_saved_now=fwd, train_flops_saved_now=fwd * 0.9,
            forward_flops_saved_total=cum, train_flops_saved_total=cum * 0.9,
            trainable_params_now=28_954 - 464 * len(dropped), total_params=28_954,
            step_time_s_now=0.2 if dropped else None, full_step_time_s_now=0.25,
            measured_time_saved_now=0.2 if dropped else None,
            time_saved_s_total=0.05 * len(dropped),
            projected_time_saved_s_total=0.06 * len(dropped),
            efficiency_total=0.83 if dropped else None,
            time_saved_low_s_total=0.04 * len(dropped) if dropped else None,
            time_saved_high_s_total=0.06 * len(dropped) if dropped else None,
            predicted_time_saved_s_total=0.06 * len(dropped) if dropped else None,
            step_time_spread_now=0.05)
        acc = min(0.99, 0.5 + 0.4 * (epoch + 1) / epochs + accuracy_gain)
        out.append(("on_epoch_end", EpochEnd(
            epoch=epoch, step=step, train_loss=1.0 / (epoch + 1), train_accuracy=acc + 0.02,
            val_loss=1.1 / (epoch + 1), val_accuracy=acc, val_accuracy_scaled=None,
            epoch_time_s=1.0, elapsed_s=elapsed, eta_s=max(0.0, 3.0 - elapsed),
            images_per_s=500.0, lr=0.05, dropped=tuple(dropped), savings=savings)))
        out.append(("on_checkpoint", CheckpointSaved(epoch=epoch + 1, step=step,
                                                     path=f"{output_dir}/checkpoint.pt")))
    if status != "running":
        out.append(("on_fit_end", FitEnd(status=status, message="done",
                                         summary=RunSummary(status=status, best_accuracy=0.8,
                                                            wall_time_s=12.5))))
    return out


#: the drop that :func:`make_undone_events` undoes: the first one (``stem``, step 6), at step 8
UNDONE = RestoreEvent(step=8, epoch=0.8, unit="stem", index=0, reason="loss",
                      loss_before=0.4125, loss_after=0.5311)


def make_undone_events(name: str = "undone-run", **kw: Any) -> list[tuple[str, Any]]:
    """:func:`make_events` with its first drop undone by the policy (:data:`UNDONE`), as
    the engine's reversible drops do when the training loss rises after a drop."""
    stream = make_events(name, **kw)
    first_drop = next(i for i, (hook, _) in enumerate(stream) if hook == "on_drop")
    after = next(i for i, (hook, ev) in enumerate(stream)
                 if i > first_drop and hook == "on_progress" and ev.step >= UNDONE.step)
    stream.insert(after + 1, ("on_restore", UNDONE))
    return stream


def expected_replay(stream: list[tuple[str, Any]]) -> list[Any]:
    """What ``load_events`` returns for a recorded stream."""
    out = []
    for hook, payload in stream:
        if hook == "on_epoch_start":
            out.append(EpochStart(payload))
        elif hook == "on_warning":
            out.append(RunMessage("warning", payload))
        elif hook == "on_savings":
            continue  # the store keeps the savings the epochs' ends carry
        else:
            out.append(payload)
    return out


def record(path: Path, stream: list[tuple[str, Any]], **kw: Any) -> StoreRecorder:
    rec = StoreRecorder(path, **kw)
    for hook, payload in stream:
        getattr(rec, hook)(payload)
    assert rec.error is None, rec.error
    return rec


#: the drop threshold of the live-view stream
LIVE_THRESHOLD = 0.2


def make_live_units(n: int = 12) -> tuple[UnitInfo, ...]:
    """A ResNet-like list: stem, blocks, head; earlier units cost more FLOPs."""
    names = ["stem"] + [f"layer{1 + k // 3}.{k % 3}" for k in range(n - 2)] + ["fc"]
    flops = [max(1, int(4e7 / (1 + 0.5 * i))) for i in range(n - 1)] + [5_000]
    total = sum(flops)
    return tuple(UnitInfo(index=i, name=nm, modules=(nm,), params=2_000 * (i + 1) ** 2,
                          forward_flops=f, flops_share=f / total, is_head=(i == n - 1),
                          skippable=0 < i < n - 1)
                 for i, (nm, f) in enumerate(zip(names, flops)))


def make_live_stream(n_units: int = 12, epochs: int = 8, checks_per_epoch: int = 4,
                steps_per_epoch: int = 100, seed: int = 0) -> list[tuple[str, Any]]:
    """A longer run for the live views, as (hook name, event) pairs in the engine's order:
    ``n_units`` ResNet-like units whose scores decay (deeper units later), prefix drops after
    the first epoch."""
    rng = np.random.default_rng(seed)
    units = make_live_units(n_units)
    n = len(units)
    total_params = sum(u.params for u in units)
    start = FitStart("demo", {"drop": {"threshold": LIVE_THRESHOLD, "pinned": []}}, units, epochs,
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
            settled = [s is not None and s < LIVE_THRESHOLD for s in scores]
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
                            12.0 * (ep + 1) * share, 60.0 * share, 0.8 if share else None,
                            time_saved_low_s_total=10.0 * (ep + 1) * share if share else None,
                            time_saved_high_s_total=14.0 * (ep + 1) * share if share else None,
                            predicted_time_saved_s_total=(15.0 * (ep + 1) * share
                                                          if share else None),
                            step_time_spread_now=0.04)
        train_acc, val_acc = min(0.99, 0.5 + 0.05 * ep), min(0.97, 0.48 + 0.05 * ep)
        out.append(("on_epoch_end", EpochEnd(ep + 1, step, 2.0 / (ep + 2), train_acc,
                                              2.1 / (ep + 2), val_acc, None, 10.0,
                                              10.0 * (ep + 1), 10.0 * (epochs - ep - 1), 1500.0,
                                              0.05, tuple(u.name for u, d in zip(units, dropped)
                                                          if d), sav)))
        out.append(("on_checkpoint", CheckpointSaved(ep + 1, step, f"/tmp/demo/ckpt{ep + 1}.pt")))
    out.append(("on_fit_end", FitEnd("finished", "")))
    return out


def feed(target: Any, events: list[tuple[str, Any]]) -> None:
    """Call ``target``'s hooks with the events, in order."""
    for hook, ev in events:
        getattr(target, hook)(ev)


def drops_of(stream: list[tuple[str, Any]]) -> list[DropEvent]:
    """The drops of a stream, in order."""
    return [ev for hook, ev in stream if hook == "on_drop"]


class HookRecorder(Callback):
    """A callback that records every hook call as (hook name, payload), in order."""

    CODES = {"on_fit_start": "S", "on_epoch_start": "E", "on_progress": "P",
             "on_scores": "C", "on_drop": "D", "on_epoch_end": "e", "on_checkpoint": "K",
             "on_warning": "W", "on_user_action": "U", "on_fit_end": "F", "on_savings": "$"}

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *a: calls.append((name, a[0] if a else None))
        return object.__getattribute__(self, name)

    @property
    def sequence(self) -> str:
        """One letter a call (``CODES``), e.g. ``SEPCeKF``."""
        return "".join(self.CODES.get(hook, "?") for hook, _ in self.calls)

    def of(self, code: str) -> list[Any]:
        """The payloads of the calls with this letter."""
        return [p for hook, p in self.calls if self.CODES.get(hook) == code]


# ---- a tiny real run ------------------------------------------------------------------------
TINY_RUN: dict[str, Any] = {
    "data.dataset": "digits", "model.name": "small_cnn", "data.limit": 320,
    "data.image_size": 16, "train.batch_size": 32, "train.epochs": 4, "drop.threshold": 1.0,
    "drop.patience": 1, "drop.warmup_epochs": 1, "drop.window": 2, "drop.trend_tolerance": 10.0,
    "drop.settle": "tolerance", "drop.checks_per_epoch": 1, "drop.reversible": False,
}
"""A few seconds on CPU (digits, the small CNN) that drops units from the second epoch on,
setting by setting (dotted paths, as ``RunConfig.set`` and the ``--section.name`` flags)."""


def tiny_config(out: Path, **changes: Any) -> RunConfig:
    """The tiny run writing below ``out``; ``changes`` by dotted path:
    ``tiny_config(out, **{"train.epochs": 2})``."""
    cfg = RunConfig()
    for path, value in {**TINY_RUN, "output.dir": str(out), **changes}.items():
        cfg.set(path, value)
    return cfg


def tiny_flags(**changes: Any) -> list[str]:
    """The tiny run as command-line flags (``--data.limit 320 ...``), ``changes`` as above."""
    flags: list[str] = []
    for path, value in {**TINY_RUN, **changes}.items():
        flags += [f"--{path}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


# ---- files ----------------------------------------------------------------------------------
def write_images(folder: Path, count: int, mode: str = "RGB", size: int = 12) -> None:
    """``count`` random PNG images (``img0.png``, ...) of ``size`` x ``size + 2`` pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)) + count)
    for i in range(count):
        shape = (size, size + 2, 3) if mode == "RGB" else (size, size + 2)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels, mode=None).convert(mode).save(folder / f"img{i}.png")


# ---- the command line -----------------------------------------------------------------------
RunCli = Callable[[list[str]], tuple[int, str, str]]
"""The ``run_cli`` fixture: ``learndrop ARGV`` in this process -> (exit code, stdout, stderr)."""


def one_line(err: str) -> str:
    """The one line a refused command prints (with no traceback); fails on more or fewer."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert lines[0].startswith("learndrop"), lines[0]
    return lines[0]


def store_status(store: Path) -> list[tuple[str, str]]:
    """Each stored run's name and status, in the order they were recorded (read with plain
    SQLite, not the store's own code)."""
    import sqlite3

    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT name, status FROM runs ORDER BY id").fetchall()


# ---- MNIST-style IDX files ----------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """An array in the IDX format (unsigned bytes, big-endian header)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I",
                                                                  *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, *, n_train: int = 40, n_test: int = 20, gz: bool = False,
                  dot_names: bool = False, side: int = 28) -> dict[str, np.ndarray]:
    """Four small IDX files in ``folder``; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n_train)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images"] = rng.integers(0, 256, (n, side, side)).astype(np.uint8)
        arrays[f"{prefix}-labels"] = (np.arange(n) % 10).astype(np.uint8)
    for key, array in arrays.items():
        ndim = array.ndim
        name = f"{key}.idx{ndim}-ubyte" if dot_names else f"{key}-idx{ndim}-ubyte"
        data = idx_bytes(array)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str, options: str = "") -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``"1m"``) mounted on ``folder`` and always unmounted after;
    ``options``: more mount options (``"ro"``: read-only). The test is skipped where it
    cannot be mounted (not root, no mount command)."""
    import subprocess

    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o",
                               f"size={size}" + (f",{options}" if options else ""), "tmpfs",
                               str(folder)], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a small tmpfs here")
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=20)
