"""The tables of a report as rows of text, shared by the HTML/PDF report and the CLI."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..format import (
    DASH,
    count,
    duration,
    is_number,
    percent,
    points,
    score,
    span,
    step_time,
    when,
)
from ..monitor import compare_speed
from ..savings import SavingsReport
from ._model import RunData

__all__ = ["pct", "duration", "count", "score", "overview_rows", "headline_rows",
           "savings_rows", "unit_table", "action_table", "restore_table", "comparison_rows",
           "drop_timeline", "config_rows", "environment_rows", "when"]


# ---- number formatting: the shared formatters, under the names the report's callers use ----
pct = percent


# ---- one run -----------------------------------------------------------------------------------
def mode_text(d: RunData) -> str:
    return f"Learn&Drop, mode {d.record.mode}" if d.record.drop_enabled else \
        "baseline (full network, no dropping)"


def policy_text(d: RunData) -> str:
    """The drop rule a run used: its learning signal, threshold, patience and check cadence
    (runs recorded before the signal was a setting used parameter change)."""
    if not d.record.drop_enabled:
        return "–"
    drop = d.start.config.get("drop", {})
    every = drop.get("check_every") or 0
    per = drop.get("checks_per_epoch") or 1  # runs recorded before the setting: once
    cadence = (f"every {every} steps" if every else
               {1: "once an epoch", 2: "twice an epoch"}.get(per, f"{per} times an epoch"))
    return (f"{drop.get('score', 'change')}, threshold {drop.get('threshold', '?')}, patience "
            f"{drop.get('patience', '?')}, checks {cadence}")


def overview_rows(d: RunData) -> list[tuple[str, str]]:
    r = d.record
    rows = [("Run", r.name + (f" ({r.display_name})" if r.display_name else "")),
            ("Status", r.status + (f": {r.message}" if r.message else "")),
            ("Started", when(r.created)),
            ("Model", r.model or "–"), ("Data set", r.dataset or "–"),
            ("Device", r.device or "–"), ("Training", mode_text(d)),
            ("Epochs", f"{r.epochs_done} of {r.epochs_planned}"),
            ("Steps", f"{d.epochs[-1].step if d.epochs else 0} of {d.start.total_steps}"),
            ("Wall time", duration(r.wall_time_s)),
            ("Machine", r.summary.machine or "–"),
            ("Machine load (per CPU, mean)", _load(r.summary.load_per_cpu)),
            ("Data pipeline's share of loop time", pct(r.summary.data_time_share)),
            ("Units", f"{sum(not u.is_head for u in d.units)} scored + head"),
            ("Parameters", count(d.start.total_params)),
            ("Forward FLOPs per sample", count(d.start.forward_flops, "FLOPs")),
            ("Run folder", r.output_dir or "–")]
    if r.note:
        rows.append(("Note", r.note))
    return rows


def headline_rows(d: RunData) -> list[tuple[str, str]]:
    acc, sav = d.accuracy(), d.savings()
    predicted = sav.predicted_time_saved_s_total if sav else None
    rows = [("Validation accuracy (full model)", pct(acc.final_val_accuracy, 2)),
            ("Best validation accuracy", pct(acc.best_val_accuracy, 2))]
    if acc.final_val_accuracy_scaled is not None:
        rows.append(("Validation accuracy (scaled-down model)",
                     pct(acc.final_val_accuracy_scaled, 2)))
    rows += [("Training FLOPs saved", pct(sav.train_flops_saved_total if sav else None)),
             ("Time saved, measured", _time_saved(sav)),
             ("Time saved, predicted from FLOPs", _precise(predicted)),
             ("Units dropped", f"{len(d.drops)} of {sum(not u.is_head for u in d.units)}")]
    if d.restores:  # the units dropped at the end, and the drops the policy undid
        held = sum(u.drop_step is not None for u in d.unit_rows() if not u.is_head)
        rows[-1] = ("Units dropped", f"{held} of {sum(not u.is_head for u in d.units)} at "
                                     f"the end ({len(d.drops)} drops)")
        rows.append(("Drops undone (the loss rose after them)", str(len(d.restores))))
    return rows


def savings_rows(d: RunData) -> list[tuple[str, str]]:
    """The savings at the run's end; a run that ended before any epoch measured none."""
    s = d.savings()
    if s is not None:
        return _savings_rows(s)
    params = f"{DASH} of {count(d.start.total_params)}"
    return [(label, params if label == _PARAMS else DASH)
            for label, _ in _savings_rows(SavingsReport())]


_PARAMS = "Trainable parameters at the end"


def _savings_rows(s: SavingsReport) -> list[tuple[str, str]]:
    eff = s.efficiency_total
    return [
        ("Training FLOPs saved over the run", pct(s.train_flops_saved_total)),
        ("Forward FLOPs saved over the run", pct(s.forward_flops_saved_total)),
        ("Training FLOPs saved per step at the end", pct(s.train_flops_saved_now)),
        ("Forward FLOPs saved per step at the end", pct(s.forward_flops_saved_now)),
        (_PARAMS, f"{count(s.trainable_params_now)} of {count(s.total_params)}"),
        ("Full network's time per step (same conditions)", step_time(s.full_step_time_s_now)),
        ("Time per step at the end (median)", step_time(s.step_time_s_now)),
        ("Spread of one step's time", pct(s.step_time_spread_now)),
        ("Time per step saved at the end (measured)", pct(s.measured_time_saved_now)),
        ("Time saved, measured (range)", _time_saved(s)),
        ("Time saved, predicted from FLOPs", _precise(s.predicted_time_saved_s_total)),
        ("Time saved by the end of the planned run (projected)",
         duration(s.projected_time_saved_s_total)),
        ("Efficiency (measured / FLOP-predicted time saving)",
         f"{eff:.2f}" if is_number(eff) else _no_efficiency(s)),
        *_allreduce_rows(s),
    ]


def _allreduce_rows(s: SavingsReport) -> list[tuple[str, str]]:
    """A data-parallel run's gradient all-reduce volume (none for one process)."""
    if not s.full_allreduce_bytes_per_step_now:
        return []
    return [
        ("Gradient bytes all-reduced per step, before drops",
         count(s.full_allreduce_bytes_per_step_now, "B")),
        ("Gradient bytes all-reduced per step, at the end",
         count(s.allreduce_bytes_per_step_now, "B")),
        ("All-reduce volume saved over the run", pct(s.allreduce_bytes_saved_total)),
    ]


def _time_saved(s: SavingsReport | None) -> str:
    """The measured time saved with its range (never "0.0 s" beside a large FLOP saving)."""
    if s is None:
        return DASH
    return span(s.time_saved_s_total, s.time_saved_low_s_total, s.time_saved_high_s_total,
                _precise)


def _precise(seconds: Any) -> str:
    return duration(seconds, precise=True)


def _no_efficiency(s: SavingsReport) -> str:
    low = s.time_saved_low_s_total
    if low is not None and low <= 0:
        return "– (the measured saving is within its noise)"
    return "–"


def _load(value: Any) -> str:
    return f"{value:.2f}" if is_number(value) else "–"


def unit_table(d: RunData) -> tuple[list[str], list[list[str]]]:
    head = ["#", "Unit", "Parameters", "Forward FLOPs", "FLOPs share", "State", "Drop epoch",
            "Drop step", "Final score"]
    # drop epoch: the epoch counted from 1, and in brackets the epochs completed at the drop
    rows = []
    for u in d.unit_rows():
        drop_epoch = "–"
        if u.drop_step is not None and u.drop_epoch is not None:
            drop_epoch = f"{d.epoch_number(u.drop_step)} ({u.drop_epoch:.2f})"
        rows.append([str(u.index), u.name, count(u.params), count(u.forward_flops),
                     pct(u.flops_share), u.state, drop_epoch,
                     str(u.drop_step) if u.drop_step is not None else "–",
                     "–" if u.is_head else score(u.final_score)])
    return head, rows


def restore_table(d: RunData) -> tuple[list[str], list[list[str]]]:
    """The drops the policy undid (reversible drops): where, which unit, and the training
    loss before the drop and after it that made the policy take it back."""
    head = ["Step", "Epoch", "Unit", "Reason", "Loss before", "Loss after"]
    rows = [[str(r.step), f"{d.epoch_number(max(r.step, 1))} ({r.epoch:.2f})", r.unit, r.reason,
             f"{r.loss_before:.4f}", f"{r.loss_after:.4f}"] for r in d.restores]
    return head, rows


def action_table(d: RunData) -> tuple[list[str], list[list[str]]]:
    """What the user did to the running run: when they asked, where the run took it."""
    head = ["Time", "Epoch", "Step", "Action"]
    rows = [[when(a.time, seconds=True), f"{d.epoch_number(max(a.step, 1))} ({a.epoch:.2f})",
             str(a.step), a.text] for a in d.actions]
    return head, rows


def config_rows(d: RunData) -> list[tuple[str, str]]:
    out = []
    for section, values in sorted(d.record.config.items()):
        if isinstance(values, dict):
            for key, value in values.items():
                out.append((f"{section}.{key}", _plain(value)))
        else:
            out.append((section, _plain(values)))
    return out


def environment_rows(d: RunData) -> list[tuple[str, str]]:
    env = dict(d.record.environment)
    env.setdefault("device", d.record.device)
    return [(k, _plain(v)) for k, v in env.items() if v not in ("", None)]


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "(none)"
    return str(v)


# ---- comparisons -----------------------------------------------------------------------------
def comparison_rows(runs: list[RunData], reference: RunData | None = None
                    ) -> tuple[list[str], list[list[str]]]:
    """Side-by-side figures of runs, with accuracy and speed against ``reference`` (by
    default the last run)."""
    head = ["", *[d.name for d in runs]]
    ref = reference or runs[-1]

    def row(label: str, fn: Any) -> list[str]:
        return [label, *[fn(d) for d in runs]]

    rows = [
        row("Training", mode_text),
        row("Drop rule", policy_text),
        row("Status", lambda d: d.record.status),
        row("Epochs", lambda d: f"{d.record.epochs_done} of {d.record.epochs_planned}"),
        row("Wall time", lambda d: duration(d.record.wall_time_s)),
        row("Validation accuracy", lambda d: pct(d.accuracy().final_val_accuracy, 2)),
        row("Best validation accuracy", lambda d: pct(d.accuracy().best_val_accuracy, 2)),
        row("Scaled-down model accuracy",
            lambda d: pct(d.accuracy().final_val_accuracy_scaled, 2)),
        row("Training FLOPs saved",
            lambda d: pct(s.train_flops_saved_total if (s := d.savings()) else None)),
        row("Forward FLOPs saved",
            lambda d: pct(s.forward_flops_saved_total if (s := d.savings()) else None)),
        row("Time saved, measured", lambda d: _time_saved(d.savings())),
        row("Units dropped", lambda d: str(len(d.drops))),
    ]
    if any(d.restores for d in runs):
        rows.append(row("Drops undone", lambda d: str(len(d.restores))))
    if len(runs) > 1:
        ref_acc = ref.accuracy().final_val_accuracy
        ref_wall = ref.record.wall_time_s
        rows.append(row(f"Accuracy vs {ref.name}", lambda d: points(
            _diff(d.accuracy().final_val_accuracy, ref_acc)) if d is not ref else "–"))
        rows.append(row(f"Speed-up vs {ref.name}", lambda d: (
            compare_speed(_timed_summary(d), _timed_summary(ref)).text
            if d is not ref and ref_wall and d.record.wall_time_s else "–")))
    return head, rows


def _timed_summary(d: RunData) -> Any:
    """The run's summary with the stored wall time (runs recorded before summaries had
    it) and the last step-time spread."""
    s = d.record.summary
    spread = s.savings.step_time_spread_now
    if spread is None and (last := d.savings()) is not None:
        spread = last.step_time_spread_now
    return dataclasses.replace(
        s, wall_time_s=d.record.wall_time_s,
        savings=dataclasses.replace(s.savings, step_time_spread_now=spread))


def _diff(a: Any, b: Any) -> float | None:
    return a - b if is_number(a) and is_number(b) else None


def drop_timeline(runs: list[RunData]) -> tuple[list[str], list[list[str]]]:
    """Units dropped in each epoch (counted from 1), one column per run; a drop the policy
    undid shows as "<unit> restored" in the epoch of its restore."""
    head = ["Epoch", *[d.name for d in runs]]
    per_run: list[dict[int, list[str]]] = []
    last = 0
    for d in runs:
        cells: dict[int, list[str]] = {}
        events = sorted([(x.step, 0, x.unit) for x in d.drops]
                        + [(r.step, 1, f"{r.unit} restored") for r in d.restores])
        for step, _order, text in events:
            cells.setdefault(d.epoch_number(step), []).append(text)
        per_run.append(cells)
        ends = [d.epoch_number(e.step) for e in d.epochs]
        last = max([last, *ends, *cells])
    rows = [[str(e), *[", ".join(c.get(e, [])) or "·" for c in per_run]]
            for e in range(1, last + 1)]
    return head, rows
