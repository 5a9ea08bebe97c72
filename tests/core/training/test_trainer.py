"""The trainer end to end on tiny real runs (digits, small CNN, CPU)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from factories import HookRecorder, tiny_config
from learndrop.core import Callback, CheckpointError, RunConfig, RunControl, Trainer, TrainingError
from learndrop.core.summary import RunSummary
from learndrop.core.training import load_checkpoint


def run_config(out: Path) -> RunConfig:
    """The tiny run, with a progress event every 4 steps (2 or 3 an epoch)."""
    return tiny_config(out, **{"train.log_every": 4})


def test_event_sequence_of_a_run(tmp_path: Path) -> None:
    rec = HookRecorder()
    result = Trainer(run_config(tmp_path), [rec]).fit()
    assert result.status == "finished"
    seq = rec.sequence
    # fit start, then per epoch: start, progress*, one check, drops right after it and the
    # savings of the new drop state when there were any, end, ckpt
    assert re.fullmatch(r"S(EP+C(D+\$)?eK)+F", seq), seq
    assert [s.step for s in rec.of("$")] == sorted({d.step for d in rec.of("D")})
    assert seq.count("E") == 4
    drops = rec.of("D")
    assert drops, "threshold=1 must drop units"
    assert [d.unit for d in drops] == [d.unit for d in result.summary.dropped]
    # warm-up: nothing drops at the end of the first epoch
    assert all(d.epoch >= 1 for d in drops)
    start = rec.of("S")[0]
    assert [u.name for u in start.units][-1] == "head"
    ends = rec.of("e")
    assert ends[-1].savings.train_flops_saved_now > 0
    assert rec.of("F")[0].status == "finished"
    for ev in rec.of("C"):
        assert len(ev.scores) == len(start.units) and ev.scores[-1] is None
    out = Path(result.summary.output_dir)
    assert (out / "checkpoint.pt").is_file() and (out / "final.pt").is_file()
    assert (out / "config.toml").is_file() and (out / "summary.json").is_file()
    saved = json.loads((out / "summary.json").read_text())
    assert "error" not in saved and saved["run_name"] == result.summary.run_name
    assert RunSummary.from_dict(saved) == result.summary
    assert rec.of("F")[0].summary == result.summary
    assert len(result.summary.history) == result.summary.epochs == 4
    assert result.summary.units == len(start.units)


def test_resume_repeats_the_same_drops(tmp_path: Path) -> None:
    full = Trainer(run_config(tmp_path / "a")).fit()

    control = RunControl()

    class StopAfterTwo(Callback):
        def on_epoch_end(self, ev: Any) -> None:
            if ev.epoch == 1:
                control.stop()

    cfg = run_config(tmp_path / "b")
    first = Trainer(cfg, [StopAfterTwo()], control).fit()
    assert first.status == "stopped"
    ck = Path(first.summary.output_dir) / "checkpoint.pt"
    saved = load_checkpoint(ck)
    assert saved["epoch"] == 2 and 0 < saved["train_time_s"] <= saved["elapsed_s"]
    rec = HookRecorder()
    resumed = Trainer(cfg, [rec], resume_from=ck).fit()
    assert resumed.status == "finished"
    # the resumed session's times continue the run's: its events' elapsed time goes on
    # from the checkpoint's, and the summary's training time counts both sessions
    ends = rec.of("e")
    assert [e.epoch for e in ends] == [2, 3]
    assert saved["elapsed_s"] < ends[0].elapsed_s < ends[1].elapsed_s
    assert all(p.elapsed_s > saved["elapsed_s"] for p in rec.of("P"))
    s = resumed.summary
    assert s.train_time_s > saved["train_time_s"]
    assert s.train_time_s - saved["train_time_s"] < s.wall_time_s - saved["elapsed_s"]
    assert resumed.summary.dropped == full.summary.dropped
    a = torch.load(Path(full.summary.output_dir) / "final.pt", weights_only=True)["model"]
    b = torch.load(Path(resumed.summary.output_dir) / "final.pt", weights_only=True)["model"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


def test_cancel_discards_the_run(tmp_path: Path) -> None:
    control = RunControl()

    class CancelSoon(Callback):
        def on_progress(self, ev: Any) -> None:
            control.cancel()

    rec = HookRecorder()
    result = Trainer(run_config(tmp_path), [CancelSoon(), rec], control).fit()
    assert result.status == "cancelled"
    assert rec.sequence.endswith("F") and "e" not in rec.sequence
    assert not any(tmp_path.iterdir())


def test_nan_loss_stops_with_the_step(tmp_path: Path) -> None:
    cfg = run_config(tmp_path)
    cfg.train.log_every = 1
    holder: dict[str, Trainer] = {}

    class Diverge(Callback):
        """Poisons the head's weights mid-run, as a diverging optimizer would."""

        def on_progress(self, ev: Any) -> None:
            if ev.epoch == 1 and ev.batch == 3:
                with torch.no_grad():
                    for p in holder["t"].model.fc.parameters():  # type: ignore[union-attr]
                        p.fill_(float("inf"))

    rec = HookRecorder()
    trainer = Trainer(cfg, [Diverge(), rec])
    holder["t"] = trainer
    with pytest.raises(TrainingError, match=r"NaN or infinite at step 14 \(epoch 2\).*"
                                            r"checkpoint.pt"):
        trainer.fit()
    assert rec.of("F")[0].status == "failed"
    assert load_checkpoint(Path(trainer.output_dir) / "checkpoint.pt")["epoch"] == 1


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("this must never run",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"format": "learndrop-checkpoint", "x": Evil()}))
    with pytest.raises(CheckpointError, match="refusing to load it"):
        load_checkpoint(bad)
    assert "this must never run" not in capsys.readouterr().out
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Learn&Drop checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_baseline_never_drops(tmp_path: Path) -> None:
    cfg = run_config(tmp_path)
    cfg.drop.enabled = False
    cfg.train.epochs = 2
    result = Trainer(cfg).fit()
    assert result.summary.dropped == ()
    assert result.summary.savings.train_flops_saved_total == 0.0


def test_time_budget_ends_the_run_as_finished(tmp_path: Path) -> None:
    cfg = run_config(tmp_path)
    cfg.drop.enabled = False
    cfg.train.epochs = 50
    rec = HookRecorder()
    result = Trainer(cfg, [rec], time_budget_s=1.5).fit()
    assert result.status == "finished"
    assert 1 <= result.summary.epochs < 50
    assert rec.sequence.endswith("F") and "e" in rec.sequence
    assert (Path(result.summary.output_dir) / "final.pt").is_file()


def test_a_configured_time_budget_fits_the_schedule_to_the_time(tmp_path: Path) -> None:
    cfg = run_config(tmp_path)
    cfg.train.epochs = 200  # the most it may run: the budget ends it first
    cfg.train.time_budget = "1.5s"
    cfg.optim.schedule = "cosine"
    rec = HookRecorder()
    result = Trainer(cfg, [rec]).fit()
    assert result.status == "finished"
    assert 1 <= result.summary.epochs < 200
    progress = rec.of("P")
    assert progress[0].eta_s <= 1.5
    lrs = [p.lr for p in progress]
    # the cosine schedule runs through the budget, down to near zero at its end
    assert lrs[0] > 2 * lrs[-1] and lrs[-1] < 0.25 * cfg.optim.lr
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.parametrize("budget,fragment", [("10x", "is not a duration"),
                                             ("0s", "more than 0 seconds")])
def test_a_bad_time_budget_is_one_clear_error(tmp_path: Path, budget: str,
                                              fragment: str) -> None:
    cfg = run_config(tmp_path)
    cfg.train.time_budget = budget
    problems = dict(cfg.problems())
    assert fragment in problems["train.time_budget"]


def test_fine_tuning_starts_from_saved_weights(tmp_path: Path) -> None:
    cfg = run_config(tmp_path / "a")
    cfg.train.epochs = 1
    first = Trainer(cfg).fit()
    saved = torch.load(first.summary.weights, weights_only=True)["model"]
    # a head of another shape starts fresh, everything else is copied
    saved["fc.weight"] = torch.zeros(3, saved["fc.weight"].shape[1])
    torch.save(saved, tmp_path / "start.pt")
    tuned = tiny_config(tmp_path / "b", **{"train.log_every": 4, "drop.checks_per_epoch": 0})
    tuned.model.weights = str(tmp_path / "start.pt")
    trainer = Trainer(tuned)
    trainer.prepare()
    # checks_per_epoch=0: twice an epoch from trained weights, in the config it records
    assert trainer.ld is not None and trainer.ld.policy.checks_per_epoch == 2
    assert trainer.cfg.drop.checks_per_epoch == 2
    scratch = Trainer(tiny_config(tmp_path / "c", **{"drop.checks_per_epoch": 0}))
    scratch.prepare()
    assert scratch.ld is not None and scratch.ld.policy.checks_per_epoch == 1
    own = trainer.model.state_dict()  # type: ignore[union-attr]
    assert all(torch.equal(own[k], v) for k, v in saved.items() if k != "fc.weight")
    assert not torch.equal(own["fc.weight"][:3], saved["fc.weight"])
    assert any("fc.weight" in w for w in trainer.warnings)


@pytest.mark.parametrize("content,fragment", [
    (None, "does not exist"), (b"not a tensor file", "cannot load weights"),
    ("dict", "no state dict of tensors")])
def test_bad_start_weights_are_one_line(tmp_path: Path, content: Any, fragment: str) -> None:
    path = tmp_path / "w.pt"
    if content == "dict":
        torch.save({"model": {"a": 1}}, path)
    elif content is not None:
        path.write_bytes(content)
    cfg = run_config(tmp_path)
    cfg.model.weights = str(path)
    with pytest.raises(CheckpointError, match=fragment) as info:
        Trainer(cfg).prepare()
    assert "\n" not in str(info.value)


def test_learndrop_gets_the_config_policy(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"drop.pinned": ["block1"], "drop.ema": 0.5})
    trainer = Trainer(cfg)
    trainer.prepare()
    assert trainer.ld is not None and trainer.ld.policy == trainer.cfg.drop
    assert trainer.ld.policy is not trainer.cfg.drop and trainer.ld.is_pinned("block1")


def test_cache_refused_on_changing_data_with_the_config_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data that changes every epoch without data.augment (a data set that always augments)
    is refused by the trainer with the message the config gives for data.augment."""
    import dataclasses

    from learndrop.core import ConfigError, data

    real = data.build_datasets
    monkeypatch.setattr(data, "build_datasets", lambda *a, **kw: dataclasses.replace(
        real(*a, **kw), deterministic_train=False))
    cfg = tiny_config(tmp_path, **{"drop.mode": "cache"})
    with pytest.raises(ConfigError) as from_trainer:
        Trainer(cfg).prepare()
    cfg.data.augment = True
    with pytest.raises(ConfigError) as from_config:
        cfg.check()
    assert str(from_trainer.value) == str(from_config.value)
    assert from_trainer.value.field == from_config.value.field == "drop.mode"
    assert "random augmentation" in str(from_config.value)


def test_mode_auto_caches_fixed_data_and_freezes_changing_data_with_one_warning(
        tmp_path: Path) -> None:
    """drop.mode=auto: cache on data that is the same every epoch, freeze (said once) on data
    that changes; the run records the mode it ran."""
    fixed = HookRecorder()
    Trainer(tiny_config(tmp_path / "a", **{"drop.mode": "auto"}), [fixed]).fit()
    start = next(p for h, p in fixed.calls if h == "on_fit_start")
    assert start.mode == "cache" and start.config["drop"]["mode"] == "cache"
    assert not [p for h, p in fixed.calls if h == "on_warning" and "drop.mode=auto" in p]
    changing = HookRecorder()
    Trainer(tiny_config(tmp_path / "b", **{"drop.mode": "auto", "data.augment": True}),
            [changing]).fit()
    start = next(p for h, p in changing.calls if h == "on_fit_start")
    assert start.mode == "freeze"
    said = [p for h, p in changing.calls if h == "on_warning" and "drop.mode=auto" in p]
    assert len(said) == 1 and "augmentation" in said[0]
    assert any(h == "on_drop" for h, _ in changing.calls)  # and it still drops


def test_checks_inside_an_epoch_follow_checks_per_epoch(tmp_path: Path) -> None:
    rec = HookRecorder()
    cfg = tiny_config(tmp_path, **{"drop.checks_per_epoch": 4, "train.epochs": 2})
    Trainer(cfg, [rec]).fit()
    start = next(p for h, p in rec.calls if h == "on_fit_start")
    steps = [p.step for h, p in rec.calls if h == "on_scores"]
    spe = start.steps_per_epoch
    expected = sorted({e * spe - (-k * spe // 4) for e in range(2) for k in range(1, 5)})
    assert steps == expected and len(steps) == 8


def test_a_failing_callback_does_not_stop_the_run(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    class BrokenBar(Callback):
        def on_progress(self, event: Any) -> None:
            raise ZeroDivisionError("division by zero")

    rec = HookRecorder()
    cfg = tiny_config(tmp_path)
    cfg.train.epochs = 2
    result = Trainer(cfg, [BrokenBar(), rec]).fit()
    assert result.status == "finished"
    warnings = rec.of("W")
    assert warnings == ["callback BrokenBar.on_progress failed (ZeroDivisionError: division "
                        "by zero); the run goes on"]
    assert rec.sequence.index("W") < rec.sequence.index("e")  # reported as it happened
    assert any(r.exc_info and r.levelname == "ERROR" for r in caplog.records)


def test_event_epochs_follow_the_convention(tmp_path: Path) -> None:
    from learndrop.core.events import display_epoch, epoch_number, epoch_of_step

    rec = HookRecorder()
    Trainer(tiny_config(tmp_path, **{"drop.check_every": 3}), [rec]).fit()
    spe = rec.of("S")[0].steps_per_epoch
    assert rec.of("E") == [0, 1, 2, 3]  # epoch indexes count from 0
    for p in rec.of("P"):  # the epoch being trained
        assert epoch_number(p.step, spe) == display_epoch(p.epoch)
    for ev in rec.of("C") + rec.of("D"):  # positions in epochs completed
        assert ev.epoch == pytest.approx(epoch_of_step(ev.step, spe))
    for e in rec.of("e"):  # the epoch that ended: its last step completes it
        assert epoch_of_step(e.step, spe) == e.epoch + 1 and epoch_number(e.step, spe) == (
            display_epoch(e.epoch))
    for k in rec.of("K"):  # complete epochs
        assert k.epoch == epoch_of_step(k.step, spe)


def test_user_actions_are_reported_where_the_run_takes_them(tmp_path: Path) -> None:
    """Pin, pause, resume and stop from another thread: each comes back as a UserAction with
    the time it was asked and the step the run took it at; the pin lands in config.toml."""
    import threading
    import time

    from learndrop.core.config import load_config

    control = RunControl()
    seen: list[Any] = []
    asked: dict[str, float] = {}

    class Act(Callback):
        def __init__(self) -> None:
            self.units: list[str] = []

        def on_fit_start(self, ev: Any) -> None:
            self.units = [u.name for u in ev.units]

        def on_progress(self, ev: Any) -> None:
            if ev.step == 4:
                asked["pin"] = time.time()
                control.request_pin(self.units[0])
                control.pause()
                threading.Timer(0.3, control.resume).start()
            elif ev.step == 14:  # 10 steps per epoch: in the second epoch
                control.stop()

        def on_user_action(self, ev: Any) -> None:
            seen.append(ev)

    act = Act()
    cfg = tiny_config(tmp_path, **{"drop.warmup_epochs": 0, "train.log_every": 2})
    result = Trainer(cfg, [act], control).fit()
    assert result.status == "stopped"
    assert [(a.action, a.unit) for a in seen] == [
        ("pin", act.units[0]), ("pause", ""), ("resume", ""), ("stop", "")]
    pin, pause, resume, stop = seen
    assert pin.step == pause.step == resume.step == 4 and stop.step == 14
    assert pin.epoch == pytest.approx(0.4) and stop.epoch == pytest.approx(1.4)
    assert pin.time == pytest.approx(asked["pin"], abs=0.05)
    assert resume.time - pause.time >= 0.25
    assert act.units[0] not in [d.unit for d in result.summary.dropped]
    saved = load_config(Path(result.summary.output_dir) / "config.toml")
    assert saved.drop.pinned == [act.units[0]]


def test_eta_uses_the_current_step_time(tmp_path: Path) -> None:
    """Once the step time is measured, the steps left cost the current step time (which
    falls as units drop) plus the time outside the steps, spread over the steps done."""
    from learndrop.core.training._clock import RunClock

    trainer = Trainer(tiny_config(tmp_path, **{"drop.warmup_epochs": 0}))
    assert trainer.fit().status == "finished"
    ld = trainer.ld
    assert ld is not None and ld.meter is not None and ld.meter.step_time
    now = ld.meter.step_time
    clock_time = [0.0]
    trainer.clock = RunClock(now=lambda: clock_time[0])
    clock_time[0] = ld.train_time_s + 2.0  # 2 s outside the steps
    done = 2 * trainer.steps_per_epoch  # after the second epoch
    eta = trainer.eta(2, 0)
    outside = 2.0 / done
    assert eta == pytest.approx((trainer.total_steps - done) * (now + outside), rel=0.01)


def test_a_run_measures_its_data_share_machine_and_epoch_times(tmp_path: Path) -> None:
    result = Trainer(tiny_config(tmp_path)).fit()
    s = result.summary
    assert s.data_time_share is not None and 0 < s.data_time_share < 0.5
    assert s.machine.endswith(", cpu") and " x " in s.machine
    assert s.load_per_cpu is None or s.load_per_cpu >= 0
    elapsed = [h.elapsed_s for h in s.history]
    assert elapsed == sorted(elapsed) and 0 < elapsed[-1] <= s.wall_time_s
    spread = s.savings.step_time_spread_now
    assert spread is not None and spread >= 0


def test_validation_in_cache_mode_reads_the_prefix_output_and_is_exact(tmp_path: Path) -> None:
    from learndrop.core.training._evaluate import evaluate_network

    trainer = Trainer(tiny_config(tmp_path, **{"drop.mode": "cache"}))
    result = trainer.fit()
    ld = trainer.ld
    assert result.status == "finished" and ld is not None and ld.dropped_prefix > 0
    assert ld.caches.evaluation.batches_read > 0  # later validations read the prefix's output
    r = trainer.parts
    full = evaluate_network(r.model, r.bundle.val, r.plan, batch_size=256, num_workers=0)
    assert trainer.evaluate()[:2] == full  # the complete model's figures, to the bit
    assert result.summary.final_accuracy == full[1]
