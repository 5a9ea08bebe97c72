"""Factories shared by the tests: a plausible run's event stream (recorded or replayed), small
IDX data set files.

Importable from any test (``pytest`` puts ``tests/`` on the path)."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

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
            step=step, forward_flops_saved=fwd, train_flops_saved=fwd * 0.9,
            cumulative_forward_flops_saved=cum, cumulative_train_flops_saved=cum * 0.9,
            trainable_params=28_954 - 464 * len(dropped), total_params=28_954,
            step_time_s=0.2 if dropped else None, full_step_time_s=0.25,
            measured_time_saved=0.2 if dropped else None, time_saved_s=0.05 * len(dropped),
            projected_time_saved_s=0.06 * len(dropped),
            efficiency=0.83 if dropped else None,
            time_saved_low_s=0.04 * len(dropped) if dropped else None,
            time_saved_high_s=0.06 * len(dropped) if dropped else None,
            predicted_time_saved_s=0.06 * len(dropped) if dropped else None,
            step_time_spread=0.05)
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


def expected_replay(stream: list[tuple[str, Any]]) -> list[Any]:
    """What ``load_events`` returns for a recorded stream."""
    out = []
    for hook, payload in stream:
        if hook == "on_epoch_start":
            out.append(EpochStart(payload))
        elif hook == "on_warning":
            out.append(RunMessage("warning", payload))
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
                            time_saved_low_s=10.0 * (ep + 1) * share if share else None,
                            time_saved_high_s=14.0 * (ep + 1) * share if share else None,
                            predicted_time_saved_s=15.0 * (ep + 1) * share if share else None,
                            step_time_spread=0.04)
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
