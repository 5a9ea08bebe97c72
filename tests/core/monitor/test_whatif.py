"""``what_if`` and ``learndrop whatif``: a recorded run's score history replayed under a
policy with the engine's own rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from factories import HookRecorder, tiny_config, tiny_flags
from learndrop.core.engine import RuleUnit, replay
from learndrop.core.events import Callback, DropEvent, EpochEnd, FitStart
from learndrop.core.monitor import recorded_run, what_if
from learndrop.core.training import RunControl, Trainer


class Hands(Callback):
    """Asks for pins, unpins and drops by hand at the end of given epochs, as the app does."""

    def __init__(self, control: RunControl, plan: dict[int, list[tuple[str, int]]]) -> None:
        self.control, self.plan, self.units = control, plan, []

    def on_fit_start(self, event: FitStart) -> None:
        self.units = [u.name for u in event.units]

    def on_epoch_end(self, event: EpochEnd) -> None:
        for action, unit in self.plan.get(event.epoch, []):
            getattr(self.control, f"request_{action}")(self.units[unit])


def _run(tmp_path: Path, plan: dict[int, list[tuple[str, int]]] | None = None,
         **changes: Any) -> list[Any]:
    rec = HookRecorder()
    control = RunControl()
    # freeze: the what-if counts FLOPs as the engine does (cache mode it estimates)
    cfg = tiny_config(tmp_path, **{"train.epochs": 5, "drop.mode": "freeze", **changes})
    Trainer(cfg, [rec, Hands(control, plan or {})], control).fit()
    return [payload for _, payload in rec.calls]


# recorded runs of several kinds: prefix and any order, keep_last, checks inside an epoch,
# pins (one of them restores a dropped unit), unpins and drops by hand
RUNS: dict[str, tuple[dict[int, list[tuple[str, int]]], dict[str, Any]]] = {
    "prefix": ({}, {}),
    "any-keep2": ({}, {"drop.order": "any", "drop.keep_last": 2}),
    "mid-epoch-checks": ({}, {"drop.check_every": 4, "drop.warmup_epochs": 2}),
    "hands": ({0: [("pin", 1), ("drop", 2)], 2: [("unpin", 1)]},
              {"drop.order": "any"}),
    "pin-restores": ({1: [("pin", 0)], 3: [("unpin", 0)]}, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(RUNS))
def test_the_runs_own_policy_reproduces_its_drops_exactly(tmp_path: Path, kind: str) -> None:
    plan, changes = RUNS[kind]
    events = _run(tmp_path, plan, **changes)
    drops = [(e.unit, e.step, e.reason) for e in events if isinstance(e, DropEvent)]
    assert any(reason == "policy" for _, _, reason in drops)  # the rule had work to do
    run = recorded_run(events)
    result = what_if(run)
    assert result.first_difference is None
    units = [RuleUnit(u.name, u.is_head, u.params > 0) for u in run.units]
    again = replay(run.policy, units, run.checks, run.actions, run.policy_drops)
    assert [(run.units[d.unit].name, d.step, d.reason) for d in again.drops] == drops
    assert result.train_flops_saved == pytest.approx(result.recorded_train_flops_saved)
    if kind != "pin-restores":  # the engine's own count of the same steps
        summary = events[-1].summary
        assert result.recorded_train_flops_saved == pytest.approx(
            summary.savings.train_flops_saved_total, abs=1e-9)


@pytest.mark.slow
def test_a_baseline_can_be_asked_what_learn_and_drop_would_have_done(tmp_path: Path) -> None:
    events = _run(tmp_path, **{"drop.enabled": False})
    assert not [e for e in events if isinstance(e, DropEvent)]
    run = recorded_run(events)
    assert len(run.checks) == 5  # a baseline scores its units too
    result = what_if(run, enabled=True)
    # until its first drop, a Learn&Drop run trains exactly as the baseline: its first
    # drops are the ones predicted
    real = _run(tmp_path / "ld")
    first = [e for e in real if isinstance(e, DropEvent)]
    predicted = [(u.name, u.drop_epoch) for u in result.units if u.drop_epoch is not None]
    assert first and [(e.unit, e.epoch) for e in first if e.epoch == first[0].epoch] == [
        p for p in predicted if p[1] == first[0].epoch]
    assert result.first_difference is not None and result.train_flops_saved > 0.1
    assert result.recorded_train_flops_saved == 0.0
    strict = what_if(run, enabled=True, threshold=0.0)
    assert all(u.drop_epoch is None for u in strict.units) and strict.train_flops_saved == 0


@pytest.mark.slow
def test_whatif_on_the_command_line(run_cli: Any, tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    code, _, err = run_cli(["train", *tiny_flags(), "--output-dir", str(tmp_path / "runs"),
                            "--store", store, "--run-name", "w1", "--quiet"])
    assert code == 0, err
    code, out, err = run_cli(["whatif", "w1", "--store", store, "--json"])
    assert code == 0, err
    own = json.loads(out)
    assert own["first_difference_check"] is None
    assert [u["drop_epoch"] for u in own["units"]] == [u["recorded_drop_epoch"]
                                                      for u in own["units"]]
    assert own["train_flops_saved"] == pytest.approx(own["recorded_train_flops_saved"])
    code, out, err = run_cli(["whatif", "w1", "--store", store, "--patience", "2",
                              "--json"])
    later = json.loads(out)
    assert later["train_flops_saved"] < own["train_flops_saved"]
    assert later["first_difference_check"] is not None
    assert {"name", "drop_epoch", "recorded_drop_epoch"} <= set(later["units"][0])
    code, out, err = run_cli(["whatif", "w1", "--store", store, "--threshold", "0.5"])
    assert code == 0 and "exact until epoch" in out and "threshold 1.0 -> 0.5" in out
    code, out, err = run_cli(["whatif", "w1", "--store", store, "--threshold", "2"])
    assert code == 2 and "drop.threshold" in err and "Traceback" not in err
    code, out, err = run_cli(["whatif", "nosuchrun", "--store", store])
    assert code == 2 and "Traceback" not in err
    code, out, err = run_cli(["whatif", "w1", "--store", store, "--settle", "noise",
                              "--confidence", "0.8", "--warmup-epochs", "0.5",
                              "--reversible", "off"])
    assert code == 0, err
    assert "settle tolerance -> noise" in out and "warmup_epochs 1.0 -> 0.5" in out
