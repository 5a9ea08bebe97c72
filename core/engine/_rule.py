"""The drop rule, as pure functions of a policy and a score history.

Nothing here touches a tensor, a model or an optimizer: the live engine, a what-if replay of
a recorded run, the app's "why not yet" and the tests all call these same functions, so the
rule is written once.

- :func:`advance` folds one check's change of one unit into its :class:`ScoreState`
  (score, trend and the trend's standard error, how many checks in a row it has been
  settled);
- :func:`drops_now` says which units the policy drops at a check, given each unit's
  :class:`UnitStatus`; :func:`is_kept` and :func:`blocked_by` are the facts it rests on;
- :func:`loss_rose` says whether the training loss after a drop rose beyond its noise (the
  reversible policy's signal to restore that drop);
- :func:`~._replay.replay` runs a whole recorded history (each check's changes, the drops and pins
  by hand, the restores) through both and returns when each unit would have dropped under a
  policy.

A unit is *settled* at a check when its learning score is at or below ``threshold`` and the
slope of its last ``window`` scores is flat: with ``settle="noise"``, within what the scatter
of those scores about their line explains (the slope's t-test at ``confidence``, two-sided,
so a score still falling or rising again is not flat), with ``settle="tolerance"``, within
``trend_tolerance`` per check. It qualifies once it has been settled for ``patience`` checks
in a row (a unit without parameters qualifies at once; a unit the policy restored starts
``patience`` checks further back). After ``warmup_epochs`` (an epoch position, fractions
allowed), the policy drops the qualifying units that are neither pinned nor kept (the head
and the ``keep_last`` units before it); in ``prefix`` order only a leading run of them (a
unit that does not qualify holds back every unit behind it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from statistics import NormalDist
from typing import Any

from ._policy import DropPolicy

__all__ = ["ScoreState", "RuleUnit", "UnitStatus", "LossSpan", "slope", "slope_error",
           "advance", "measure", "is_settled", "settles", "is_flat", "t_quantile", "may_drop",
           "is_kept", "qualifies", "drops_now", "blocked_by", "loss_rose", "restore_hold"]

EPS = 1e-12


def slope(values: Sequence[float]) -> float | None:
    """Least-squares slope per step of ``values``; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    dx, den = _slope_x(n)
    mean_y = sum(values) / n
    return sum([d * (v - mean_y) for d, v in zip(dx, values)]) / den


def slope_error(values: Sequence[float], b: float | None = None) -> float | None:
    """The standard error of :func:`slope` of ``values`` (from the scatter of the values
    about their fitted line); None with fewer than three values."""
    n = len(values)
    if n < 3:
        return None
    if b is None:
        b = slope(values)
    assert b is not None
    dx, den = _slope_x(n)
    mean_y = sum(values) / n
    sse = sum([(v - mean_y - b * d) ** 2 for d, v in zip(dx, values)])
    return math.sqrt(max(sse, 0.0) / (n - 2) / den)


@lru_cache(maxsize=256)
def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``dof`` degrees of freedom
    (``dof`` >= 1), by bisection on its distribution function (the regularised incomplete
    beta function, written out so the rule needs nothing but ``math``)."""
    if p <= 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, dof) < p:
        hi *= 2.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if _t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _t_cdf(t: float, dof: int) -> float:
    x = dof / (dof + t * t)
    return 1.0 - 0.5 * _betainc(dof / 2.0, 0.5, x)


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (continued fraction, Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > 1e-30 else 1e-30)
        c = 1.0 + num / (c if abs(c) > 1e-30 else 1e-30)
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0) / a


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
    normaliser, 1 by construction), ``trend_se`` the slope's standard error (None with
    fewer than three scores), ``streak`` how many checks in a row the unit has been settled
    (below zero after the policy restored it: the checks it is held back for).
    """

    max_change: float = 0.0
    change: float | None = None
    score: float | None = None
    trend: float | None = None
    trend_se: float | None = None
    streak: int = 0
    updates: int = 0
    recent: tuple[float, ...] = ()

    @property
    def settled(self) -> bool:
        """Settled at the last check."""
        return self.streak > 0

    def to_dict(self) -> dict[str, Any]:
        return {"max_change": self.max_change, "change": self.change, "score": self.score,
                "trend": self.trend, "trend_se": self.trend_se, "streak": self.streak,
                "recent": list(self.recent),
                "updates": self.updates}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ScoreState:
        recent = tuple(float(v) for v in state.get("recent", ()))
        return cls(max_change=float(state["max_change"]), change=_opt(state.get("change")),
                   score=_opt(state.get("score")), trend=_opt(state.get("trend")),
                   trend_se=_opt(state.get("trend_se")), streak=int(state["streak"]), recent=recent,
                   updates=int(state.get("updates", len(recent) + 1)))


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def advance(state: ScoreState, change: float, policy: DropPolicy) -> ScoreState:
    """``state`` after one more check whose change is ``change``: measured
    (:func:`measure`), then settled or not (:func:`is_settled`)."""
    m = measure(state, change, policy)
    return replace(m, streak=state.streak + 1 if settles(m, policy) else 0)


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
    trend = slope(recent)
    return ScoreState(max_change=max_change, change=change, score=score, trend=trend,
                      trend_se=slope_error(recent, trend), streak=state.streak,
                      updates=updates, recent=recent)


def settles(state: ScoreState, policy: DropPolicy) -> bool:
    """Whether a unit whose score state (after a check) is ``state`` is settled at that
    check (:func:`is_settled` of its score, trend and the trend's error and points)."""
    return is_settled(state.score, state.trend, policy, state.trend_se, len(state.recent))


def is_settled(score: float | None, trend: float | None, policy: DropPolicy,
               trend_se: float | None = None, points: int | None = None) -> bool:
    """Settled at a check: the score at or below ``threshold`` and its trend flat
    (:func:`is_flat`; ``points``: the scores the trend was fitted to, by default a full
    window)."""
    return (score is not None and score <= policy.threshold
            and is_flat(trend, trend_se, policy, policy.window if points is None else points))


def is_flat(trend: float | None, trend_se: float | None, policy: DropPolicy,
            points: int) -> bool:
    """Whether a trend counts as flat: ``settle="tolerance"``: known and within
    ``trend_tolerance``; ``settle="noise"``: known with its standard error (three scores or
    more) and within ``t * trend_se``, ``t`` the two-sided ``confidence`` quantile of
    Student's t with ``points - 2`` degrees of freedom (``points``: the scores it was fitted
    to, the window once full)."""
    if trend is None:
        return False
    if policy.settle == "tolerance":
        return abs(trend) <= policy.trend_tolerance
    if trend_se is None or points < 3:
        return False
    return abs(trend) <= t_quantile(0.5 + policy.confidence / 2.0, points - 2) * trend_se


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


def may_drop(policy: DropPolicy, position: float) -> bool:
    """Whether the policy drops anything at a check made at epoch position ``position``
    (epochs completed, fractional): dropping on, warm-up over."""
    return policy.enabled and position >= policy.warmup_epochs


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


@dataclass(frozen=True)
class LossSpan:
    """The training loss over the steps between two checks: its mean, the standard error
    of that mean (from the steps' scatter) and how many steps it covers."""

    mean: float
    error: float
    steps: int

    @classmethod
    def of(cls, total: float, squares: float, steps: int) -> LossSpan | None:
        """From the sum of the steps' losses and of their squares; None for no steps or a
        loss that is not finite."""
        if steps < 1 or not (math.isfinite(total) and math.isfinite(squares)):
            return None
        mean = total / steps
        var = max(squares / steps - mean * mean, 0.0) * steps / max(steps - 1, 1)
        return cls(mean, math.sqrt(var / steps), steps)


def loss_rose(before: LossSpan, after: LossSpan, confidence: float) -> bool:
    """Whether the loss of ``after`` (a span after a drop) is above that of ``before`` (the
    span that ended at the drop) by more than their noise explains: one-sided, at
    ``confidence``. Training lowers the loss, so a rise beyond its noise is the drop's
    harm."""
    z = NormalDist().inv_cdf(confidence)
    return after.mean - before.mean > z * math.hypot(before.error, after.error)


def restore_hold(policy: DropPolicy) -> int:
    """The streak a unit the policy restored starts from: ``-patience``, so it must be
    settled for twice the patience in a row before it drops again."""
    return -policy.patience


def check_due(policy: DropPolicy, in_epoch: int, steps_per_epoch: int | None,
              step: int) -> bool:
    """Whether a check is due after global step ``step``, the ``in_epoch``-th step of its
    epoch: every ``check_every`` steps, else at ``checks_per_epoch`` evenly spaced steps
    inside the epoch (the last check of an epoch is made when it ends; a loop that does not
    know its steps per epoch gets that one only)."""
    if policy.check_every:
        return step % policy.check_every == 0
    per = policy.checks_per_epoch
    if per <= 1 or not steps_per_epoch or in_epoch >= steps_per_epoch or in_epoch < 1:
        return False
    return in_epoch * per // steps_per_epoch > (in_epoch - 1) * per // steps_per_epoch
