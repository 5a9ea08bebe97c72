"""What dropping saves: :class:`Accounting` owns each unit's FLOPs, the cost of a step in the
current drop state, the step clock and the savings meter (see :mod:`._savings` for the cost
model and how time is measured so that machine load cannot fool it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..events import SavingsReport
from ._drop_state import DropState
from ._savings import SavingsMeter, StepCost, step_cost
from ._timing import make_step_clock
from ._units import Unit, measure_units

__all__ = ["Accounting"]


class Accounting:
    """FLOPs, step times and savings of one :class:`~._learndrop.LearnDrop`.

    ``sync_every``: how many steps apart the training loop reads a value back from the
    device; on a device timed by the host's clock (neither the CPU nor CUDA) step times are
    averaged over that many steps.
    """

    def __init__(self, device: torch.device, sync_every: int | None = None) -> None:
        self.clock = make_step_clock(device)
        self.block = 1 if self.clock.per_step else max(int(sync_every or 20), 1)
        self.total_forward_flops = 0
        self.other_flops = 0
        self.meter: SavingsMeter | None = None  # from the first measured call on
        self.pending_meter: dict[str, Any] | None = None  # a resumed meter, before FLOPs
        self.step_cost: StepCost | None = None  # this step's cost (None: the full network)
        self.train_time_s = 0.0

    @property
    def measured(self) -> bool:
        return self.meter is not None

    def measure(self, model: nn.Module, units: Sequence[Unit], example: Any,
                kwargs: dict[str, Any] | None = None) -> None:
        """Measure each unit's FLOPs on ``example`` (one input or a tuple of them) and
        ``kwargs``, and start the savings meter."""
        total = measure_units(model, list(units), example, kwargs)
        self.total_forward_flops = total
        self.other_flops = max(total - sum(u.forward_flops for u in units), 0)
        self.meter = SavingsMeter(total, block=self.block)
        if self.pending_meter:
            self.meter.load_state_dict(self.pending_meter)

    def cost(self, units: Sequence[Unit], drops: DropState, mode: str, cache_hit: bool
             ) -> StepCost:
        return step_cost([float(u.forward_flops) for u in units],
                         [drops.is_dropped(u) for u in units], other_flops=self.other_flops,
                         prefix=drops.prefix_len, cached=drops.cached, cache_hit=cache_hit,
                         skipped=[u.skippable for u in units], mode=mode)

    def set_state_cost(self, cost: StepCost) -> None:
        """A change of drop state: the cost of a step from now on."""
        if self.meter is not None:
            self.meter.set_cost(cost)

    def end_step(self) -> None:
        """An optimizer step is done: count it (at this call's cost) and its time."""
        if self.meter is None:
            self.clock.pause()
            return
        cost = self.step_cost or self.meter.current  # no drop: the full cost
        self.meter.count_step(cost)
        self._add_times(self.clock.end(cost))

    def begin_step(self) -> None:
        self.clock.begin()

    def pause(self) -> None:
        """The time until the next step is not step time (a pause, validation)."""
        if self.meter is not None:
            self._add_times(self.clock.flush())
            self.meter.break_timing()
        self.clock.pause()

    def _add_times(self, times: list[tuple[Any, float]]) -> None:
        assert self.meter is not None
        for cost, seconds in times:
            self.meter.add_time(cost, seconds)
            self.train_time_s += seconds

    def report(self, step: int, model: nn.Module, total_steps: int | None,
               **comm: Any) -> SavingsReport:
        """The savings so far, as the events report them; ``comm``: the data-parallel
        figures."""
        m = self.meter
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        if m is None:
            return SavingsReport(step=step, trainable_params_now=trainable,
                                 total_params=total, **comm)
        remaining = max((total_steps or 0) - step, 0)
        saved = m.time_saved()
        return SavingsReport(
            step=step, forward_flops_saved_now=m.forward_saved(),
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

    def state_dict(self) -> dict[str, Any] | None:
        return self.meter.state_dict() if self.meter else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self.pending_meter = state
        if self.meter is not None and state:
            self.meter.load_state_dict(state)
