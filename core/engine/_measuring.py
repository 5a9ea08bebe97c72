"""What a :class:`LearnDrop` measures: FLOPs per unit, each step's cost and time, savings.

Each function takes the :class:`~._strategy.LearnDrop` first. A step's cost counts the
forward and training FLOPs that its drop state leaves to compute (see :mod:`._savings`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..events import SavingsReport
from ._dropping import drop_state_changed
from ._savings import SavingsMeter, StepCost
from ._units import measure_units

if TYPE_CHECKING:
    from ._strategy import LearnDrop

__all__ = ["measure", "step_cost", "record_times", "savings_dict", "build_savings_report"]


def measure(ld: LearnDrop, example: torch.Tensor) -> None:
    """Measure each unit's FLOPs on ``example`` and start the savings meter."""
    total = measure_units(ld.base_model, ld.units, example)
    ld.total_forward_flops = total
    ld.other_flops = max(total - sum(u.forward_flops for u in ld.units), 0)
    ld.meter = SavingsMeter(total, block=ld._timing_block)
    if ld._pending_meter:
        ld.meter.load_state_dict(ld._pending_meter)
    drop_state_changed(ld)  # skippable units and cache boundaries are known now


def step_cost(ld: LearnDrop, cache_hit: bool) -> StepCost:
    """The FLOPs of one step in the current drop state."""
    fwd = float(ld.other_flops)
    train = 3.0 * ld.other_flops
    mode = ld.policy.mode
    for u in ld.units:
        f = float(u.forward_flops)
        st = ld._state[u.index]
        if not st.dropped:
            fwd += f
            train += 3 * f
        elif mode == "skip" and u.skippable:
            continue
        elif u.index < ld._prefix_len:
            if not (mode == "cache" and cache_hit and u.index in ld._cached):
                fwd += f
                train += f
        else:
            fwd += f
            train += 2 * f
    return StepCost(fwd, train)


def record_times(ld: LearnDrop, times: list[tuple[Any, float]]) -> None:
    """Add measured step times (each with the cost of its step) to the meter."""
    assert ld.meter is not None
    for cost, seconds in times:
        ld.meter.add_time(cost, seconds)
        ld.train_time_s += seconds


def savings_dict(ld: LearnDrop) -> dict[str, Any]:
    """Savings so far, keyed by the savings record's fields (``_now``: per step in the
    current drop state, ``_total``: over the run so far); FLOP figures are fractions of the
    full network's (0.3 = 30%)."""
    r = build_savings_report(ld)
    out = {k: getattr(r, k) for k in r.__dataclass_fields__}
    out["score_overhead"] = ld.score_overhead
    out["cache_location"] = ld._cache.location
    out["cache_disabled_reason"] = ld.cache_disabled_reason
    ddp = ld._ddp
    out["world_size"] = ddp.world_size if ddp is not None else 1
    out["allreduce_timeline"] = [list(t) for t in ddp.timeline] if ddp is not None else []
    return out


def build_savings_report(ld: LearnDrop) -> SavingsReport:
    """The savings so far, as the events report them."""
    m = ld.meter
    trainable = sum(p.numel() for p in ld.base_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in ld.base_model.parameters())
    ddp = ld._ddp
    comm: dict[str, Any] = dict(
        allreduce_bytes_per_step_now=ddp.current_bytes if ddp else 0,
        full_allreduce_bytes_per_step_now=ddp.full_bytes if ddp else 0,
        allreduce_bytes_saved_total=ddp.cumulative_saved() if ddp else 0.0)
    if m is None:
        return SavingsReport(step=ld.step_count, trainable_params_now=trainable,
                             total_params=total, **comm)
    remaining = max((ld.total_steps or 0) - ld.step_count, 0)
    saved = m.time_saved()
    return SavingsReport(
        step=ld.step_count, forward_flops_saved_now=m.forward_saved(),
        train_flops_saved_now=m.train_saved(),
        forward_flops_saved_total=m.cumulative_forward_saved(),
        train_flops_saved_total=m.cumulative_train_saved(),
        trainable_params_now=trainable, total_params=total, step_time_s_now=m.step_time,
        full_step_time_s_now=m.full_step_time,
        measured_time_saved_now=m.measured_time_saved(),
        time_saved_s_total=saved.seconds if saved else 0.0,
        projected_time_saved_s_total=m.projected_time_saved_s(remaining),
        efficiency_total=m.efficiency(),
        time_saved_low_s_total=saved.low if saved else None,
        time_saved_high_s_total=saved.high if saved else None,
        predicted_time_saved_s_total=saved.predicted if saved else None,
        step_time_spread_now=m.step_time_spread, **comm)
