"""Why a unit has not dropped yet: each condition of the drop rule with its current value.

The facts come from the rule's own functions (:func:`may_drop`, :func:`is_kept`,
:func:`qualifies`, :func:`blocked_by`) and the settled test of :func:`advance`, so this never
disagrees with what the engine does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._policy import DropPolicy
from ._rule import (
    RuleUnit,
    UnitStatus,
    blocked_by,
    is_flat,
    is_kept,
    may_drop,
    qualifies,
    t_quantile,
)

__all__ = ["Condition", "why_not_yet", "verdict"]

_LE = "\u2264"
#: what a condition not met makes the unit wait for, in the verdict
_WAITING = {"warmup": "warm-up", "score": "score", "trend": "trend", "patience": "patience",
            "blocked": "the unit in front", "pinned": "unpinning", "kept": "never (kept)",
            "enabled": "dropping on"}


@dataclass(frozen=True)
class Condition:
    """One condition of the rule for one unit: ``met`` when it does not hold the unit back;
    ``value`` says the current value against the setting."""

    key: str  # enabled or warmup, score, trend, patience, blocked, pinned, kept
    label: str
    met: bool
    value: str


def why_not_yet(policy: DropPolicy, units: Sequence[RuleUnit],
                statuses: Sequence[UnitStatus], index: int, *, score: float | None,
                trend: float | None, epochs_done: float, trend_se: float | None = None,
                points: int | None = None) -> list[Condition]:
    """Each condition that decides whether unit ``index`` drops at the next check, with its
    value now. ``statuses`` are every unit's drop state (their streaks are how many checks
    in a row each has been settled); ``score``, ``trend`` and ``trend_se`` are the unit's
    last ones (``points``: the scores the trend was fitted to); ``epochs_done``: the epoch
    position of the last check (fractional)."""
    unit, status = units[index], statuses[index]
    out: list[Condition] = []
    if not policy.enabled:
        out.append(Condition("enabled", "Dropping", False, "off in this run (a baseline)"))
    else:
        done = may_drop(policy, epochs_done)
        out.append(Condition("warmup", "Warm-up", done,
                             f"{epochs_done:g} of {policy.warmup_epochs:g} epoch"
                             f"{'s' if policy.warmup_epochs != 1 else ''} done"
                             + ("" if done else " (no drop before)")))
    if not unit.scored:
        out.append(Condition("score", "Score", True, "no parameters: nothing to learn"))
    else:
        s_ok = score is not None and score <= policy.threshold
        out.append(Condition("score", "Score \u2264 threshold", s_ok,
                             "no score yet" if score is None else
                             f"{score:.3f} {_LE if s_ok else '>'} {policy.threshold:g}"))
        out.append(_trend(policy, trend, trend_se, policy.window if points is None else points))
        p_ok = qualifies(unit, status, policy)
        held = (f" (held back {-status.streak} more after a restore)"
                if status.streak < 0 else "")
        out.append(Condition("patience", "Patience", p_ok,
                             f"settled {max(status.streak, 0)} of {policy.patience} check"
                             f"{'s' if policy.patience != 1 else ''} in a row{held}"))
    front = blocked_by(policy, units, statuses, index)
    out.append(Condition("blocked", "Unit in front", front is None,
                         "any order: none needed" if policy.order != "prefix" else
                         "nothing in front still training holds it" if front is None else
                         f"blocked by {units[front].name} (still training; prefix order)"))
    out.append(Condition("pinned", "Pinned", not status.pinned,
                         "pinned: never drops" if status.pinned else "no"))
    kept = is_kept(index, len(units), policy.keep_last, unit.is_head)
    out.append(Condition("kept", "Kept", not kept,
                         "the head: always trains" if kept and unit.is_head else
                         f"kept by drop.keep_last = {policy.keep_last}" if kept else "no"))
    return out


def _trend(policy: DropPolicy, trend: float | None, trend_se: float | None,
           points: int) -> Condition:
    ok = is_flat(trend, trend_se, policy, points)
    if policy.settle == "tolerance":
        return Condition("trend", "Trend within tolerance", ok,
                         f"not known yet (fitted over {policy.window} checks)"
                         if trend is None else
                         f"|{trend:+.3f}| {_LE if ok else '>'} "
                         f"{policy.trend_tolerance:g} per check")
    if trend is None or trend_se is None or points < 3:
        return Condition("trend", "Trend flat within its noise", ok,
                         f"not known yet (fitted over {policy.window} checks, 3 at least)")
    bound = t_quantile(0.5 + policy.confidence / 2.0, points - 2) * trend_se
    return Condition("trend", "Trend flat within its noise", ok,
                     f"|{trend:+.3f}| {_LE if ok else '>'} {bound:.3f} per check (the noise "
                     f"at {policy.confidence:.0%} confidence)")


def verdict(conditions: Sequence[Condition], dropped: bool) -> str:
    """One line: dropped, drops at the next check, or what it waits for."""
    if dropped:
        return "dropped"
    waiting = [_WAITING.get(c.key, c.key) for c in conditions if not c.met]
    if not waiting:
        return "drops at the next check"
    return "waiting for: " + ", ".join(waiting)
