"""Replaying a recorded score history through the drop rule (:mod:`._rule`).

:func:`replay` feeds each unit's recorded changes to :func:`measure` and :func:`is_settled`
(what :func:`advance` is made of) and asks :func:`drops_now` at every check, as the live
engine does, so a replay under the run's own policy makes the run's own decisions.

It is built to answer fast when a front end moves a slider: a unit's measured scores and
trends depend only on its changes and on ``ema`` and ``window``, so they are kept in a cache
(pass the same ``cache`` dict again) and computed only as far as a decision needs them; a
unit is settled-or-not from those with the policy's threshold and tolerance, again only as
far as needed (in prefix order the units behind the first one still training are not looked
at). A unit restored by hand is then fed check by check, as the engine would.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._policy import DropPolicy
from ._rule import (
    RuleUnit,
    ScoreState,
    UnitStatus,
    drops_now,
    may_drop,
    measure,
    restore_hold,
    settles,
)

__all__ = ["RecordedCheck", "RecordedAction", "ReplayDrop", "Replay", "replay", "ACTIONS",
           "prepare_replay"]


@dataclass(frozen=True)
class RecordedCheck:
    """One recorded score check: its global step, its epoch position, the position the
    warm-up counts (the same, but for runs recorded before warm-ups took fractions: their
    complete epochs) and each unit's change (None where the unit was not scored: dropped,
    the head, or no change yet)."""

    step: int
    epoch: float
    epochs_done: float
    changes: tuple[float | None, ...]


#: what a :class:`RecordedAction` can be
ACTIONS = ("drop", "pin", "unpin", "restore", "revert")


@dataclass(frozen=True)
class RecordedAction:
    """Something done to a unit outside the drop rule, at the engine step where it took
    effect: a drop by hand, a pin (which restores a dropped unit first), an unpin, a
    restore; or ``revert``, a restore of the reversible policy (the loss after a drop
    rose), which holds the unit back :func:`restore_hold` checks and is replayed only under
    a reversible policy. It applies before a check at the same step."""

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
    have done after that. ``states``: each unit's last score state (empty when not asked
    for).
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
        if action.action in ("pin", "restore", "revert") and self.dropped[i]:
            self.dropped[i] = False
            done = "restored"
        if action.action == "pin":
            self.pinned[i] = True
        elif action.action == "unpin":
            self.pinned[i] = False
        return done


class _Feeds:
    """Each unit's recorded changes: the checks that have one, and the values."""

    def __init__(self, checks: Sequence[RecordedCheck], n: int) -> None:
        self.at: list[list[int]] = [[] for _ in range(n)]
        self.values: list[list[float]] = [[] for _ in range(n)]
        for ci, check in enumerate(checks):
            for i, change in enumerate(check.changes[:n]):
                if change is not None:
                    self.at[i].append(ci)
                    self.values[i].append(change)

    def fed(self, unit: int, upto: int) -> int:
        """How many changes unit ``unit`` has at checks ``0..upto``."""
        return bisect_right(self.at[unit], upto)


class _Tracks:
    """Each unit's measured states over its changes, for one ``ema`` and ``window``,
    computed as far as asked."""

    def __init__(self, feeds: _Feeds, policy: DropPolicy) -> None:
        self.feeds, self.policy = feeds, policy
        self.states: list[list[ScoreState]] = [[] for _ in feeds.values]

    def upto(self, unit: int, count: int) -> list[ScoreState]:
        track = self.states[unit]
        values = self.feeds.values[unit]
        while len(track) < count:
            track.append(measure(track[-1] if track else ScoreState(), values[len(track)],
                                 self.policy))
        return track


class _Run:
    """The replay's per-unit bookkeeping: streaks from the tracks, folded as far as asked;
    units restored by hand fed check by check."""

    def __init__(self, policy: DropPolicy, units: Sequence[RuleUnit], feeds: _Feeds,
                 tracks: _Tracks, side: _Side) -> None:
        n = len(units)
        self.policy, self.units, self.feeds, self.tracks, self.side = (policy, units, feeds,
                                                                      tracks, side)
        self.folded = [0] * n  # track entries whose settled test is counted in streak
        self.streak = [0] * n
        self.direct: list[ScoreState | None] = [None] * n  # units fed check by check
        self.directs: set[int] = set()
        self.scored = [not u.is_head and u.scored for u in units]
        self.stopped = [-1] * n  # for a dropped unit: its changes fed when it dropped
        self.unknown: set[int] = set()
        self.check = -1  # the checks fed so far: 0..check

    def fed_now(self, i: int) -> int:
        return self.stopped[i] if self.stopped[i] >= 0 else self.feeds.fed(i, self.check)

    def streak_of(self, i: int) -> int:
        d = self.direct[i]
        if d is not None:
            return d.streak
        count = self.fed_now(i)
        if count > self.folded[i]:
            track = self.tracks.upto(i, count)
            streak, policy = self.streak[i], self.policy
            for k in range(self.folded[i], count):
                m = track[k]
                streak = streak + 1 if settles(m, policy) else 0
            self.streak[i], self.folded[i] = streak, count
        return self.streak[i]

    def state_of(self, i: int) -> ScoreState:
        d = self.direct[i]
        if d is not None:
            return d
        count = self.fed_now(i)
        if count == 0:
            return ScoreState()
        return replace(self.tracks.upto(i, count)[count - 1], streak=self.streak_of(i))

    def dropped(self, i: int) -> None:
        if self.direct[i] is None:
            self.stopped[i] = self.fed_now(i)

    def restored(self, i: int, streak: int = 0) -> None:
        """Trains again: fed check by check from its state at the drop, its streak from
        ``streak`` (0, or below after a revert)."""
        self.direct[i] = replace(self.state_of(i), streak=streak)
        self.directs.add(i)
        self.stopped[i] = -1

    def feed_direct(self, check: RecordedCheck) -> None:
        for i in sorted(self.directs):
            d = self.direct[i]
            if d is None or self.side.dropped[i]:
                continue
            change = check.changes[i] if i < len(check.changes) else None
            if change is not None:
                m = measure(d, change, self.policy)
                self.direct[i] = replace(m, streak=d.streak + 1 if settles(m, self.policy)
                                         else 0)

    def status(self, i: int) -> UnitStatus:
        if self.side.dropped[i]:
            return _DROPPED
        return UnitStatus(False, self.side.pinned[i], self.streak_of(i) if self.scored[i]
                          and i not in self.unknown else 0)


_DROPPED = UnitStatus(dropped=True)  # all that drops_now and blocked_by read of a dropped unit


class _Statuses(Sequence[UnitStatus]):
    """Every unit's status, each made when the rule reads it."""

    def __init__(self, run: _Run) -> None:
        self.run, self.n = run, len(run.units)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.run.status(j) for j in range(self.n)[i]]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.run.status(i % self.n)

    def __iter__(self) -> Iterator[UnitStatus]:
        status, dropped = self.run.status, self.run.side.dropped
        for j in range(self.n):
            yield _DROPPED if dropped[j] else status(j)


def _cached(cache: dict[Any, Any], checks: Sequence[RecordedCheck], n: int,
            policy: DropPolicy) -> tuple[_Feeds, _Tracks]:
    feeds = cache.get("feeds")
    if not isinstance(feeds, _Feeds) or cache.get("checks") is not checks:
        cache.clear()
        feeds = cache["feeds"] = _Feeds(checks, n)
        cache["checks"] = checks
    key = ("tracks", policy.ema, policy.window)
    tracks = cache.get(key)
    if not isinstance(tracks, _Tracks):
        tracks = cache[key] = _Tracks(feeds, policy)
    return feeds, tracks


def prepare_replay(policy: DropPolicy, units: Sequence[RuleUnit],
                   checks: Sequence[RecordedCheck], cache: dict[Any, Any]) -> None:
    """Measure every unit's whole history for ``policy``'s EMA and window into ``cache``,
    so that the replays that follow (any threshold, tolerance, patience, warm-up, order)
    only decide."""
    feeds, tracks = _cached(cache, checks, len(units), policy)
    for i, values in enumerate(feeds.values):
        tracks.upto(i, len(values))


def replay(policy: DropPolicy, units: Sequence[RuleUnit], checks: Sequence[RecordedCheck],
           actions: Sequence[RecordedAction] = (),
           recorded_drops: Sequence[tuple[int, int]] = (), *,
           cache: dict[Any, Any] | None = None, with_states: bool = True) -> Replay:
    """Run a recorded score history through the rule under ``policy``.

    ``actions`` are what was done by hand (applied to both sides at their step);
    ``recorded_drops`` are the policy's drops in the recording as (step, unit), compared
    with the replay's to find the first difference. Policy pins (``policy.pinned``) are
    pinned from the start. The scores are recomputed from the recorded changes as
    :func:`advance` does, so the policy's threshold, trend tolerance, window, EMA, patience,
    warm-up, order and keep-last all take effect. ``cache``: a dict kept between replays of
    the same ``checks`` (the measured scores are reused); ``with_states``: fill
    :attr:`Replay.states`.
    """
    n = len(units)
    feeds, tracks = _cached({} if cache is None else cache, checks, n, policy)
    pins = [u.name in policy.pinned for u in units]
    side = _Side([False] * n, list(pins))
    record = _Side([False] * n, list(pins))
    run = _Run(policy, units, feeds, tracks, side)
    statuses = _Statuses(run)
    scored = run.scored
    watch: set[int] = set()  # units the recording dropped that the replay still trains

    def look(i: int) -> None:
        if record.dropped[i] and not side.dropped[i] and scored[i] and i not in run.unknown:
            watch.add(i)
        else:
            watch.discard(i)

    todo = sorted((a for a in actions if a.action != "revert" or policy.reversible),
                  key=lambda a: a.step)
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
                run.dropped(action.unit)
                out.append(ReplayDrop(action.unit, ci, action.step, check.epoch, "manual"))
            elif changed == "restored":  # trains again: its streak starts over
                run.restored(action.unit, restore_hold(policy)
                             if action.action == "revert" else 0)
            record.act(action)
            if action.action in ("pin", "restore", "revert"):
                run.unknown.discard(action.unit)
            look(action.unit)
        for step in [s for s in by_step if s < check.step]:
            for i in by_step.pop(step):
                record.dropped[i] = True
                look(i)
        run.check = ci
        run.feed_direct(check)
        for i in list(watch):
            change = check.changes[i] if i < len(check.changes) else None
            if change is None:
                run.unknown.add(i)
                watch.discard(i)
        decided: list[int] = []
        if may_drop(policy, check.epochs_done):
            decided = drops_now(policy, units, statuses)
        for i in decided:
            side.dropped[i] = True
            run.dropped(i)
            watch.discard(i)
            out.append(ReplayDrop(i, ci, check.step, check.epoch))
        recorded = sorted(by_step.pop(check.step, []))
        for i in recorded:
            record.dropped[i] = True
            look(i)
        if first is None and decided != recorded:
            first = ci
    states = tuple(run.state_of(i) if scored[i] else ScoreState() for i in range(n)) \
        if with_states else ()
    return Replay(tuple(out), first, frozenset(run.unknown), states)
