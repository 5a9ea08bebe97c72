"""The drop rule, as pure functions of a policy and a score history.

Nothing here touches a tensor, a model or an optimizer: the live engine, a what-if replay of
a recorded run, the app's "why not yet" and the tests all call these same functions, so the
rule is written once.

- :func:`advance` folds one check's change of one unit into its :class:`ScoreState`
  (score, trend, how many checks in a row it has been settled);
- :func:`drops_now` says which units the policy drops at a check, given each unit's
  :class:`UnitStatus`; :func:`is_kept` and :func:`blocked_by` are the facts it rests on;
- :func:`replay` runs a whole recorded history (each check's changes, the drops and pins
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
from dataclasses import dataclass, field, replace
from typing import Any

from ._policy import DropPolicy

__all__ = ["ScoreState", "RuleUnit", "UnitStatus", "RecordedCheck", "RecordedAction",
           "ReplayDrop", "Replay", "slope", "advance", "may_drop", "is_kept", "qualifies",
           "drops_now", "blocked_by", "replay"]

EPS = 1e-12


def slope(values: Sequence[float]) -> float | None:
    """Least-squares slope per step of ``values``; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    mean_x = (n - 1) / 2.0
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


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
    """``state`` after one more check whose change is ``change``. A change that is not
    finite (a diverged step) counts as the largest one so far: learning, not settled."""
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
    settled = (score <= policy.threshold and trend is not None
               and abs(trend) <= policy.trend_tolerance)
    return ScoreState(max_change=max_change, change=change, score=score, trend=trend,
                      streak=state.streak + 1 if settled else 0, updates=updates,
                      recent=recent)


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


# ---- replaying a recorded history ---------------------------------------------------------
@dataclass(frozen=True)
class RecordedCheck:
    """One recorded score check: its global step, its epoch position, the complete epochs
    before it (what the warm-up counts) and each unit's change (None where the unit was not
    scored: dropped, the head, or no change yet)."""

    step: int
    epoch: float
    epochs_done: int
    changes: tuple[float | None, ...]


#: what a :class:`RecordedAction` can be
ACTIONS = ("drop", "pin", "unpin", "restore")


@dataclass(frozen=True)
class RecordedAction:
    """Something done to a unit outside the policy, at the engine step where it took
    effect: a drop by hand, a pin (which restores a dropped unit first), an unpin, a
    restore. It applies before a check at the same step."""

    step: int
    action: str
    unit: int


@dataclass(frozen=True)
class ReplayDrop:
    """A drop under the replayed policy: the unit, the check (index into the history) at
    whose end it drops, that check's step and epoch position, and why ("policy" or
    "manual")."""

    unit: int
    check: int
    step: int
    epoch: float
    reason: str = "policy"


@dataclass(frozen=True)
class Replay:
    """What a policy does to a recorded history.

    ``drops``: every drop in order (a unit restored and dropped again appears twice);
    ``first_difference``: the index of the first check at which the replay decides
    differently from the recording (None when it never does): until then the prediction is
    exact, after it the network would have trained differently and the recorded changes no
    longer describe it. ``unknown``: units whose recorded history ends while the replay
    still trains them (the recording dropped them); the replay cannot say what they would
    have done after that.
    """

    drops: tuple[ReplayDrop, ...]
    first_difference: int | None
    unknown: frozenset[int] = field(default_factory=frozenset)
    states: tuple[ScoreState, ...] = ()

    def drop_of(self, unit: int) -> ReplayDrop | None:
        """The last drop of ``unit`` that was not undone, or None."""
        last: ReplayDrop | None = None
        for d in self.drops:
            if d.unit == unit:
                last = d
        return last


@dataclass
class _Side:
    """One side of a replay (the recording, or the policy under test): its drop state."""

    dropped: list[bool]
    pinned: list[bool]

    def act(self, action: RecordedAction) -> str:
        """Apply an action; "dropped" or "restored" when it changed the unit's drop state."""
        i = action.unit
        if action.action == "drop":
            if self.dropped[i] or self.pinned[i]:
                return ""
            self.dropped[i] = True
            return "dropped"
        done = ""
        if action.action in ("pin", "restore") and self.dropped[i]:
            self.dropped[i] = False
            done = "restored"
        if action.action == "pin":
            self.pinned[i] = True
        elif action.action == "unpin":
            self.pinned[i] = False
        return done


def replay(policy: DropPolicy, units: Sequence[RuleUnit], checks: Sequence[RecordedCheck],
           actions: Sequence[RecordedAction] = (),
           recorded_drops: Sequence[tuple[int, int]] = ()) -> Replay:
    """Run a recorded score history through the rule under ``policy``.

    ``actions`` are what was done by hand (applied to both sides at their step);
    ``recorded_drops`` are the policy's drops in the recording as (step, unit), compared
    with the replay's to find the first difference. Policy pins (``policy.pinned``) are
    pinned from the start. The scores are recomputed from the recorded changes with
    :func:`advance`, so the policy's threshold, trend tolerance, window, EMA, patience,
    warm-up, order and keep-last all take effect.
    """
    n = len(units)
    pins = [u.name in policy.pinned for u in units]
    side = _Side([False] * n, list(pins))
    record = _Side([False] * n, list(pins))
    states = [ScoreState() for _ in units]
    unknown: set[int] = set()
    todo = sorted(actions, key=lambda a: a.step)
    done = 0
    by_step: dict[int, list[int]] = {}
    for step, unit in recorded_drops:
        by_step.setdefault(step, []).append(unit)
    out: list[ReplayDrop] = []
    first: int | None = None
    for ci, check in enumerate(checks):
        while done < len(todo) and todo[done].step <= check.step:
            action = todo[done]
            done += 1
            changed = side.act(action)
            if changed == "dropped":
                out.append(ReplayDrop(action.unit, ci, action.step, check.epoch, "manual"))
            elif changed == "restored":  # trains again: its streak starts over
                states[action.unit] = replace(states[action.unit], streak=0)
            record.act(action)
            if action.action in ("pin", "restore"):
                unknown.discard(action.unit)
        for step in [s for s in by_step if s < check.step]:
            for i in by_step.pop(step):
                record.dropped[i] = True
        for i, u in enumerate(units):
            if u.is_head or side.dropped[i] or not u.scored:
                continue
            change = check.changes[i] if i < len(check.changes) else None
            if change is None:
                if record.dropped[i]:
                    unknown.add(i)
                continue
            states[i] = advance(states[i], change, policy)
        decided: list[int] = []
        if may_drop(policy, check.epochs_done):
            statuses = [UnitStatus(side.dropped[i], side.pinned[i],
                                   0 if i in unknown else states[i].streak)
                        for i in range(n)]
            decided = drops_now(policy, units, statuses)
        for i in decided:
            side.dropped[i] = True
            out.append(ReplayDrop(i, ci, check.step, check.epoch))
        recorded = sorted(by_step.pop(check.step, []))
        for i in recorded:
            record.dropped[i] = True
        if first is None and decided != recorded:
            first = ci
    return Replay(tuple(out), first, frozenset(unknown), tuple(states))
