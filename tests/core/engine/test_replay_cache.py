"""The replay that answers fast (measured scores cached, streaks folded as far as a decision
needs) decides exactly as feeding every unit every check through ``advance`` does."""

from __future__ import annotations

import random
from dataclasses import replace

from learndrop.core.engine import (
    DropPolicy,
    RecordedAction,
    RecordedCheck,
    ReplayDrop,
    RuleUnit,
    ScoreState,
    UnitStatus,
    advance,
    drops_now,
    may_drop,
    replay,
)


def plain_replay(policy: DropPolicy, units: list[RuleUnit], checks: list[RecordedCheck],
                 actions: list[RecordedAction], recorded: list[tuple[int, int]]) -> tuple:
    """The replay written the slow, obvious way: every unit advanced at every check."""
    n = len(units)
    dropped, pinned = [False] * n, [u.name in policy.pinned for u in units]
    rec_dropped, rec_pinned = [False] * n, list(pinned)
    states = [ScoreState() for _ in units]
    unknown: set[int] = set()
    todo = sorted(actions, key=lambda a: a.step)
    by_step: dict[int, list[int]] = {}
    for step, unit in recorded:
        by_step.setdefault(step, []).append(unit)
    out, first, done = [], None, 0

    def act(d: list[bool], p: list[bool], a: RecordedAction) -> str:
        i = a.unit
        if a.action == "drop":
            if d[i] or p[i]:
                return ""
            d[i] = True
            return "dropped"
        res = ""
        if a.action in ("pin", "restore") and d[i]:
            d[i], res = False, "restored"
        if a.action == "pin":
            p[i] = True
        elif a.action == "unpin":
            p[i] = False
        return res

    for ci, check in enumerate(checks):
        while done < len(todo) and todo[done].step <= check.step:
            a = todo[done]
            done += 1
            changed = act(dropped, pinned, a)
            if changed == "dropped":
                out.append(ReplayDrop(a.unit, ci, a.step, check.epoch, "manual"))
            elif changed == "restored":
                states[a.unit] = replace(states[a.unit], streak=0)
            act(rec_dropped, rec_pinned, a)
            if a.action in ("pin", "restore"):
                unknown.discard(a.unit)
        for step in [s for s in by_step if s < check.step]:
            for i in by_step.pop(step):
                rec_dropped[i] = True
        for i, u in enumerate(units):
            if u.is_head or dropped[i] or not u.scored:
                continue
            change = check.changes[i] if i < len(check.changes) else None
            if change is None:
                if rec_dropped[i]:
                    unknown.add(i)
                continue
            states[i] = advance(states[i], change, policy)
        decided: list[int] = []
        if may_drop(policy, check.epochs_done):
            decided = drops_now(policy, units, [
                UnitStatus(dropped[i], pinned[i], 0 if i in unknown else states[i].streak)
                for i in range(n)])
        for i in decided:
            dropped[i] = True
            out.append(ReplayDrop(i, ci, check.step, check.epoch))
        rec = sorted(by_step.pop(check.step, []))
        for i in rec:
            rec_dropped[i] = True
        if first is None and decided != rec:
            first = ci
    return tuple(out), first, frozenset(unknown), tuple(states)


def test_the_cached_replay_decides_as_the_plain_one() -> None:
    rng = random.Random(3)
    for trial in range(120):
        n = rng.randint(2, 7)
        units = [RuleUnit(f"u{i}", is_head=i == n - 1, scored=rng.random() > 0.1)
                 for i in range(n)]
        checks, recorded, actions = [], [], []
        gone: set[int] = set()
        for c in range(rng.randint(1, 25)):
            step = (c + 1) * 5
            changes = tuple(None if (i in gone or units[i].is_head or rng.random() < 0.05)
                            else rng.choice([rng.uniform(0.0, 2.0), float("nan"), 0.0])
                            for i in range(n))
            checks.append(RecordedCheck(step, step / 20, step // 20, changes))
            if rng.random() < 0.15:
                unit = rng.randrange(n - 1)
                recorded.append((step, unit))
                gone.add(unit)
            if rng.random() < 0.1:
                unit = rng.randrange(n - 1)
                actions.append(RecordedAction(step + rng.choice([-2, 0, 3]),
                                              rng.choice(["drop", "pin", "unpin", "restore"]),
                                              unit))
                if actions[-1].action in ("pin", "restore"):
                    gone.discard(unit)
        cache: dict = {}
        for _ in range(4):  # one cache, many policies, as a front end's sliders do
            policy = DropPolicy(
                threshold=rng.choice([0.2, 0.5, 0.9, 1.0]), patience=rng.randint(1, 3),
                trend_tolerance=rng.choice([0.01, 0.3, 10.0]), window=rng.randint(2, 5),
                settle=rng.choice(["noise", "tolerance"]), confidence=rng.choice([0.7, 0.9]),
                reversible=rng.random() < 0.5,
                warmup_epochs=rng.choice([0, 0.5, 1, 2]), keep_last=rng.randint(0, 1),
                order=rng.choice(["prefix", "any"]), ema=rng.choice([0.0, 0.5]),
                pinned=[units[0].name] if rng.random() < 0.1 else [])
            fast = replay(policy, units, checks, actions, recorded, cache=cache)
            plain = plain_replay(policy, units, checks, actions, recorded)
            assert (fast.drops, fast.first_difference, fast.unknown) == plain[:3], trial
            assert fast.states == plain[3], trial
