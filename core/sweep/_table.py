"""A sweep's results: one row per combination of settings (and one per baseline), means and
spreads over its seeds, speed-up and accuracy against the baseline group it shares."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .. import format as fmt
from ..store import RunRecord
from ._plan import BASELINE, SweepPlan, job_key

__all__ = ["sweep_rows", "format_sweep_table", "run_figures", "RESULTS"]

#: the per-run figures a row gives the mean and spread of: (key, label)
RESULTS = (("final_accuracy", "final accuracy"), ("best_accuracy", "best accuracy"),
           ("wall_time_s", "wall time (s)"), ("train_flops_saved", "training FLOPs saved"),
           ("time_saved_s", "training time saved (s)"), ("drops", "units dropped"))


def run_figures(run: RunRecord) -> dict[str, float | None]:
    """The figures of one stored run that a sweep compares."""
    best = run.summary.best_accuracy if fmt.is_number(run.summary.best_accuracy) else None
    return {"final_accuracy": run.final_val_accuracy, "best_accuracy": best,
            "wall_time_s": run.wall_time_s, "train_flops_saved": run.train_flops_saved_total,
            "time_saved_s": run.time_saved_s_total, "drops": float(run.drops)}


def _mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    known = [float(v) for v in values if v is not None and fmt.is_number(v)]
    if not known:
        return None, None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


def sweep_rows(plan: SweepPlan, runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Baseline rows first (when the sweep has them), then one row per combination: its
    varied values, how many seeds finished, each figure's mean and spread over them, and
    against its baseline: ``speedup`` (baseline's mean wall time over this row's) and
    ``accuracy_delta`` (this row's mean final accuracy minus the baseline's)."""
    by_key: dict[str, list[RunRecord]] = {}
    for run in runs:
        key = plan.key_of(run.config)
        if key is not None and run.status == "finished":
            by_key.setdefault(key, []).append(run)
    seeds = plan.seed_list()

    def row(role: str, values: tuple[Any, ...], paths: Sequence[str]) -> dict[str, Any]:
        found = [r for s in seeds for r in by_key.get(job_key(role, values, s), [])[-1:]]
        out: dict[str, Any] = {"role": role, "values": dict(zip(paths, values)),
                               "seeds": len(found), "seeds_planned": len(seeds),
                               "runs": [r.name for r in found], "run_ids": [r.id for r in found]}
        figures = [run_figures(r) for r in found]
        for key, _ in RESULTS:
            out[key], out[f"{key}_sd"] = _mean_sd([f[key] for f in figures])
        return out

    rows: list[dict[str, Any]] = []
    base_paths = [p for p in plan.paths if not p.startswith("drop.")]
    bases: dict[tuple[Any, ...], dict[str, Any]] = {}
    if plan.baseline:
        for values in plan.combinations():
            shared = plan.baseline_values(values)
            if shared not in bases:
                bases[shared] = row(BASELINE, shared, base_paths)
                rows.append(bases[shared])
    for values in plan.combinations():
        r = row("run", values, plan.paths)
        base = bases.get(plan.baseline_values(values))
        r["speedup"] = r["accuracy_delta"] = None
        if base is not None and base["seeds"] and r["seeds"]:
            if base["wall_time_s"] and r["wall_time_s"]:
                r["speedup"] = base["wall_time_s"] / r["wall_time_s"]
            if fmt.is_number(base["final_accuracy"]) and fmt.is_number(r["final_accuracy"]):
                r["accuracy_delta"] = r["final_accuracy"] - base["final_accuracy"]
        rows.append(r)
    for b in bases.values():
        b["speedup"], b["accuracy_delta"] = (1.0, 0.0) if b["seeds"] else (None, None)
    return rows


def _pm(mean: Any, sd: Any, write: Any) -> str:
    if not fmt.is_number(mean):
        return "-"
    return write(mean) if not fmt.is_number(sd) else f"{write(mean)} \u00b1 {write(sd)}"


def _value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def format_sweep_table(plan: SweepPlan, rows: Sequence[dict[str, Any]]) -> str:
    """The sweep's table: one line per row; means over seeds \u00b1 their standard
    deviation."""
    names = [p.split(".", 1)[1] for p in plan.paths]
    widths = [max(len(n), len("(baseline)") if plan.baseline and p.startswith("drop.") else 0,
                  *(len(_value(v)) for v in vs)) for n, (p, vs) in zip(names, plan.axes)]
    width_of = dict(zip(plan.paths, widths))
    head = ("  ".join(f"{n:<{w}}" for n, w in zip(names, widths))
            + f"  {'seeds':>5}  {'val acc':>15}  {'d acc':>7}  {'wall s':>13}  "
              f"{'speed-up':>8}  {'train FLOPs-':>12}  {'drops':>5}")
    lines = [f"{len(plan.seed_list())} seed(s) per row; means \u00b1 standard deviation"
             + ("; d acc and speed-up against the baseline with the same other settings"
                if plan.baseline else ""), head, "-" * len(head)]
    for r in rows:
        cells = []
        for path in plan.paths:
            shown = ("(baseline)" if r["role"] == BASELINE and path.startswith("drop.")
                     else _value(r["values"].get(path, "")))
            cells.append(f"{shown:<{width_of[path]}}")
        acc = _pm(r["final_accuracy"], r["final_accuracy_sd"], lambda v: fmt.percent(v, 2))
        wall = _pm(r["wall_time_s"], r["wall_time_s_sd"], lambda v: f"{v:.1f}")
        delta = (f"{r['accuracy_delta'] * 100:+.2f}" if fmt.is_number(r["accuracy_delta"])
                 else "-")
        speed = fmt.speedup(r["speedup"]) if fmt.is_number(r["speedup"]) else "-"
        flops = fmt.percent(r["train_flops_saved"]) if fmt.is_number(
            r["train_flops_saved"]) else "-"
        drops = f"{r['drops']:.1f}" if fmt.is_number(r["drops"]) else "-"
        seeds = f"{r['seeds']}/{r['seeds_planned']}"
        lines.append("  ".join(cells) + f"  {seeds:>5}  {acc:>15}  {delta:>7}  {wall:>13}  "
                                        f"{speed:>8}  {flops:>12}  {drops:>5}")
    return "\n".join(lines)
