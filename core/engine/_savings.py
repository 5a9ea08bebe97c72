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

FLOPs outside every unit (parameter-free functional ops) count as always trained.

Time, measured so that machine load cannot fool it
--------------------------------------------------
Step times are noisy and follow whatever else the machine is doing, so no figure here is a
raw sum of step times compared with a time per step measured at another moment:

* A *sample* is the mean time of ``block`` consecutive timed steps in one drop state: one
  step where each step is timed on its own (the CPU's clock, CUDA events), the loop's
  read-back period where the host's clock times a device that runs behind it (per-step
  times are then bursty, but the sums over windows that end in a read-back are right).
  The first :attr:`SavingsMeter.SETTLE_STEPS` steps after a change of state are left out.
  Every estimate is a median of samples, its standard error taken from the median absolute
  deviation.
* A state's *ratio* ``R`` (its time per step over the full network's) is measured where the
  state begins: the median of its first samples over the median of the last samples before
  it (of the latest state measured well enough), chained from the full network (``R = 1``).
  Both windows are a few dozen steps apart, so a load that starts or stops anywhere else
  changes neither.
* Time saved: in each state, the time it took (its steps times the medians of its samples,
  taken chunk by chunk) times ``1/R - 1``, which is the full network's time under the same
  conditions minus the time spent. It carries a range: 2.5 standard errors each side, from
  those of ``log R`` (added along the chain) and of the time spent. The FLOP-predicted
  figure uses the same full-network time times the share of training FLOPs saved.
* Efficiency (measured time saved / FLOP-predicted) is given only when the range of the
  measured saving lies above zero.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["step_cost", "StepCost", "SavingsMeter", "TimeSaved", "median_stats"]

#: standard errors on each side of a figure's range (about 99% for normal noise; step times
#: have heavier tails)
Z = 2.5
_MAD_TO_SIGMA = 1.4826  # a normal distribution's sigma from its median absolute deviation
_MEDIAN_SE = 1.2533  # a median's standard error in sigmas times 1/sqrt(n)


@dataclass(frozen=True)
class StepCost:
    forward: float
    train: float


def step_cost(flops: Sequence[float], dropped: Sequence[bool], *, other_flops: float = 0.0,
              prefix: int = 0, cached: range = range(0), cache_hit: bool = False,
              skipped: Sequence[bool] = (), mode: str = "freeze") -> StepCost:
    """The FLOPs of one step (the table above): ``flops`` each unit's forward FLOPs,
    ``dropped`` each unit's state, ``prefix`` how many leading units are dropped,
    ``cached`` those of them the cache replaces, ``skipped`` the dropped units ``skip``
    bypasses (the skippable ones)."""
    fwd = float(other_flops)
    train = 3.0 * other_flops
    for i, (f, gone) in enumerate(zip(flops, dropped)):
        if not gone:
            fwd += f
            train += 3 * f
        elif mode == "skip" and i < len(skipped) and skipped[i]:
            continue
        elif i < prefix:
            if not (mode == "cache" and cache_hit and i in cached):
                fwd += f
                train += f
        else:
            fwd += f
            train += 2 * f
    return StepCost(fwd, train)


@dataclass(frozen=True)
class TimeSaved:
    """Measured time saved (seconds) with its range, and the FLOP-predicted figure over the
    same steps."""

    seconds: float
    low: float
    high: float
    predicted: float


def median_stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, relative standard error of the median, relative spread) of ``values``;
    the spread is the robust standard deviation (1.4826 x MAD) over the median."""
    m = statistics.median(values)
    if len(values) < 2 or m <= 0:
        return m, 0.0, 0.0
    mad = statistics.median(abs(v - m) for v in values)
    spread = _MAD_TO_SIGMA * mad / m
    return m, _MEDIAN_SE * spread / math.sqrt(len(values)), spread


@dataclass
class _State:
    """Timing of one drop state (one step cost), over the whole run."""

    cost: StepCost
    steps: int = 0  # every step counted in this state, timed or not
    log_ratio: float | None = None  # log of its time per step over the full network's
    var: float = 0.0  # variance of log_ratio
    estimates: list[tuple[float, float]] = field(default_factory=list)  # (log R, var)
    chunks: list[tuple[int, float, float]] = field(default_factory=list)  # (n, median, se)
    open_chunk: list[float] = field(default_factory=list)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=SavingsMeter.RECENT))

    def add_estimate(self, log_ratio: float, var: float) -> None:
        self.estimates.append((log_ratio, var))
        self.combine()

    def combine(self) -> None:
        """Inverse-variance mean of the state's ratio estimates (one per time it began)."""
        weights = [1.0 / max(v, 1e-12) for _, v in self.estimates]
        total = sum(weights)
        self.log_ratio = sum(w * r for w, (r, _) in zip(weights, self.estimates)) / total
        self.var = 1.0 / total

    def add_sample(self, seconds: float) -> None:
        self.recent.append(seconds)
        self.open_chunk.append(seconds)
        if len(self.open_chunk) >= SavingsMeter.CHUNK:
            m, se, _ = median_stats(self.open_chunk)
            self.chunks.append((len(self.open_chunk), m, se))
            self.open_chunk = []

    def step_time(self) -> tuple[float, float] | None:
        """The state's time per step over the run (chunk medians, weighted by samples) and
        its relative standard error."""
        chunks = list(self.chunks)
        if self.open_chunk:
            m, se, _ = median_stats(self.open_chunk)
            chunks.append((len(self.open_chunk), m, se))
        n = sum(c[0] for c in chunks)
        if not n:
            return None
        mean = sum(k * m for k, m, _ in chunks) / n
        err = math.sqrt(sum((k * m * se) ** 2 for k, m, se in chunks)) / n
        return mean, err / mean if mean > 0 else 0.0

    def to_list(self) -> list[object]:
        chunks = [list(c) for c in self.chunks]
        if self.open_chunk:
            m, se, _ = median_stats(self.open_chunk)
            chunks.append([len(self.open_chunk), m, se])
        return [self.cost.forward, self.cost.train, self.steps,
                [list(e) for e in self.estimates], chunks, list(self.recent)]

    @classmethod
    def from_list(cls, data: list[object]) -> _State:
        fwd, train, steps, estimates, chunks, recent = data
        st = cls(StepCost(float(fwd), float(train)), steps=int(steps))  # type: ignore[arg-type, call-overload]
        st.chunks = [(int(n), float(m), float(se)) for n, m, se in chunks]  # type: ignore[attr-defined]
        st.recent.extend(float(v) for v in recent)  # type: ignore[attr-defined]
        for r, v in estimates:  # type: ignore[attr-defined]
            st.add_estimate(float(r), float(v))
        return st


@dataclass
class _Segment:
    """Consecutive timed steps in one state (a state's segment ends when the state
    changes)."""

    state: _State
    since_change: int = 0
    block_sum: float = 0.0
    block_n: int = 0
    head: list[float] = field(default_factory=list)  # its first samples
    tail: deque[float] = field(default_factory=deque)  # its last samples
    estimate_index: int | None = None  # its entry in state.estimates


@dataclass(frozen=True)
class _Reference:
    """The samples just before a change: median, its relative error, and the log ratio
    (and variance) of their state."""

    median: float
    rel_se: float
    log_ratio: float
    var: float


class SavingsMeter:
    """Counts each step's FLOP cost and estimates time per step, time saved and
    efficiency from step times (see the module docstring).

    ``block``: timed steps per sample (1 where each step is timed on its own; the loop's
    read-back period where host times are bursty).
    """

    #: steps right after a change of state that are left out of timing (warm-up,
    #: allocator and cache effects)
    SETTLE_STEPS = 3
    #: samples needed before a state's time or ratio is given
    MIN_SAMPLES = 5
    #: steps on each side of a change that its ratio is measured from
    WINDOW_STEPS = 48
    #: samples per chunk of a state's time spent
    CHUNK = 32
    #: recent samples the current time per step is the median of
    RECENT = 200

    def __init__(self, full_forward: int, block: int = 1) -> None:
        self.full_forward = max(int(full_forward), 1)
        self.full_train = 3 * self.full_forward
        self.block = max(int(block), 1)
        self.steps = 0
        self.forward_spent = 0.0
        self.train_spent = 0.0
        self.current = StepCost(float(self.full_forward), float(self.full_train))
        self.any_drop = False
        self._states: dict[StepCost, _State] = {}
        self._segment: _Segment | None = None
        self._reference: _Reference | None = None

    @property
    def window(self) -> int:
        """Samples on each side of a change that its ratio is measured from."""
        return max(self.MIN_SAMPLES, self.WINDOW_STEPS // self.block)

    # ---- per step ---------------------------------------------------------------------------
    def set_cost(self, cost: StepCost) -> None:
        self.current = cost
        self.any_drop = self.any_drop or cost.train < self.full_train

    def count_step(self, cost: StepCost) -> None:
        """One step done at ``cost`` (its time may come later: :meth:`add_time`)."""
        self.set_cost(cost)
        self.steps += 1
        self.forward_spent += cost.forward
        self.train_spent += cost.train
        self._state(cost).steps += 1

    def add_time(self, cost: StepCost, seconds: float) -> None:
        """The measured time of one step done at ``cost``, in the order the steps ran."""
        seg = self._segment
        if seg is None or seg.state.cost != cost:
            self._end_segment()
            seg = self._segment = _Segment(self._state(cost), tail=deque(maxlen=self.window))
        seg.since_change += 1
        if seg.since_change <= self.SETTLE_STEPS or not math.isfinite(seconds):
            return
        seg.block_sum += max(seconds, 0.0)
        seg.block_n += 1
        if seg.block_n >= self.block:
            self._add_sample(seg, seg.block_sum / seg.block_n)
            seg.block_sum, seg.block_n = 0.0, 0

    def add_step(self, cost: StepCost, seconds: float | None) -> None:
        """:meth:`count_step` and, when the step was timed, :meth:`add_time`."""
        self.count_step(cost)
        if seconds is not None:
            self.add_time(cost, seconds)

    def break_timing(self) -> None:
        """Steps after this are not adjacent to those before (a pause, validation): a
        partial sample is dropped; the state's segment goes on."""
        if self._segment is not None:
            self._segment.block_sum, self._segment.block_n = 0.0, 0

    # ---- timing internals -------------------------------------------------------------------
    def _state(self, cost: StepCost) -> _State:
        st = self._states.get(cost)
        if st is None:
            st = self._states[cost] = _State(cost)
            if cost.train >= self.full_train:  # the full network: R = 1 by definition
                st.add_estimate(0.0, 0.0)
        return st

    def _add_sample(self, seg: _Segment, seconds: float) -> None:
        seg.state.add_sample(seconds)
        seg.tail.append(seconds)
        if len(seg.head) < self.window:
            seg.head.append(seconds)
            self._estimate(seg)

    def _estimate(self, seg: _Segment) -> None:
        """The segment's state's ratio from its first samples and the reference before it."""
        ref = self._reference
        st = seg.state
        if ref is None or len(seg.head) < self.MIN_SAMPLES or st.cost.train >= self.full_train:
            return
        m, rel, _ = median_stats(seg.head)
        if m <= 0 or ref.median <= 0:
            return
        log_r = ref.log_ratio + math.log(m / ref.median)
        var = ref.var + rel ** 2 + ref.rel_se ** 2
        if seg.estimate_index is None:
            seg.estimate_index = len(st.estimates)
            st.estimates.append((log_r, var))
        else:
            st.estimates[seg.estimate_index] = (log_r, var)
        st.combine()

    def _end_segment(self) -> None:
        """The segment ends: its last samples become the reference for the next state."""
        seg, self._segment = self._segment, None
        if seg is None or len(seg.tail) < self.MIN_SAMPLES or seg.state.log_ratio is None:
            return
        m, rel, _ = median_stats(list(seg.tail))
        self._reference = _Reference(m, rel, seg.state.log_ratio, seg.state.var)

    def _live_reference(self) -> _Reference | None:
        """The reference the next state would be measured against, the running segment's
        own samples included."""
        seg = self._segment
        if seg is not None and len(seg.tail) >= self.MIN_SAMPLES \
                and seg.state.log_ratio is not None:
            m, rel, _ = median_stats(list(seg.tail))
            return _Reference(m, rel, seg.state.log_ratio, seg.state.var)
        return self._reference

    # ---- figures ----------------------------------------------------------------------------
    def _current_state(self) -> _State | None:
        return self._states.get(self.current)

    @property
    def step_time(self) -> float | None:
        """The median time per step of the current state over its recent samples."""
        st = self._current_state()
        if st is None or len(st.recent) < self.MIN_SAMPLES:
            return None
        return statistics.median(st.recent)

    @property
    def step_time_spread(self) -> float | None:
        """The relative spread (robust standard deviation over the median) of the current
        state's recent samples: how much one step's time varies."""
        st = self._current_state()
        if st is None or len(st.recent) < self.MIN_SAMPLES:
            return None
        return median_stats(list(st.recent))[2]

    def ratio(self) -> float | None:
        """The current state's time per step over the full network's, when measured."""
        st = self._current_state()
        return math.exp(st.log_ratio) if st is not None and st.log_ratio is not None else None

    @property
    def full_step_time(self) -> float | None:
        """The full network's time per step under the current conditions: measured while
        it runs, after a drop the current time per step over the measured ratio."""
        now, r = self.step_time, self.ratio()
        if now is not None and r is not None and r > 0:
            return now / r
        full = self._states.get(StepCost(float(self.full_forward), float(self.full_train)))
        if full is not None and len(full.recent) >= self.MIN_SAMPLES:
            return statistics.median(full.recent)
        return None

    def forward_saved(self) -> float:
        return 1.0 - self.current.forward / self.full_forward

    def train_saved(self) -> float:
        return 1.0 - self.current.train / self.full_train

    def cumulative_forward_saved(self) -> float:
        return 1.0 - self.forward_spent / (self.steps * self.full_forward) if self.steps else 0.0

    def cumulative_train_saved(self) -> float:
        return 1.0 - self.train_spent / (self.steps * self.full_train) if self.steps else 0.0

    def measured_time_saved(self) -> float | None:
        """The share of the full network's time per step the current state saves."""
        r = self.ratio()
        return None if r is None else 1.0 - r

    def time_saved(self) -> TimeSaved | None:
        """Time saved so far with its range, and the FLOP-predicted figure, over the states
        whose ratio was measured; ``None`` before any dropped state was."""
        value = predicted = err = 0.0
        measured = False
        for st in self._states.values():
            if st.cost.train >= self.full_train or st.log_ratio is None or not st.steps:
                continue
            per_step = st.step_time()
            if per_step is None:
                continue
            mean, rel_spent = per_step
            spent = st.steps * mean
            inv = math.exp(-st.log_ratio)
            full = spent * inv  # the full network's time for these steps, same conditions
            saved = full - spent
            value += saved
            predicted += full * (1.0 - st.cost.train / self.full_train)
            err += Z * math.hypot(full * math.sqrt(st.var), saved * rel_spent)
            measured = True
        if not measured:
            return None
        return TimeSaved(value, value - err, value + err, predicted)

    def time_saved_s(self) -> float:
        t = self.time_saved()
        return t.seconds if t is not None else 0.0

    def efficiency(self) -> float | None:
        """Measured time saved over FLOP-predicted time saved, only when the measured saving
        is larger than its noise (its range lies above zero)."""
        t = self.time_saved()
        if t is None or t.low <= 0 or t.predicted <= 0:
            return None
        return t.seconds / t.predicted

    def projected_time_saved_s(self, remaining_steps: int) -> float:
        """Time saved by the end of the planned steps if the current state goes on."""
        now, r = self.step_time, self.ratio()
        extra = 0.0
        if now is not None and r is not None and r > 0:
            extra = remaining_steps * now * (1.0 / r - 1.0)
        return self.time_saved_s() + extra

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, object]:
        ref = self._live_reference()
        return {"steps": self.steps, "forward_spent": self.forward_spent,
                "train_spent": self.train_spent, "any_drop": self.any_drop,
                "states": [st.to_list() for st in self._states.values()],
                "reference": None if ref is None else [ref.median, ref.rel_se,
                                                       ref.log_ratio, ref.var]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps = int(state["steps"])  # type: ignore[call-overload]
        self.forward_spent = float(state["forward_spent"])  # type: ignore[arg-type]
        self.train_spent = float(state["train_spent"])  # type: ignore[arg-type]
        self.any_drop = bool(state["any_drop"])
        self._states = {}
        self._segment = None
        self._reference = None
        for item in state.get("states", []) or []:  # type: ignore[attr-defined]
            st = _State.from_list(item)
            self._states[st.cost] = st
        ref = state.get("reference")
        if ref:
            self._reference = _Reference(*(float(v) for v in ref))  # type: ignore[attr-defined]
        elif state.get("full_times"):  # written before ratios were measured: a plain median
            full = self._state(StepCost(float(self.full_forward), float(self.full_train)))
            times = [float(v) for v in state["full_times"]]  # type: ignore[attr-defined]
            for t in times:
                full.add_sample(t)
            m, rel, _ = median_stats(times)
            self._reference = _Reference(m, rel, 0.0, 0.0)
