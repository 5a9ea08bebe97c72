"""What another drop policy would have done to a recorded run.

:func:`what_if` reads a run's events (its units, every score check, the drops and the pins),
replays the score history under a policy with the engine's own rule
(:func:`learndrop.core.engine.replay`) and says, for each unit, at which check and epoch it
would have dropped next to when it did, and the training FLOPs each drop timeline saves up
to the end of the recorded history.

The prediction is exact until the first decision that differs from the recorded run: after
that the network would have trained differently, so the recorded changes no longer describe
it. Runs recorded with dropping off (baselines) score their units too, so any baseline can
be asked what Learn&Drop would have done.

FLOPs are counted with the engine's cost model (:func:`learndrop.core.engine.step_cost`)
over every recorded step, a drop taking effect from the step after its check. In cache
mode a dropped prefix is counted as read from the cache from the second epoch after it
changed (the first one fills the cache) and every dropped prefix unit as cacheable, so
both figures are estimates there; in freeze and skip mode they are the engine's own count.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import (
    SETTLE_TESTS,
    DropPolicy,
    RecordedAction,
    RecordedCheck,
    Replay,
    ReplayDrop,
    RuleUnit,
    prepare_replay,
    replay,
    step_cost,
)
from ..errors import ConfigError
from ..events import DropEvent, FitStart, RestoreEvent, ScoreCheck, UnitInfo, UserAction

__all__ = ["WHATIF_SETTINGS", "SETTLE_TESTS", "WhatIf", "WhatIfUnit", "RecordedRun",
           "recorded_run", "what_if",
           "policy_of", "prepare_what_if"]

#: the settings a what-if may change: those the rule reads from a score history
WHATIF_SETTINGS = ("threshold", "patience", "settle", "confidence", "trend_tolerance",
                   "window", "warmup_epochs", "order", "keep_last", "ema", "enabled",
                   "reversible")

HONESTY = ("exact until the first decision that differs from the recorded run; after it the "
           "network would have trained differently")


@dataclass(frozen=True)
class RecordedRun:
    """What a what-if needs of a recorded run, read from its events."""

    units: tuple[UnitInfo, ...]
    policy: DropPolicy
    mode: str
    steps_per_epoch: int
    last_step: int
    first_step: int
    checks: tuple[RecordedCheck, ...]
    actions: tuple[RecordedAction, ...]
    drops: tuple[ReplayDrop, ...]  # every recorded drop, in order (check: -1 if by hand)
    total_forward_flops: int
    #: what replays of this run keep between them (its measured scores)
    cache: dict[Any, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def policy_drops(self) -> tuple[tuple[int, int], ...]:
        """(step, unit) of each drop the policy made."""
        return tuple((d.step, d.unit) for d in self.drops if d.reason == "policy")

    def recorded(self) -> Replay:
        """What happened, in the shape of a replay."""
        return Replay(self.drops, None)


@dataclass(frozen=True)
class WhatIfUnit:
    name: str
    drop_check: int | None  # index of the check at whose end it drops (None: it does not)
    drop_epoch: float | None
    recorded_drop_check: int | None
    recorded_drop_epoch: float | None
    unknown: bool  # its recorded history ends (it was dropped) while the replay trains it


@dataclass(frozen=True)
class WhatIf:
    """A policy's replay of a recorded run, unit by unit, with the FLOPs each saves."""

    policy: DropPolicy
    recorded_policy: DropPolicy
    units: tuple[WhatIfUnit, ...]
    checks: int
    first_difference: int | None  # the first check decided differently (None: none)
    first_difference_epoch: float | None
    train_flops_saved: float  # over every recorded step, as shares of the full network's
    recorded_train_flops_saved: float
    mode: str
    honesty: str = HONESTY

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": {k: getattr(self.policy, k) for k in WHATIF_SETTINGS},
            "recorded_policy": {k: getattr(self.recorded_policy, k) for k in WHATIF_SETTINGS},
            "mode": self.mode,
            "checks": self.checks,
            "units": [{"name": u.name, "drop_epoch": u.drop_epoch, "drop_check": u.drop_check,
                       "recorded_drop_epoch": u.recorded_drop_epoch,
                       "recorded_drop_check": u.recorded_drop_check, "unknown": u.unknown}
                      for u in self.units],
            "first_difference_check": self.first_difference,
            "first_difference_epoch": self.first_difference_epoch,
            "train_flops_saved": self.train_flops_saved,
            "recorded_train_flops_saved": self.recorded_train_flops_saved,
            "exact": self.honesty,
        }


#: the settings a run recorded before they existed ran with (a later default may differ)
LEGACY = {"settle": "tolerance", "checks_per_epoch": 1, "reversible": False}


def policy_of(config: Any) -> DropPolicy:
    """The drop policy of a run's config (as ``FitStart.config`` holds it); settings it does
    not name keep their defaults."""
    drop = config.get("drop", {}) if isinstance(config, dict) else {}
    if drop and "settle" not in drop:  # recorded before these settings: what it ran with
        drop = {**LEGACY, **drop}
    known = {f.name for f in dataclasses.fields(DropPolicy)}
    try:
        return DropPolicy().with_values(**{k: v for k, v in drop.items() if k in known})
    except ConfigError:  # a run recorded by a version with other bounds: its settings as is
        return dataclasses.replace(DropPolicy(), **{k: v for k, v in drop.items()
                                                    if k in known})


def recorded_run(events: Iterable[Any]) -> RecordedRun:
    """The units, policy, score checks, drops and pins of a run's events."""
    start: FitStart | None = None
    checks: list[ScoreCheck] = []
    actions: list[RecordedAction] = []
    drops: list[ReplayDrop] = []
    last_step = 0
    for e in events:
        step = getattr(e, "step", None)
        if isinstance(step, int):
            last_step = max(last_step, step)
        if isinstance(e, FitStart):
            start = e
        elif start is None:
            continue
        elif isinstance(e, ScoreCheck):
            checks.append(e)
        elif isinstance(e, DropEvent):
            index = _index(start.units, e.unit, e.index)
            check = len(checks) - 1 if checks and checks[-1].step == e.step else -1
            drops.append(ReplayDrop(index, check, e.step, e.epoch, e.reason))
            if e.reason == "manual":  # taken in the step it was made in
                actions.append(RecordedAction(e.step, "drop", index))
        elif isinstance(e, RestoreEvent):  # the reversible policy's: taken at the check
            actions.append(RecordedAction(e.step, "revert", _index(start.units, e.unit,
                                                                   e.index)))
        elif isinstance(e, UserAction) and e.action in ("pin", "unpin"):
            # reported at the batch boundary, applied by the engine's next step
            actions.append(RecordedAction(e.step + 1, e.action,
                                          _index(start.units, e.unit, -1)))
    if start is None:
        raise ConfigError("the run recorded no start (no units to replay)")
    policy = policy_of(start.config)
    spe = max(int(start.steps_per_epoch), 1)

    legacy = "settle" not in (start.config.get("drop", {})
                              if isinstance(start.config, dict) else {})

    def warmed(c: ScoreCheck) -> float:
        if not legacy:  # the epoch position, as the engine compares it
            return c.epoch
        # before: the complete epochs; a check made every check_every steps runs inside
        # the step, before the epoch it ends is counted; once an epoch, after it
        return float((c.step - 1) // spe if policy.check_every else c.step // spe)

    recorded = tuple(RecordedCheck(c.step, c.epoch, warmed(c),
                                   tuple(_finite(v) for v in c.changes)) for c in checks)
    return RecordedRun(
        units=start.units, policy=policy, mode=start.mode, steps_per_epoch=spe,
        last_step=last_step, first_step=start.resumed_from_epoch * spe, checks=recorded,
        actions=tuple(a for a in actions if a.unit >= 0),
        drops=tuple(d for d in drops if d.unit >= 0),
        total_forward_flops=start.forward_flops)


def _index(units: Sequence[UnitInfo], name: str, index: int) -> int:
    if 0 <= index < len(units) and units[index].name == name:
        return index
    return next((u.index for u in units if u.name == name), -1)


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def what_if(run: RecordedRun, **settings: Any) -> WhatIf:
    """Replay ``run`` under its own policy with ``settings`` changed (any of
    :data:`WHATIF_SETTINGS`); a :class:`ConfigError` names a setting that is unknown here
    or invalid."""
    unknown = [k for k in settings if k not in WHATIF_SETTINGS]
    if unknown:
        raise ConfigError(f"a what-if cannot change drop.{unknown[0]} (it can change "
                          f"{', '.join(WHATIF_SETTINGS)})", field=f"drop.{unknown[0]}")
    # the rule never reads the mode: freeze, so that any order may be asked of a cache run
    policy = dataclasses.replace(run.policy, mode="freeze").with_values(
        **{k: v for k, v in settings.items() if v is not None})
    rule_units = [RuleUnit(u.name, u.is_head, u.params > 0) for u in run.units]
    result = replay(policy, rule_units, run.checks, run.actions, run.policy_drops,
                    cache=run.cache, with_states=False)
    mine = run.recorded()
    units = []
    for u in run.units:
        d, r = result.drop_of(u.index), mine.drop_of(u.index)
        units.append(WhatIfUnit(u.name, d.check if d else None, d.epoch if d else None,
                                r.check if r and r.check >= 0 else None,
                                r.epoch if r else None, u.index in result.unknown))
    first = result.first_difference
    return WhatIf(policy=policy, recorded_policy=run.policy, units=tuple(units),
                  checks=len(run.checks), first_difference=first,
                  first_difference_epoch=run.checks[first].epoch if first is not None else None,
                  train_flops_saved=_flops_saved(run, result, policy.reversible),
                  recorded_train_flops_saved=_recorded_saving(run, mine), mode=run.mode)


def prepare_what_if(run: RecordedRun, **settings: Any) -> None:
    """Measure the run's whole score history ahead for the EMA and window in ``settings``
    (default: the run's), so that what-ifs that change anything else answer at once."""
    policy = run.policy.with_values(**{k: v for k, v in settings.items()
                                       if k in ("ema", "window") and v is not None})
    prepare_replay(policy, [RuleUnit(u.name, u.is_head, u.params > 0) for u in run.units],
                   run.checks, run.cache)


def _recorded_saving(run: RecordedRun, mine: Replay) -> float:
    """The recorded run's own saving (the same for every what-if: kept in its cache)."""
    if "recorded_saving" not in run.cache:
        run.cache["recorded_saving"] = _flops_saved(run, mine, run.policy.reversible)
    return float(run.cache["recorded_saving"])


def _flops_saved(run: RecordedRun, result: Replay, reverts: bool) -> float:
    """The share of the full network's training FLOPs a drop timeline saves over the
    recorded steps (see the module's docstring); ``reverts``: the recorded restores of the
    reversible policy took place in it."""
    flops = [float(u.forward_flops) for u in run.units]
    other = max(float(run.total_forward_flops) - sum(flops), 0.0)
    full = step_cost(flops, [False] * len(flops), other_flops=other).train
    steps = run.last_step - run.first_step
    if steps <= 0 or full <= 0:
        return 0.0
    # every change of drop state: (step it takes effect after, unit, dropped or restored)
    changes = sorted([(d.step, d.unit, True) for d in result.drops]
                     + [(a.step, a.unit, False) for a in run.actions
                        if a.action in ("pin", "restore") or (reverts and a.action == "revert")])
    dropped = [False] * len(flops)
    skipped = [u.skippable for u in run.units]
    spe = run.steps_per_epoch
    spent = 0.0
    at = run.first_step
    hits_from = math.inf

    def cost(prefix: int, hit: bool) -> float:
        return step_cost(flops, dropped, other_flops=other, prefix=prefix,
                         cached=range(prefix), cache_hit=hit, skipped=skipped,
                         mode=run.mode).train

    def spend(until: int) -> None:
        nonlocal spent, at
        until = min(until, run.last_step)
        if until <= at:
            return
        prefix = _leading(dropped)
        split = int(min(max(hits_from, at), until))
        spent += (split - at) * cost(prefix, False) + (until - split) * cost(prefix, True)
        at = until

    for step, unit, gone in changes:
        spend(step)
        before = _leading(dropped)
        dropped[unit] = gone
        if run.mode == "cache" and _leading(dropped) != before:  # filled in the next epoch
            hits_from = (math.ceil(step / spe) + 1) * spe
    spend(run.last_step)
    return 1.0 - spent / (steps * full)


def _leading(dropped: Sequence[bool]) -> int:
    n = 0
    for d in dropped:
        if not d:
            break
        n += 1
    return n
