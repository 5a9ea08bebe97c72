"""A :class:`LearnDrop`'s score check: score every training unit, then apply the drop rule.

Each function takes the :class:`~._strategy.LearnDrop` first. A unit qualifies once its
score has stayed settled for ``patience`` checks; the policy drops qualifying units that are
neither pinned nor among the last ``keep_last`` (in ``prefix`` order only a leading run).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..events import ScoreCheck, call_hook
from ._units import Unit

if TYPE_CHECKING:
    from ._strategy import LearnDrop

__all__ = ["score_check", "policy_drops"]


def score_check(ld: LearnDrop) -> ScoreCheck:
    """Score every training unit now, then apply the drop rule."""
    t0 = time.perf_counter()
    ld.check_count += 1
    units = ld._scored_units()
    lr = ld._lr_sum / ld._lr_n if ld._lr_n else (
        float(ld.optimizer.param_groups[0]["lr"]) if ld.optimizer else 1.0)
    ld._lr_sum, ld._lr_n = 0.0, 0
    policy = ld.policy
    if ld._grads is not None:  # score="gradient": the change of each unit's gradient norm
        keys = [u.index for u in units]
        found = ld._grads.changes(keys)
        items = [(k, c) for k, c in zip(keys, found) if c is not None]
    else:
        params = [(u.index, u.parameters()) for u in units if u.index in ld._snaps]
        moved = ld._snaps.relative_changes(params)
        norm = lr if policy.lr_normalize and ld.optimizer is not None and lr > 0 else 1.0
        items = [(k, c / norm) for (k, _), c in zip(params, moved)]
    for idx, change in items:
        s = ld._scores[idx]
        s.update(change, policy.threshold, policy.trend_tolerance)
        ld.scores[ld.units[idx].name] = float(s.score or 0.0)
    cost = time.perf_counter() - t0
    ld.score_time_s += cost
    n = len(ld.units)
    scored = {idx for idx, _ in items}
    scores = ld._scores
    event = ScoreCheck(
        step=ld.step_count, epoch=ld._epoch_float(), lr=lr,
        changes=tuple(scores[i].change if i in scored else None for i in range(n)),
        scores=tuple(scores[i].score if i in scored else None for i in range(n)),
        trends=tuple(scores[i].trend if i in scored else None for i in range(n)),
        settled=tuple(i in scored and scores[i].streak > 0 for i in range(n)),
        streaks=tuple(scores[i].streak for i in range(n)),
        cost_s=cost)
    call_hook(ld.callbacks, "on_scores", event)
    if policy.enabled and ld.epoch >= policy.warmup_epochs:
        names = [u.name for u in policy_drops(ld)]
        if ld._ddp is not None:  # rank 0 decides for every rank
            names = ld._ddp.agree_names(names)
        for name in names:
            ld.drop(name, reason="policy")
    return event


def _protected(ld: LearnDrop) -> set[int]:
    head = len(ld.units) - 1
    return set(range(max(head - ld.policy.keep_last, 0), head + 1))


def _qualifies(ld: LearnDrop, u: Unit) -> bool:
    return u.params == 0 or ld._scores[u.index].streak >= ld.policy.patience


def policy_drops(ld: LearnDrop) -> list[Unit]:
    """The units the drop rule drops now."""
    protected = _protected(ld)
    out: list[Unit] = []
    for u in ld.units:
        st = ld._state[u.index]
        if st.dropped:
            continue
        ok = u.index not in protected and not st.pinned and _qualifies(ld, u)
        if ok:
            out.append(u)
        elif ld.policy.order == "prefix":
            break
    return out
