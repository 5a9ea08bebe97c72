"""Why a unit has not dropped yet: each condition of the rule with its value, from the rule's
own functions, agreeing with the decision the rule makes."""

from __future__ import annotations

import random

from learndrop.core.engine import (
    DropPolicy,
    RuleUnit,
    ScoreState,
    UnitStatus,
    advance,
    drops_now,
    may_drop,
    verdict,
    why_not_yet,
)

UNITS = [RuleUnit("stem"), RuleUnit("a"), RuleUnit("b"), RuleUnit("c"),
         RuleUnit("head", is_head=True)]


def _by_key(conditions: list) -> dict:
    return {c.key: c for c in conditions}


def test_low_score_but_steep_trend_is_named_as_the_trend() -> None:
    """Under the threshold for two checks with patience 2, yet not settled: the trend."""
    policy = DropPolicy(threshold=0.5, patience=2, trend_tolerance=0.05, window=3,
                        settle="tolerance", warmup_epochs=1, keep_last=1)
    state = ScoreState()
    for change in (10.0, 4.0, 2.0, 0.5):  # scores 1, 0.4, 0.2, 0.05: low, still falling
        state = advance(state, change, policy)
    assert state.score is not None and state.score <= 0.5 and state.streak == 0
    statuses = [UnitStatus(streak=state.streak)] + [UnitStatus()] * 4
    c = _by_key(why_not_yet(policy, UNITS, statuses, 0, score=state.score, trend=state.trend,
                            epochs_done=2))
    assert c["warmup"].met and c["score"].met and "0.050 \u2264 0.5" in c["score"].value
    assert not c["trend"].met and "> 0.05 per check" in c["trend"].value
    assert not c["patience"].met and c["patience"].value == "settled 0 of 2 checks in a row"
    assert c["blocked"].met and c["pinned"].met and c["kept"].met
    assert verdict(list(c.values()), False) == "waiting for: trend, patience"


def test_warmup_block_pin_and_keep_are_named() -> None:
    policy = DropPolicy(threshold=0.5, patience=1, warmup_epochs=3, keep_last=1)
    statuses = [UnitStatus(streak=0), UnitStatus(streak=5), UnitStatus(pinned=True, streak=5),
                UnitStatus(streak=5), UnitStatus()]
    a = _by_key(why_not_yet(policy, UNITS, statuses, 1, score=0.1, trend=0.0, epochs_done=1))
    assert not a["warmup"].met and a["warmup"].value.startswith("1 of 3 epochs done")
    assert not a["blocked"].met and "blocked by stem" in a["blocked"].value
    b = _by_key(why_not_yet(policy, UNITS, statuses, 2, score=0.1, trend=0.0, epochs_done=4))
    assert not b["pinned"].met and b["warmup"].met
    c = _by_key(why_not_yet(policy, UNITS, statuses, 3, score=0.1, trend=0.0, epochs_done=4))
    assert not c["kept"].met and c["kept"].value == "kept by drop.keep_last = 1"
    head = _by_key(why_not_yet(policy, UNITS, statuses, 4, score=None, trend=None,
                               epochs_done=4))
    assert head["kept"].value == "the head: always trains" and not head["score"].met
    base = _by_key(why_not_yet(DropPolicy(enabled=False), UNITS, statuses, 0, score=0.1,
                               trend=0.0, epochs_done=9))
    assert not base["enabled"].met and "baseline" in base["enabled"].value
    anyway = _by_key(why_not_yet(DropPolicy(order="any"), UNITS, statuses, 3, score=0.1,
                                 trend=0.0, epochs_done=9))
    assert anyway["blocked"].met and anyway["blocked"].value.startswith("any order")


def test_every_condition_met_exactly_when_the_rule_drops_the_unit() -> None:
    rng = random.Random(7)
    for _ in range(300):
        policy = DropPolicy(threshold=rng.choice([0.3, 0.6, 0.9]), patience=rng.randint(1, 3),
                            trend_tolerance=rng.choice([0.02, 0.2, 1.0]),
                            settle=rng.choice(["noise", "tolerance"]),
                            confidence=rng.choice([0.6, 0.9, 0.99]),
                            window=rng.randint(2, 6), warmup_epochs=rng.choice([0, 0.5, 1, 2]),
                            keep_last=rng.randint(0, 2), order=rng.choice(["prefix", "any"]))
        states = []
        for _u in UNITS:
            s = ScoreState()
            for _c in range(rng.randint(0, 7)):
                s = advance(s, rng.uniform(0.01, 2.0), policy)
            states.append(s)
        statuses = [UnitStatus(dropped=rng.random() < 0.2, pinned=rng.random() < 0.1,
                               streak=s.streak) for s in states]
        epochs = rng.choice([0, 0.25, 0.5, 1.0, 1.75, 3.0])
        decided = drops_now(policy, UNITS, statuses) if may_drop(policy, epochs) else []
        for i, s in enumerate(states):
            if statuses[i].dropped:
                continue
            conditions = why_not_yet(policy, UNITS, statuses, i, score=s.score, trend=s.trend,
                                     epochs_done=epochs, trend_se=s.trend_se,
                                     points=len(s.recent))
            assert all(c.met for c in conditions) == (i in decided), (policy, i, conditions)
            assert (verdict(conditions, False) == "drops at the next check") == (i in decided)
