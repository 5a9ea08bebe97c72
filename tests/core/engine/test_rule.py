"""The drop rule as pure functions: score states, the decision, and a replay of a history."""

from __future__ import annotations

import pytest

from learndrop.core.engine import (
    DropPolicy,
    RecordedAction,
    RecordedCheck,
    RuleUnit,
    ScoreState,
    UnitStatus,
    advance,
    blocked_by,
    drops_now,
    is_kept,
    replay,
)

EASY = DropPolicy(threshold=1.0, patience=1, warmup_epochs=0, window=2, trend_tolerance=10.0,
                  settle="tolerance")
UNITS = [RuleUnit("stem"), RuleUnit("a"), RuleUnit("b"), RuleUnit("c"),
         RuleUnit("head", is_head=True)]


def test_the_first_check_anchors_the_score_but_not_the_trend() -> None:
    policy = DropPolicy(threshold=0.5, trend_tolerance=0.1, window=3, settle="tolerance")
    s = advance(ScoreState(), 2.0, policy)  # the anchor: score 1
    assert s.score == 1.0 and s.trend is None and not s.settled
    s = advance(s, 0.6, policy)  # one trend point: no slope yet
    assert not s.settled
    s = advance(s, 0.6, policy)  # 0.3, 0.3: flat and low
    assert s.trend == 0.0 and s.streak == 1
    s = advance(s, 2.0, policy)  # learning again
    assert s.streak == 0 and s.score == 1.0


def test_a_change_that_is_not_finite_counts_as_learning() -> None:
    s = advance(advance(ScoreState(), 1.0, EASY), float("nan"), EASY)
    assert s.change == 1.0 and s.score == 1.0


def test_the_state_round_trips_through_a_dict() -> None:
    s = advance(advance(advance(ScoreState(), 1.0, EASY), 0.4, EASY), 0.3, EASY)
    assert ScoreState.from_dict(s.to_dict()) == s


def _statuses(streaks: list[int], dropped: set[int] = frozenset(),  # type: ignore[assignment]
              pinned: set[int] = frozenset()) -> list[UnitStatus]:  # type: ignore[assignment]
    return [UnitStatus(i in dropped, i in pinned, k) for i, k in enumerate(streaks)]


def test_prefix_order_drops_only_a_leading_run() -> None:
    policy = DropPolicy(patience=2, keep_last=1)
    assert drops_now(policy, UNITS, _statuses([2, 2, 0, 2, 0])) == [0, 1]
    assert drops_now(policy, UNITS, _statuses([0, 2, 2, 2, 0])) == []
    assert blocked_by(policy, UNITS, _statuses([0, 2, 2, 2, 0]), 2) == 0
    any_order = DropPolicy(patience=2, keep_last=1, order="any")
    assert drops_now(any_order, UNITS, _statuses([0, 2, 2, 2, 0])) == [1, 2]
    assert blocked_by(any_order, UNITS, _statuses([0, 2, 2, 2, 0]), 2) is None


def test_kept_and_pinned_units_never_drop() -> None:
    policy = DropPolicy(patience=1, keep_last=2, order="any")
    assert [is_kept(i, 5, 2) for i in range(5)] == [False, False, True, True, True]
    assert drops_now(policy, UNITS, _statuses([1, 1, 1, 1, 1], pinned={0})) == [1]
    prefix = DropPolicy(patience=1, keep_last=0)
    assert drops_now(prefix, UNITS, _statuses([1, 1, 1, 1, 1], dropped={0})) == [1, 2, 3]
    assert drops_now(prefix, UNITS, _statuses([1, 1, 1, 1, 1], pinned={1})) == [0]
    assert blocked_by(prefix, UNITS, _statuses([1, 1, 1, 1, 1], pinned={1}), 3) == 1


def test_a_unit_without_parameters_qualifies_at_once() -> None:
    units = [RuleUnit("pool", scored=False), RuleUnit("a"), RuleUnit("head", is_head=True)]
    assert drops_now(DropPolicy(patience=3, keep_last=0), units, _statuses([0, 3, 0])) == [0, 1]
    assert drops_now(DropPolicy(patience=3, keep_last=0), units, _statuses([0, 2, 0])) == [0]


def _checks(rows: list[list[float | None]], per_epoch: int = 1) -> list[RecordedCheck]:
    return [RecordedCheck(step=i + 1, epoch=(i + 1) / per_epoch,
                          epochs_done=(i + 1) // per_epoch, changes=tuple(r))
            for i, r in enumerate(rows)]


def test_replay_drops_when_the_evidence_is_in_and_respects_the_warm_up() -> None:
    rows: list[list[float | None]] = [[1.0, 1.0, 1.0, 1.0, None]] * 4
    result = replay(EASY, UNITS, _checks(rows))
    assert [(d.unit, d.check) for d in result.drops] == [(0, 2), (1, 2), (2, 2)]  # keep_last=1
    late = replay(EASY.with_values(warmup_epochs=4), UNITS, _checks(rows))
    assert [(d.unit, d.check) for d in late.drops] == [(0, 3), (1, 3), (2, 3)]
    assert late.first_difference == 3  # nothing was recorded: the first drop differs


def test_replay_agrees_with_the_recorded_drops_and_marks_the_first_difference() -> None:
    rows: list[list[float | None]] = [[1.0, 1.0, 1.0, 1.0, None]] * 3
    recorded = [(3, 0), (3, 1), (3, 2)]
    assert replay(EASY, UNITS, _checks(rows), recorded_drops=recorded).first_difference is None
    stricter = replay(EASY.with_values(threshold=0.5), UNITS, _checks(rows),
                      recorded_drops=recorded)
    assert stricter.drops == () and stricter.first_difference == 2


def test_replay_applies_pins_and_drops_by_hand_and_knows_where_history_ends() -> None:
    rows: list[list[float | None]] = [[1.0, 1.0, 1.0, 1.0, None]] * 2 + [
        [None, None, 1.0, 1.0, None]] * 2  # the recording dropped stem and a by hand at 3
    actions = [RecordedAction(3, "drop", 0), RecordedAction(3, "drop", 1),
               RecordedAction(1, "pin", 2)]
    result = replay(EASY, UNITS, _checks(rows), actions)
    assert [(d.unit, d.reason) for d in result.drops] == [(0, "manual"), (1, "manual")]
    # b is pinned and holds c back: nothing else drops
    unpinned = replay(EASY, UNITS, _checks(rows), [*actions, RecordedAction(4, "unpin", 2)])
    assert [(d.unit, d.check) for d in unpinned.drops][2:] == [(2, 3)]
    # the recording's policy dropped stem and a at step 2; a policy that keeps them cannot
    # know what they would have done after it: their recorded history ends there
    kept = replay(EASY.with_values(keep_last=3), UNITS, _checks(rows), [],
                  recorded_drops=[(2, 0), (2, 1)])
    assert kept.unknown == frozenset({0, 1}) and kept.drops == ()
    assert kept.first_difference == 1


def test_a_pin_restores_a_dropped_unit_and_its_streak_starts_over() -> None:
    rows: list[list[float | None]] = [[1.0, 1.0, 1.0, 1.0, None]] * 3 + [
        [1.0, None, None, 1.0, None]] * 2
    result = replay(EASY.with_values(keep_last=3), UNITS, _checks(rows),
                    [RecordedAction(4, "pin", 0)])
    assert [(d.unit, d.check) for d in result.drops] == [(0, 2)]
    # scored again after the pin (its streak started over then), and pinned: never dropped
    assert result.states[0].streak == 2 and result.states[0].updates == 5


@pytest.mark.parametrize("order", ["prefix", "any"])
def test_replay_is_the_live_rule(order: str) -> None:
    """The same changes fed one check at a time through advance and drops_now give the
    replay's drops."""
    policy = DropPolicy(threshold=0.6, patience=2, warmup_epochs=1, window=3,
                        trend_tolerance=0.2, order=order, settle="tolerance")  # type: ignore[arg-type]
    rows = [[1.0, 1.0, 1.0, 1.0, None], [0.5, 0.9, 0.4, 0.3, None],
            [0.4, 0.8, 0.4, 0.3, None], [0.4, 0.8, 0.35, 0.3, None],
            [0.3, 0.7, 0.3, 0.3, None], [0.3, 0.3, 0.3, 0.3, None],
            [0.3, 0.3, 0.3, 0.3, None], [0.3, 0.3, 0.3, 0.3, None]]
    states = [ScoreState() for _ in UNITS]
    dropped: set[int] = set()
    live = []
    for ci, row in enumerate(rows):
        for i, c in enumerate(row):
            if c is not None and i not in dropped:
                states[i] = advance(states[i], c, policy)
        if ci + 1 >= policy.warmup_epochs:
            now = drops_now(policy, UNITS, [UnitStatus(i in dropped, False, s.streak)
                                            for i, s in enumerate(states)])
            dropped |= set(now)
            live += [(i, ci) for i in now]
    got = replay(policy, UNITS, _checks(rows))
    assert [(d.unit, d.check) for d in got.drops] == live and live
