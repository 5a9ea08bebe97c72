"""A run's summary as the command line prints it: a table of lines, or one line of JSON."""

from __future__ import annotations

import json

from .. import format as fmt
from ..summary import RunSummary

__all__ = ["print_summary", "json_summary"]


def print_summary(s: RunSummary) -> None:
    lines = [
        f"status          {s.status}",
        f"final accuracy  {fmt.percent(s.final_accuracy, 2)} "
        f"(best {fmt.percent(s.best_accuracy, 2)})",
        f"wall time       {fmt.duration(s.wall_time_s)}",
        f"units dropped   {len(s.dropped)} of {s.units - 1}",
    ]
    if s.final_accuracy_scaled is not None:
        lines.insert(2, f"scaled-down acc {fmt.percent(s.final_accuracy_scaled, 2)}")
    for d in s.dropped:
        lines.append(f"  {d.unit:<14} epoch {d.epoch:.2f} (step {d.step}, {d.reason})")
    v = s.savings
    eff = v.efficiency_total
    low = v.time_saved_low_s_total
    noise = low is not None and low <= 0
    lines += [
        f"forward FLOPs saved over the run   {fmt.percent(v.forward_flops_saved_total)}",
        f"training FLOPs saved over the run  {fmt.percent(v.train_flops_saved_total)}",
        f"trainable params at the end        {v.trainable_params_now:,} of {v.total_params:,}",
        f"time per step (median)             {fmt.step_time(v.step_time_s_now)} "
        f"(full network {fmt.step_time(v.full_step_time_s_now)})",
        "measured step time saved           " + (
            fmt.percent(v.measured_time_saved_now) if v.measured_time_saved_now is not None
            else "n/a"),
        "time saved, measured               " + (
            fmt.span(v.time_saved_s_total, low, v.time_saved_high_s_total)
            if low is not None else "n/a"),
        f"time saved, predicted from FLOPs   {fmt.duration(v.predicted_time_saved_s_total)}",
        "efficiency (measured/predicted)    " + (
            f"{eff:.2f}" if eff is not None else
            "n/a (the measured saving is within its noise)" if noise else "n/a"),
        f"score checks' share of step time   {fmt.percent(s.score_overhead, 2)}",
        f"data pipeline's share of loop time {fmt.percent(s.data_time_share, 1)}",
        *_allreduce_lines(s),
        f"run folder      {s.output_dir}",
    ]
    print("\n".join(lines))


def _allreduce_lines(s: RunSummary) -> list[str]:
    """A data-parallel run's gradient all-reduce volume (nothing for one process)."""
    if s.world_size <= 1:
        return []
    v = s.savings
    before = fmt.count(v.full_allreduce_bytes_per_step_now, "B")
    after = fmt.count(v.allreduce_bytes_per_step_now, "B")
    return [f"processes                          {s.world_size}",
            f"all-reduced per step               {before} before drops, {after} at the end",
            f"all-reduce volume saved over run   {fmt.percent(v.allreduce_bytes_saved_total)}"]


def json_summary(s: RunSummary) -> str:
    keep = {k: v for k, v in s.to_dict().items() if k != "history"}
    return json.dumps(keep, default=str, allow_nan=True)
