"""Many stored runs at once: their settings side by side (only those that differ), runs that
differ only by seed grouped, each run's figures and its baseline's, the curves to overlay and
their means with a band.

The front ends (the app's many-runs dialog, a sweep's report) read these, so they agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import format as fmt
from ..store import RunRecord
from ._model import RunData

__all__ = ["flat_config", "differing_settings", "seed_key", "seed_groups", "RESULTS",
           "run_results", "values_of", "Curve", "curve", "mean_band", "CURVES", "X_AXES",
           "DEFAULT_X", "DEFAULT_Y", "setting_text", "run_label"]

#: settings that never make two runs different experiments
_IGNORED = ("output.name", "output.dir")
#: what tells apart runs that are the same experiment with another seed
_SEEDS = ("train.seed",)

#: the results a run has, as (key, label)
RESULTS = (("final_accuracy", "final accuracy"), ("best_accuracy", "best accuracy"),
           ("wall_time_s", "wall time (s)"), ("train_flops_saved", "training FLOPs saved"),
           ("time_saved", "training time saved"),
           ("accuracy_difference", "accuracy difference"), ("drops", "units dropped"),
           ("epochs", "epochs done"))
#: the trade-off a user chooses from: time saved (x) against accuracy given up (y)
DEFAULT_X, DEFAULT_Y = "time_saved", "accuracy_difference"
#: curves that can be overlaid: (key, label)
CURVES = (("val_accuracy", "validation accuracy"), ("val_loss", "validation loss"),
          ("train_loss", "training loss"), ("train_accuracy", "training accuracy"),
          ("score", "learning score of a unit"))
X_AXES = (("epoch", "epoch"), ("step", "step"), ("wall", "wall time (s)"))


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """``{"drop": {"threshold": 0.5}}`` as ``{"drop.threshold": 0.5}``."""
    out: dict[str, Any] = {}
    for section, values in config.items():
        if isinstance(values, dict):
            for name, value in values.items():
                out[f"{section}.{name}"] = value
    return out


def setting_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run_label(record: RunRecord, differing: Sequence[str], seed: bool = False) -> str:
    """What sets a run apart from the others: its values of the settings that differ (its
    seed only with ``seed``); a baseline says so."""
    flat = flat_config(record.config)
    shown = [p for p in differing if p not in ("train.seed", "drop.enabled")
             and (record.drop_enabled or not p.startswith("drop."))]
    if seed and "train.seed" in differing:
        shown.append("train.seed")
    words = [f"{p.split('.', 1)[1]}={setting_text(flat.get(p))}" for p in shown]
    return ", ".join((["baseline"] if not record.drop_enabled else []) + words) or record.label


def differing_settings(records: Sequence[RunRecord]) -> list[str]:
    """The settings (paths, in config order) whose values are not the same in every run;
    the run's name and folder are not settings."""
    flats = [flat_config(r.config) for r in records]
    paths: list[str] = []
    for flat in flats:
        paths += [p for p in flat if p not in paths and p not in _IGNORED]
    return [p for p in paths if len({repr(f.get(p)) for f in flats}) > 1]


def seed_key(record: RunRecord) -> str:
    """What a run is apart from its seed: runs with the same key differ only by seed."""
    flat = flat_config(record.config)
    return repr(sorted((p, repr(v)) for p, v in flat.items()
                       if p not in _IGNORED and p not in _SEEDS))


def seed_groups(records: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """The runs grouped with those that differ from them only by seed, in order of first
    appearance."""
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(seed_key(r), []).append(r)
    return list(groups.values())


def _baseline_key(record: RunRecord) -> str:
    flat = flat_config(record.config)
    return repr(sorted((p, repr(v)) for p, v in flat.items()
                       if p not in _IGNORED and p not in _SEEDS and not p.startswith("drop.")))


def run_results(records: Sequence[RunRecord]) -> dict[int, dict[str, float | None]]:
    """Each run's results by run id. ``time_saved`` is the share of wall time saved
    against the mean of its baselines among ``records`` (finished runs with dropping off and
    every other setting but the seed and the drop rule the same) where there are any, else
    the run's own measured saving; ``accuracy_difference`` is against those baselines (None
    without one)."""
    bases: dict[str, list[RunRecord]] = {}
    for r in records:
        if not r.drop_enabled and r.status == "finished":
            bases.setdefault(_baseline_key(r), []).append(r)
    out: dict[int, dict[str, float | None]] = {}
    for r in records:
        best = r.summary.best_accuracy
        row: dict[str, float | None] = {
            "final_accuracy": r.final_val_accuracy,
            "best_accuracy": best if fmt.is_number(best) else None,
            "wall_time_s": r.wall_time_s, "train_flops_saved": r.train_flops_saved_total,
            "drops": float(r.drops), "epochs": float(r.epochs_done)}
        base = bases.get(_baseline_key(r), [])
        base_wall = _mean([b.wall_time_s for b in base])
        base_acc = _mean([b.final_val_accuracy for b in base])
        if base_wall and r.wall_time_s:
            row["time_saved"] = 1.0 - r.wall_time_s / base_wall
        elif fmt.is_number(r.time_saved_s_total) and r.wall_time_s:
            saved = float(r.time_saved_s_total or 0.0)
            row["time_saved"] = saved / (r.wall_time_s + saved)
        else:
            row["time_saved"] = None
        row["accuracy_difference"] = (
            r.final_val_accuracy - base_acc
            if base_acc is not None and r.final_val_accuracy is not None else None)
        out[r.id] = row
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    known = [float(v) for v in values if v is not None and fmt.is_number(v)]
    return statistics.fmean(known) if known else None


def values_of(record: RunRecord, results: dict[str, float | None]) -> dict[str, Any]:
    """A run's settings and results in one mapping (settings by path, results by key)."""
    return {**flat_config(record.config), **results}


@dataclass(frozen=True)
class Curve:
    x: np.ndarray
    y: np.ndarray


def curve(data: RunData, metric: str, x_axis: str = "epoch", unit: str = "") -> Curve:
    """One run's curve: an epoch metric (``val_accuracy``, ``val_loss``, ``train_loss``,
    ``train_accuracy``) or a unit's learning score (``score`` with ``unit``), against the
    epoch, the step or the wall time (checks get the wall time of their step, read between
    the run's progress reports)."""
    if metric == "score":
        index = next((u.index for u in data.units if u.name == unit), -1)
        points = [(c.step, c.epoch, c.scores[index]) for c in data.checks
                  if 0 <= index < len(c.scores) and c.scores[index] is not None]
        steps = np.array([p[0] for p in points], dtype=float)
        epochs = np.array([p[1] for p in points], dtype=float)
        y = np.array([p[2] for p in points], dtype=float)
    else:
        steps = np.array([e.step for e in data.epochs], dtype=float)
        epochs = np.array([e.epoch + 1 for e in data.epochs], dtype=float)
        y = np.array([float(getattr(e, metric)) for e in data.epochs], dtype=float)
    if x_axis == "step":
        x = steps
    elif x_axis == "wall":
        x = _wall_at(data, steps)
    else:
        x = epochs
    return Curve(x, y)


def _wall_at(data: RunData, steps: np.ndarray) -> np.ndarray:
    known = sorted({(p.step, p.elapsed_s) for p in data.progress}
                   | {(e.step, e.elapsed_s) for e in data.epochs})
    if not known:
        return np.full(steps.shape, math.nan)
    xs = np.array([k[0] for k in known], dtype=float)
    ys = np.array([k[1] for k in known], dtype=float)
    return np.interp(steps, np.concatenate([[0.0], xs]), np.concatenate([[0.0], ys]))


def mean_band(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several runs' curves as (x, mean, standard deviation), point by point over the
    points they all have (the k-th epoch or check of each); the x of a point is its mean."""
    n = min((len(c.y) for c in curves), default=0)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    xs = np.vstack([c.x[:n] for c in curves])
    ys = np.vstack([c.y[:n] for c in curves])
    sd = ys.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(n)
    return xs.mean(axis=0), ys.mean(axis=0), sd
