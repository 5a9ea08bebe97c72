"""The bench's figures from its runs: means and spreads over seeds, time to a target
accuracy, efficiency above noise, and the table printed at the end."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from .. import format as fmt
from ..summary import EpochResult

__all__ = ["ROLES", "TARGET_MARGIN", "Z", "time_to_accuracy", "mean_sd", "aggregate",
           "format_table"]

#: the bench's runs, in the order they are trained for each seed
ROLES = ("baseline", "learndrop", "time-matched", "ld-budgeted")
#: the default target accuracy is the baseline's final mean accuracy minus this
TARGET_MARGIN = 0.005
#: standard errors a measured saving must exceed to count (as the savings meter's)
Z = 2.5

#: per-run figures averaged over seeds (the others are taken from the first seed)
_MEANS = ("wall_time_s", "train_time_s", "final_accuracy", "best_accuracy",
          "forward_flops_saved_total", "train_flops_saved_total", "dropped", "score_overhead",
          "data_time_share", "load_per_cpu", "time_to_target_s")


def time_to_accuracy(history: Sequence[EpochResult], target: float) -> float | None:
    """The wall time at the end of the first epoch whose validation accuracy reaches
    ``target``; ``None`` when none does. Epochs recorded without their elapsed time count
    by the sum of epoch times."""
    total = 0.0
    for h in history:
        total += h.epoch_time_s
        if fmt.is_number(h.val_accuracy) and h.val_accuracy >= target:
            return h.elapsed_s if fmt.is_number(h.elapsed_s) else total
    return None


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the known values (``None`` for one value)."""
    known = [float(v) for v in values if v is not None and fmt.is_number(v)]
    if not known:
        return None, None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


def aggregate(per_seed: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Rows per role (means and spreads over seeds) and the headline figures, from the
    per-seed rows (each with ``run`` its role, ``seed`` and ``history``)."""
    for run in per_seed:
        run["time_to_target_s"] = time_to_accuracy(run["history"], target)
    by_role = {role: [r for r in per_seed if r["run"] == role] for role in ROLES}
    rows = []
    for role in ROLES:
        runs = by_role[role]
        if not runs:
            continue
        row: dict[str, Any] = {"run": role, "seeds": len(runs),
                               "run_name": runs[0]["run_name"],
                               "epochs": runs[0]["epochs"],
                               "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
                               "peak_memory_kind": runs[0]["peak_memory_kind"],
                               "target_reached": sum(r["time_to_target_s"] is not None
                                                     for r in runs)}
        for key in _MEANS:
            row[key], row[f"{key}_sd"] = mean_sd([r.get(key) for r in runs])
        if row["target_reached"] < len(runs):
            row["time_to_target_s"] = None  # a mean over the runs that reached it misleads
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["speedup"] = base["wall_time_s"] / row["wall_time_s"]
        row["time_ratio"] = row["wall_time_s"] / base["wall_time_s"]
        row["accuracy_delta"] = row["final_accuracy"] - base["final_accuracy"]
        seed_speedups = [b["wall_time_s"] / r["wall_time_s"]
                         for b, r in zip(by_role["baseline"], by_role[row["run"]])]
        row["speedup_min"], row["speedup_max"] = min(seed_speedups), max(seed_speedups)
    return {"rows": rows, **_headline(rows, by_role)}


def _headline(rows: list[dict[str, Any]], by_role: dict[str, list[dict[str, Any]]]
              ) -> dict[str, Any]:
    base, ld = rows[0], rows[1]
    timed = next((r for r in rows if r["run"] == "time-matched"), None)
    budgeted = next((r for r in rows if r["run"] == "ld-budgeted"), None)
    measured = 1.0 - ld["train_time_s"] / base["train_time_s"] if base["train_time_s"] else 0.0
    predicted = ld["train_flops_saved_total"] or 0.0
    noise = _saving_noise(by_role["baseline"], by_role["learndrop"])
    if noise is not None:
        efficiency = measured / predicted if predicted > 0.01 and measured > noise else None
        efficiency_source = "between runs"
    else:  # one seed: two runs' loop times differ by the machine's drift as much as by the
        # drops, so the efficiency is the Learn&Drop run's own (its step times before and
        # after its drops, each a median), when that run's saving is above its noise
        own = [float(r["meter_efficiency"]) for r in by_role["learndrop"]
               if fmt.is_number(r.get("meter_efficiency"))]
        efficiency = (statistics.fmean(own) if len(own) == len(by_role["learndrop"])
                      else None)
        efficiency_source = "within the run"
    hists = [r["history"] for r in by_role["baseline"]]
    n_epochs = min(len(h) for h in hists)
    curve = [statistics.fmean(h[e].val_accuracy for h in hists) for e in range(n_epochs)]
    half = max(base["epochs"] // 2, 1)
    return {
        "speedup": ld["speedup"], "speedup_min": ld["speedup_min"],
        "speedup_max": ld["speedup_max"], "time_ratio": ld["time_ratio"],
        "accuracy_delta": ld["accuracy_delta"],
        "time_matched_accuracy_delta": (ld["final_accuracy"] - timed["final_accuracy"]
                                        if timed else None),
        "budgeted_accuracy_delta": (budgeted["final_accuracy"] - timed["final_accuracy"]
                                    if timed and budgeted else None),
        "measured_train_time_saved": measured, "measured_train_time_saved_noise": noise,
        "predicted_train_time_saved": predicted,
        "efficiency": efficiency, "efficiency_source": efficiency_source,
        "score_overhead": ld["score_overhead"],
        "data_time_share": max((r["data_time_share"] or 0.0) for r in rows),
        "baseline_improves_in_second_half": len(curve) >= 2 and curve[-1] > curve[half - 1],
        "baseline_val_accuracy_by_epoch": curve,
    }


def _saving_noise(base: list[dict[str, Any]], ld: list[dict[str, Any]]) -> float | None:
    """``Z`` standard errors of the measured share of training time saved, from the
    spread over seeds (``None`` with one seed)."""
    if len(base) < 2 or len(ld) < 2:
        return None
    mb, sb = mean_sd([r["train_time_s"] for r in base])
    ml, sl = mean_sd([r["train_time_s"] for r in ld])
    if not mb or not ml or sb is None or sl is None:
        return None
    ratio = ml / mb
    rel = math.hypot(sb / mb / math.sqrt(len(base)), sl / ml / math.sqrt(len(ld)))
    return Z * ratio * rel


def _pm(mean: Any, sd: Any, write: Any) -> str:
    return write(mean) if not fmt.is_number(sd) else f"{write(mean)} \u00b1 {write(sd)}"


def format_table(result: dict[str, Any]) -> str:
    """The bench's table: means over the seeds (\u00b1 their standard deviation)."""
    n = len(result.get("seeds", [0]))
    target = result.get("target_accuracy")
    head = (f"{'run':<13} {'wall s':>13} {'speed-up':>9} {'val acc':>16} {'d acc':>7} "
            f"{'to target':>11} {'train FLOPs-':>12} {'data':>6} {'peak MB':>8}")
    lines = [f"{n} seed{'s' if n != 1 else ''}; means \u00b1 standard deviation; target "
             f"accuracy {fmt.percent(target, 2)}", head, "-" * len(head)]
    for r in result["rows"]:
        wall = _pm(r["wall_time_s"], r.get("wall_time_s_sd"), lambda v: f"{v:.1f}")
        acc = _pm(r["final_accuracy"], r.get("final_accuracy_sd"),
                  lambda v: fmt.percent(v, 2))
        reached = r.get("target_reached", 0)
        to_target = (f"{r['time_to_target_s']:.1f} s" if fmt.is_number(r["time_to_target_s"])
                     else "never" if not reached else f"{reached} of {r.get('seeds', n)}")
        lines.append(f"{r['run']:<13} {wall:>13} {fmt.speedup(r['speedup']):>9} {acc:>16} "
                     f"{r['accuracy_delta'] * 100:>+6.2f} {to_target:>11} "
                     f"{fmt.percent(r['train_flops_saved_total']):>12} "
                     f"{fmt.percent(r.get('data_time_share')):>6} "
                     f"{r['peak_memory_mb']:>8.0f}")
    eff = result["efficiency"]
    noise = result.get("measured_train_time_saved_noise")
    measured = fmt.percent(result["measured_train_time_saved"])
    if fmt.is_number(noise):
        measured += f" \u00b1 {fmt.percent(noise)}"
    lines.append(
        f"training time saved {measured}, training FLOPs saved "
        f"{fmt.percent(result['predicted_train_time_saved'])}: efficiency "
        f"{'n/a (within noise)' if eff is None else f'{eff:.2f}'}"
        f"{f' ({src})' if eff is not None and (src := result.get('efficiency_source')) else ''}"
        f"; speed-up over seeds "
        f"{fmt.speedup(result['speedup_min'])} to {fmt.speedup(result['speedup_max'])}")
    lines.append(
        f"score checks {fmt.percent(result['score_overhead'], 2)} of step time; data "
        f"pipeline at most {fmt.percent(result['data_time_share'])} of loop time; baseline "
        f"still improving in its second half: "
        f"{'yes' if result['baseline_improves_in_second_half'] else 'no'}")
    if fmt.is_number(result.get("budgeted_accuracy_delta")):
        lines.append(f"at the time-matched budget: Learn&Drop "
                     f"{fmt.points(result['budgeted_accuracy_delta'])} against the full "
                     f"network")
    for caveat in result.get("caveats", []):
        lines.append(f"caution: {caveat}")
    return "\n".join(lines)
