"""The run store: recording, replay, live reading and run management (schema and damage:
test_store_schema.py)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from factories import HookRecorder, expected_replay, make_events, record, tiny_config
from learndrop.core.events import (
    Callback,
    DropEvent,
    EpochEnd,
    FitEnd,
    Progress,
    ScoreCheck,
    UserAction,
)
from learndrop.core.runfolder import claim_run_folder
from learndrop.core.store import (
    RunMessage,
    RunNotFoundError,
    RunStore,
    StoreError,
    StoreRecorder,
    WallClock,
    replay,
)


def test_round_trip_reproduces_the_events(store_path: Path) -> None:
    stream = make_events()
    rec = record(store_path, stream)
    assert rec.flushes >= 3  # at least one transaction per epoch end
    with RunStore(store_path) as store:
        events = store.load_events("demo-run")
        assert events == expected_replay(stream)
        run = store.get_run("demo-run")
    assert run.status == "finished" and run.model == "small_cnn" and run.dataset == "digits"
    assert run.epochs_done == 3 and run.epochs_planned == 3 and run.drops == 2
    assert run.final_val_accuracy == pytest.approx(0.9)
    assert run.train_flops_saved_total == pytest.approx(stream[-3][1].savings
                                                        .train_flops_saved_total)
    assert run.wall_time_s == 12.5 and run.summary.best_accuracy == 0.8
    assert run.environment["python"] and run.environment["device"] == "cpu"
    assert run.pid == os.getpid()


def test_replay_feeds_callbacks_in_order(store_path: Path) -> None:
    stream = make_events()
    record(store_path, stream)
    sink = HookRecorder()
    with RunStore(store_path) as store:
        replay(store.load_events("demo"), [sink])
    assert sink.calls == stream


def test_cursor_returns_only_new_events(store_path: Path) -> None:
    stream = make_events()
    rec = StoreRecorder(store_path)
    half = len(stream) // 2
    for hook, payload in stream[:half]:
        getattr(rec, hook)(payload)
    rec.flush()
    with RunStore(store_path) as store:
        first = list(store.iter_new_events("demo-run"))
        assert store.get_run("demo-run").status == "running"
        cursor = first[-1][0]
        assert [e for _, e in first] == expected_replay(stream[:half])
        for hook, payload in stream[half:]:
            getattr(rec, hook)(payload)
        rest = list(store.iter_new_events("demo-run", cursor))
    assert [e for _, e in rest] == expected_replay(stream[half:])
    cursors = [c for c, _ in first + rest]
    assert cursors == sorted(set(cursors))


def test_reader_follows_a_run_written_by_another_thread(store_path: Path) -> None:
    """The writer (the recorder) and the reader each have their own connection, as the
    training thread and the app's GUI thread (or two processes) do."""
    RunStore(store_path).close()
    stream = make_events("live-run", epochs=4)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            rec = StoreRecorder(store_path, flush_every_s=0.02)
            for hook, payload in stream:
                getattr(rec, hook)(payload)
                time.sleep(0.005)
            assert rec.error is None, rec.error
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    writer = threading.Thread(target=write, name="store-writer")
    writer.start()
    seen: list[Any] = []
    cursor, polls_with_news = -1, 0
    deadline = time.monotonic() + 30
    try:
        with RunStore(store_path) as store:
            while time.monotonic() < deadline:
                try:
                    new = list(store.iter_new_events("live-run", cursor))
                except RunNotFoundError:
                    time.sleep(0.005)
                    continue
                if new:
                    cursor = new[-1][0]
                    seen += [event for _, event in new]
                if seen and isinstance(seen[-1], FitEnd):
                    break
                polls_with_news += bool(new)
                time.sleep(0.01)
    finally:
        writer.join(timeout=30)
    assert not failures, failures
    assert polls_with_news >= 2  # read several times while it was being written
    assert seen == expected_replay(stream)


def test_dead_process_run_shows_as_interrupted(store_path: Path) -> None:
    stream = make_events(status="running")
    record(store_path, stream[:8]).flush()  # the process dies after this write
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    conn = sqlite3.connect(store_path)
    conn.execute("UPDATE runs SET pid = ?", (dead.pid,))
    conn.commit()
    conn.close()
    with RunStore(store_path) as store:
        run = store.get_run("demo-run")
        assert run.status == "interrupted" and str(dead.pid) in run.message
        events = store.load_events("demo-run")
    assert isinstance(events[-1], FitEnd) and events[-1].status == "interrupted"
    assert events[:-1] == expected_replay(stream[:8])


def test_live_run_stays_running(store_path: Path) -> None:
    rec = StoreRecorder(store_path)
    for hook, payload in make_events(status="running")[:5]:
        getattr(rec, hook)(payload)
    with RunStore(store_path) as store:
        assert store.get_run("demo").status == "running"
        with pytest.raises(StoreError, match="still running"):
            store.delete_run("demo")


def test_rename_note_delete_and_groups(store_path: Path, tmp_path: Path) -> None:
    folder = claim_run_folder(tmp_path / "runs", "demo-run")
    (folder / "checkpoint.pt").write_bytes(b"weights")
    record(store_path, make_events(output_dir=str(folder)))
    record(store_path, make_events("baseline", drop=False))
    with RunStore(store_path) as store:
        store.set_note("demo", "first try")
        renamed = store.rename_run("demo-run", "ld-small")
        assert renamed.name == "ld-small" and renamed.note == "first try"
        with pytest.raises(StoreError, match="already exists"):
            store.rename_run("ld-small", "baseline")
        with pytest.raises(StoreError, match="cannot be a run name"):
            store.rename_run("ld-small", "a/b")
        group = store.create_group("bench", ["baseline", "ld-small"])
        assert [r.name for r in store.group_runs(group)] == ["ld-small", "baseline"]
        assert store.list_groups("bench")[0].run_names == ("ld-small", "baseline")
        assert store.delete_run("ld-small") == folder
        assert not folder.exists()
        assert [r.name for r in store.list_runs()] == ["baseline"]
        assert store.group_runs(group)[0].name == "baseline"


def test_resume_continues_the_same_run(store_path: Path) -> None:
    full = make_events(epochs=3)
    ends = [i for i, (hook, _) in enumerate(full) if hook == "on_epoch_end"]
    first_part = full[:ends[1] + 2]  # epochs 0 and 1 and the checkpoint after epoch 1
    crashed = full[ends[1] + 2:ends[2] - 1]  # most of epoch 2, then the process died
    rec = StoreRecorder(store_path)
    for hook, payload in first_part + crashed:
        getattr(rec, hook)(payload)
    rec.flush()
    start = dataclasses.replace(full[0][1], resumed_from_epoch=2)
    again = [("on_fit_start", start), *full[ends[1] + 2:]]
    record(store_path, again, resume_id=rec.run_id)
    with RunStore(store_path) as store:
        runs = store.list_runs()
        events = store.load_events("demo-run")
    assert [r.name for r in runs] == ["demo-run"] and runs[0].status == "finished"
    assert runs[0].epochs_done == 3
    assert events == [start, *expected_replay(first_part[1:]), *expected_replay(again[1:])]


def test_resume_keeps_what_happened_in_the_epoch_trained_again(store_path: Path) -> None:
    """Stopped in its third epoch, the run is resumed after two: the third epoch's progress
    and checks are trained again and go, but the user's stop, the log and how the first
    session ended stay, in their place, before the new session's events."""
    full = make_events(epochs=3)
    ends = [i for i, (hook, _) in enumerate(full) if hook == "on_epoch_end"]
    stop = UserAction(action="stop", unit="", step=10, epoch=2.5, time=time.time())
    first = [*full[:ends[1] + 2], *full[ends[1] + 2:ends[1] + 5],
             ("on_user_action", stop), ("on_warning", "slow batch"),
             ("on_fit_end", FitEnd("stopped", "stopped; checkpoint kept"))]
    rec = record(store_path, first)
    with RunStore(store_path) as store:
        _before, old = store.claim_run(rec.run_id)
        store.release_run(rec.run_id, *old)  # given back: nothing added
        assert store.load_events(rec.run_id)[-1] == FitEnd(
            "stopped", "stopped; checkpoint kept", store.load_events(rec.run_id)[-1].summary)
        assert store.get_run(rec.run_id).status == "stopped"
        assert not any(isinstance(e, RunMessage) and e.message.startswith("run stopped")
                       for e in store.load_events(rec.run_id))
        store.claim_run(rec.run_id)
    start = dataclasses.replace(full[0][1], resumed_from_epoch=2)
    again = [("on_fit_start", start), *full[ends[1] + 2:]]
    record(store_path, again, resume_id=rec.run_id)
    with RunStore(store_path) as store:
        events = store.load_events(rec.run_id)
    assert events == [start, *expected_replay(full[1:ends[1] + 2]), stop,
                      RunMessage("warning", "slow batch"),
                      RunMessage("info", "run stopped: stopped; checkpoint kept"),
                      *expected_replay(again[1:])]


def test_same_name_twice_gets_a_free_name(store_path: Path) -> None:
    record(store_path, make_events())
    rec = record(store_path, make_events())
    assert rec.run_name == "demo-run-2"
    with RunStore(store_path) as store:
        assert store.load_events("demo-run-2")[1] == RunMessage(
            "info", "recorded as 'demo-run-2': a run named 'demo-run' was already in the store")


def test_unknown_and_ambiguous_names(store_path: Path) -> None:
    record(store_path, make_events("resnet-a"))
    record(store_path, make_events("resnet-b"))
    with RunStore(store_path) as store:
        with pytest.raises(RunNotFoundError, match="matches 2 runs") as info:
            store.get_run("resnet")
        assert "\n" not in str(info.value)
        with pytest.raises(RunNotFoundError, match="no run 'vgg'"):
            store.get_run("vgg")
        assert store.get_run("resnet-b").name == "resnet-b"
        assert store.get_run("resnet-a").id == store.get_run(store.get_run("resnet-a").id).id


def test_unwritable_store_does_not_stop_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = StoreRecorder(blocker / "store.sqlite")
    for hook, payload in make_events():
        getattr(rec, hook)(payload)  # never raises
    assert rec.run_id is None
    error = rec.error or ""
    assert error.startswith(f"cannot create the folder of the run store {blocker / 'store.sqlite'}")
    assert error.endswith("; point --store/LEARNDROP_HOME elsewhere")


def test_recording_is_batched(store_path: Path) -> None:
    """Writes go out in a few transactions (about one an epoch), not one per event; the cost
    itself is measured by scripts/load_check.py, not asserted here."""
    stream = make_events(epochs=20, steps_per_epoch=50)
    rec = record(store_path, stream)
    assert rec.events_recorded == len(stream) - 2  # all but the start and end
    assert rec.flushes <= 20 + 3, rec.flushes


def test_real_trainer_run_is_recorded(store_path: Path, tmp_path: Path) -> None:
    from learndrop.core.training import Trainer

    cfg = tiny_config(tmp_path / "out", **{
        "train.epochs": 2, "drop.warmup_epochs": 0, "drop.check_every": 5,
        "train.device": "cpu", "data.limit": 256, "data.image_size": 0})
    collect = HookRecorder()
    rec = StoreRecorder(store_path)
    Trainer(cfg, callbacks=[collect, rec]).fit()
    assert rec.error is None, rec.error
    with RunStore(store_path) as store:
        run = store.get_run(rec.run_name or "")
        events = store.load_events(run.name)
    assert run.status == "finished" and run.epochs_done == 2 and run.drops > 0
    assert run.output_dir and Path(run.output_dir).exists()
    # warnings found before the run started are stored right after its start
    start = [hook for hook, _ in collect.calls].index("on_fit_start")
    early, rest = collect.calls[:start], collect.calls[start:]
    assert events == expected_replay([rest[0], *early, *rest[1:]])
    assert {DropEvent, ScoreCheck, Progress, EpochEnd} <= {type(e) for e in events}


def _with_actions(stream: list[tuple[str, Any]], when: float) -> list[tuple[str, Any]]:
    """The stream with a pin after its first check and a pause and resume after its first
    epoch end, asked at ``when`` and later."""
    first_check = next(i for i, (hook, _) in enumerate(stream) if hook == "on_scores")
    first_end = next(i for i, (hook, _) in enumerate(stream) if hook == "on_epoch_end")
    out = list(stream)
    out.insert(first_end + 1, ("on_user_action", UserAction("resume", "", 4, 1.0, when + 30)))
    out.insert(first_end + 1, ("on_user_action", UserAction("pause", "", 4, 1.0, when + 20)))
    out.insert(first_check + 1, ("on_user_action", UserAction("pin", "block2", 2, 0.5, when)))
    return out


def test_user_actions_are_stored_and_replayed_with_their_time(store_path: Path) -> None:
    when = time.time() - 7200
    stream = _with_actions(make_events(), when)
    record(store_path, stream)
    with RunStore(store_path) as store:
        events = store.load_events("demo-run")
        assert events == expected_replay(stream)
        sink = HookRecorder()
        replay(store.load_events("demo-run"), [sink])
    assert sink.calls == stream
    actions = [e for e in events if isinstance(e, UserAction)]
    assert [(a.action, a.unit, a.step, a.time) for a in actions] == [
        ("pin", "block2", 2, when), ("pause", "", 4, when + 20), ("resume", "", 4, when + 30)]


def test_clock_says_when_logged_events_happened(store_path: Path) -> None:
    before = time.time()
    record(store_path, _with_actions(make_events(), 1_700_000_000.0))
    after = time.time()
    with RunStore(store_path) as store:
        events = store.load_events("demo-run", clock=True)
        run = store.get_run("demo-run")
    assert isinstance(events[0], WallClock) and events[0].time == run.created
    timed = {type(b).__name__: a.time for a, b in zip(events, events[1:])
             if isinstance(a, WallClock)}
    assert set(timed) == {"FitStart", "EpochStart", "DropEvent", "RunMessage",
                          "CheckpointSaved", "UserAction", "FitEnd"}
    assert before <= timed["DropEvent"] <= after and timed["FitEnd"] == run.updated
    clocks = [e for e in events if isinstance(e, WallClock)]
    pin = events[events.index(next(e for e in events if isinstance(e, UserAction))) - 1]
    assert pin == WallClock(1_700_000_000.0) and len(clocks) > 5
    assert not any(isinstance(e, (Progress, ScoreCheck, EpochEnd)) and
                   isinstance(events[i - 1], WallClock) for i, e in enumerate(events))

    class Times(Callback):
        def __init__(self) -> None:
            self.clock: float | None = None
            self.drops: list[float | None] = []

        def on_clock(self, wall_time: float) -> None:
            self.clock = wall_time

        def on_drop(self, event: DropEvent) -> None:
            self.drops.append(self.clock)

    sink = Times()
    assert replay(events, [sink]) == len([e for e in events if not isinstance(e, WallClock)])
    assert len(sink.drops) == 2 and all(before <= t <= after for t in sink.drops if t)


def test_epochs_done_counts_complete_epochs(store_path: Path) -> None:
    """A run stopped in its third epoch has done 2, though its partial epoch has an end."""
    stream = make_events(status="stopped")
    last = next(i for i in range(len(stream) - 1, -1, -1) if stream[i][0] == "on_epoch_end")
    end = stream[last][1]
    stream[last] = ("on_epoch_end", dataclasses.replace(end, step=end.step - 1))
    record(store_path, stream)
    with RunStore(store_path) as store:
        assert store.get_run("demo-run").epochs_done == 2
