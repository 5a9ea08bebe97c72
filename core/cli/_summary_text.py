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
    eff = s.efficiency
    noise = s.time_saved_low_s is not None and s.time_saved_low_s <= 0
    lines += [
        f"forward FLOPs saved over the run   {fmt.percent(s.forward_flops_saved)}",
        f"training FLOPs saved over the run  {fmt.percent(s.train_flops_saved)}",
        f"trainable params at the end        {s.trainable_params:,} of {s.total_params:,}",
        f"time per step (median)             {fmt.step_time(s.step_time_s)} "
        f"(full network {fmt.step_time(s.full_step_time_s)})",
        "measured step time saved           " + (
            fmt.percent(s.measured_time_saved) if s.measured_time_saved is not None
            else "n/a"),
        "time saved, measured               " + (
            fmt.span(s.time_saved_s, s.time_saved_low_s, s.time_saved_high_s)
            if s.time_saved_low_s is not None else "n/a"),
        f"time saved, predicted from FLOPs   {fmt.duration(s.predicted_time_saved_s)}",
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
    before = fmt.count(s.full_allreduce_bytes_per_step, "B")
    after = fmt.count(s.allreduce_bytes_per_step, "B")
    return [f"processes                          {s.world_size}",
            f"all-reduced per step               {before} before drops, {after} at the end",
            f"all-reduce volume saved over run   {fmt.percent(s.allreduce_bytes_saved)}"]


def json_summary(s: RunSummary) -> str:
    keep = {k: v for k, v in s.to_dict().items() if k != "history"}
    return json.dumps(keep, default=str, allow_nan=True)
