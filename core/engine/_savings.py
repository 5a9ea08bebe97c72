"""Savings accounting: FLOPs from the unit states, time from the clock.

Cost model per sample and step, with ``F`` a unit's forward FLOPs:

======================================  =========  ==================
unit state                              forward    training (fwd+bwd)
======================================  =========  ==================
training                                F          3F (weight and input gradients)
dropped, not in the dropped prefix      F          2F (input gradient only)
dropped prefix, ``freeze``              F          F
dropped prefix, ``cache`` (cache hit)   0          0
dropped residual block, ``skip``        0          0
======================================  =========  ==================

FLOPs outside every unit (parameter-free functional ops) count as always trained. Measured
time per step is compared with the full network's time per step (measured before the first
drop); measured time saved divided by FLOP-predicted time saved is the implementation's
*efficiency*.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

__all__ = ["StepCost", "SavingsMeter"]


@dataclass(frozen=True)
class StepCost:
    forward: float
    train: float


class SavingsMeter:
    """Accumulates per-step FLOP costs and step times."""

    #: steps right after a change of drop state that are left out of timing (warm-up,
    #: allocator and cache effects)
    SETTLE_STEPS = 3

    def __init__(self, full_forward: int) -> None:
        self.full_forward = max(int(full_forward), 1)
        self.full_train = 3 * self.full_forward
        self.steps = 0
        self.forward_spent = 0.0
        self.train_spent = 0.0
        self.current = StepCost(float(self.full_forward), float(self.full_train))
        self._full_times: list[float] = []
        self._state_times: list[float] = []
        self._since_change = 0
        self.time_spent_dropped = 0.0
        self.steps_dropped = 0
        self.any_drop = False

    # ---- per step ---------------------------------------------------------------------------
    def set_cost(self, cost: StepCost) -> None:
        if cost != self.current:
            self.current = cost
            self._state_times = []
            self._since_change = 0
        self.any_drop = self.any_drop or cost.train < self.full_train

    def add_step(self, cost: StepCost, seconds: float | None) -> None:
        self.set_cost(cost)
        self.steps += 1
        self.forward_spent += cost.forward
        self.train_spent += cost.train
        if seconds is None:
            return
        self._since_change += 1
        full = cost.train >= self.full_train
        if full and not self.any_drop:
            if self._since_change > self.SETTLE_STEPS:
                self._full_times.append(seconds)
                if len(self._full_times) > 2000:  # a recent window is enough for the median
                    del self._full_times[:1000]
        else:
            self.time_spent_dropped += seconds
            self.steps_dropped += 1
            if self._since_change > self.SETTLE_STEPS:
                self._state_times.append(seconds)
                if len(self._state_times) > 2000:
                    del self._state_times[:1000]

    # ---- figures ----------------------------------------------------------------------------
    @property
    def full_step_time(self) -> float | None:
        return statistics.median(self._full_times) if len(self._full_times) >= 3 else None

    @property
    def step_time(self) -> float | None:
        if not self.any_drop:
            return self.full_step_time
        times = self._state_times[-500:]
        return statistics.median(times) if len(times) >= 3 else None

    def forward_saved(self) -> float:
        return 1.0 - self.current.forward / self.full_forward

    def train_saved(self) -> float:
        return 1.0 - self.current.train / self.full_train

    def cumulative_forward_saved(self) -> float:
        return 1.0 - self.forward_spent / (self.steps * self.full_forward) if self.steps else 0.0

    def cumulative_train_saved(self) -> float:
        return 1.0 - self.train_spent / (self.steps * self.full_train) if self.steps else 0.0

    def measured_time_saved(self) -> float | None:
        full, now = self.full_step_time, self.step_time
        if full is None or now is None or full <= 0:
            return None
        return 1.0 - now / full

    def efficiency(self) -> float | None:
        measured, predicted = self.measured_time_saved(), self.train_saved()
        if measured is None or predicted < 0.05:  # below that, timing noise dominates
            return None
        return measured / predicted

    def time_saved_s(self) -> float:
        full = self.full_step_time
        if full is None or not self.steps_dropped:
            return 0.0
        return self.steps_dropped * full - self.time_spent_dropped

    def projected_time_saved_s(self, remaining_steps: int) -> float:
        full, now = self.full_step_time, self.step_time
        extra = remaining_steps * (full - now) if full is not None and now is not None else 0.0
        return self.time_saved_s() + extra

    def state_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "forward_spent": self.forward_spent,
                "train_spent": self.train_spent, "full_times": list(self._full_times[-2000:]),
                "time_spent_dropped": self.time_spent_dropped,
                "steps_dropped": self.steps_dropped, "any_drop": self.any_drop}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps = int(state["steps"])  # type: ignore[call-overload]
        self.forward_spent = float(state["forward_spent"])  # type: ignore[arg-type]
        self.train_spent = float(state["train_spent"])  # type: ignore[arg-type]
        self._full_times = [float(v) for v in state["full_times"]]  # type: ignore[attr-defined]
        self.time_spent_dropped = float(state["time_spent_dropped"])  # type: ignore[arg-type]
        self.steps_dropped = int(state["steps_dropped"])  # type: ignore[call-overload]
        self.any_drop = bool(state["any_drop"])
