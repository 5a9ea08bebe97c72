"""The drop rule, as pure functions of a policy and a score history.

Nothing here touches a tensor, a model or an optimizer: the live engine, a what-if replay of
a recorded run, the app's "why not yet" and the tests all call these same functions, so the
rule is written once.

- :func:`advance` folds one check's change of one unit into its :class:`ScoreState`
  (score, trend, how many checks in a row it has been settled);
- :func:`drops_now` says which units the policy drops at a check, given each unit's
  :class:`UnitStatus`; :func:`is_kept` and :func:`blocked_by` are the facts it rests on;
- :func:`~._replay.replay` runs a whole recorded history (each check's changes, the drops and pins
  by hand) through both and returns when each unit would have dropped under a policy.

A unit is *settled* at a check when its learning score is at or below ``threshold`` and
the slope of its last ``window`` scores is within ``trend_tolerance``; it qualifies once it
has been settled for ``patience`` checks in a row (a unit without parameters qualifies at
once). After ``warmup_epochs`` complete epochs, the policy drops the qualifying units that
are neither pinned nor kept (the head and the ``keep_last`` units before it); in ``prefix``
order only a leading run of them (a unit that does not qualify holds back every unit
behind it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from ._policy import DropPolicy

__all__ = ["ScoreState", "RuleUnit", "UnitStatus", "slope", "advance", "measure",
           "is_settled", "may_drop", "is_kept", "qualifies", "drops_now", "blocked_by"]

EPS = 1e-12


def slope(values: Sequence[float]) -> float | None:
    """Least-squares slope per step of ``values``; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    dx, den = _slope_x(n)
    mean_y = sum(values) / n
    return sum([d * (v - mean_y) for d, v in zip(dx, values)]) / den


@lru_cache(maxsize=64)
def _slope_x(n: int) -> tuple[tuple[float, ...], float]:
    """For ``n`` points: each x's distance from the mean x, and the sum of their squares."""
    mean_x = (n - 1) / 2.0
    dx = tuple(i - mean_x for i in range(n))
    return dx, sum((i - mean_x) ** 2 for i in range(n))


@dataclass(frozen=True)
class ScoreState:
    """One unit's score across checks.

    ``change`` is the last check's change (see :mod:`._scoring`), ``score`` that change
    over the largest one so far (EMA-smoothed when the policy says so), ``trend`` the slope
    of ``recent`` (the last ``window`` scores, the first check left out: it is the
    normaliser, 1 by construction), ``streak`` how many checks in a row the unit has been
    settled.
    """

    max_change: float = 0.0
    change: float | None = None
    score: float | None = None
    trend: float | None = None
    streak: int = 0
    updates: int = 0
    recent: tuple[float, ...] = ()

    @property
    def settled(self) -> bool:
        """Settled at the last check."""
        return self.streak > 0

    def to_dict(self) -> dict[str, Any]:
        return {"max_change": self.max_change, "change": self.change, "score": self.score,
                "trend": self.trend, "streak": self.streak, "recent": list(self.recent),
                "updates": self.updates}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ScoreState:
        recent = tuple(float(v) for v in state.get("recent", ()))
        return cls(max_change=float(state["max_change"]), change=_opt(state.get("change")),
                   score=_opt(state.get("score")), trend=_opt(state.get("trend")),
                   streak=int(state["streak"]), recent=recent,
                   updates=int(state.get("updates", len(recent) + 1)))


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def advance(state: ScoreState, change: float, policy: DropPolicy) -> ScoreState:
    """``state`` after one more check whose change is ``change``: measured
    (:func:`measure`), then settled or not (:func:`is_settled`)."""
    m = measure(state, change, policy)
    return replace(m, streak=state.streak + 1 if is_settled(m.score, m.trend, policy) else 0)


def measure(state: ScoreState, change: float, policy: DropPolicy) -> ScoreState:
    """``state``'s score, trend and history after one more check whose change is ``change``
    (its streak left as it was). A change that is not finite (a diverged step) counts as the
    largest one so far: learning, not settled. Only ``ema`` and ``window`` of the policy
    matter here."""
    if not math.isfinite(change):
        change = state.max_change if state.max_change > 0 else 1.0
    max_change = max(state.max_change, change)
    score = change / max_change if max_change > EPS else 0.0
    if policy.ema > 0 and state.score is not None:
        score = policy.ema * state.score + (1.0 - policy.ema) * score
    updates = state.updates + 1
    recent = state.recent + (score,) if updates > 1 else state.recent
    recent = recent[-policy.window:]
    return ScoreState(max_change=max_change, change=change, score=score, trend=slope(recent),
                      streak=state.streak, updates=updates, recent=recent)


def is_settled(score: float | None, trend: float | None, policy: DropPolicy) -> bool:
    """Settled at a check: the score at or below ``threshold`` and its trend known and
    within ``trend_tolerance``."""
    return (score is not None and score <= policy.threshold and trend is not None
            and abs(trend) <= policy.trend_tolerance)


@dataclass(frozen=True)
class RuleUnit:
    """What the rule knows of a unit: its name, whether it is the head (never dropped) and
    whether it has parameters to score (one without qualifies at once)."""

    name: str
    is_head: bool = False
    scored: bool = True


@dataclass(frozen=True)
class UnitStatus:
    """A unit's drop state at a check."""

    dropped: bool = False
    pinned: bool = False
    streak: int = 0


def may_drop(policy: DropPolicy, epochs_done: int) -> bool:
    """Whether the policy drops anything at a check made after ``epochs_done`` complete
    epochs (dropping on, warm-up over)."""
    return policy.enabled and epochs_done >= policy.warmup_epochs


def is_kept(index: int, count: int, keep_last: int, is_head: bool = False) -> bool:
    """Whether the policy never drops unit ``index`` of ``count``: the head (the last unit)
    and the ``keep_last`` units before it."""
    head = count - 1
    return is_head or index >= max(head - keep_last, 0)


def qualifies(unit: RuleUnit, status: UnitStatus, policy: DropPolicy) -> bool:
    """Settled for ``patience`` checks in a row (a unit without parameters: always)."""
    return not unit.scored or status.streak >= policy.patience


def _can_drop(i: int, units: Sequence[RuleUnit], statuses: Sequence[UnitStatus],
              policy: DropPolicy) -> bool:
    st = statuses[i]
    return (not is_kept(i, len(units), policy.keep_last, units[i].is_head)
            and not st.pinned and qualifies(units[i], st, policy))


def drops_now(policy: DropPolicy, units: Sequence[RuleUnit],
              statuses: Sequence[UnitStatus]) -> list[int]:
    """The units (indexes, front to back) the policy drops at a check where it may drop
    (:func:`may_drop`): every qualifying unit that is neither pinned nor kept; in ``prefix``
    order only up to the first undropped unit that does not."""
    out: list[int] = []
    for i, st in enumerate(statuses):
        if st.dropped:
            continue
        if _can_drop(i, units, statuses, policy):
            out.append(i)
        elif policy.order == "prefix":
            break
    return out


def blocked_by(policy: DropPolicy, units: Sequence[RuleUnit],
               statuses: Sequence[UnitStatus], index: int) -> int | None:
    """In ``prefix`` order, the first unit in front of ``index`` that is still training and
    would not drop now, so that ``index`` cannot drop whatever its score says; None in
    ``any`` order or when nothing in front holds it back."""
    if policy.order != "prefix":
        return None
    for i in range(index):
        if not statuses[i].dropped and not _can_drop(i, units, statuses, policy):
            return i
    return None
