"""The store is never silently wrong: a damaged store is refused before any write, and a run
the store cannot record (lock held too long, full disk, read-only file) is kept in a journal
beside the run and added to the store by the next command, or the command exits 1."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import RunCli, expected_replay, make_events, record, small_tmpfs
from learndrop.core.runfolder import JOURNAL_PREFIX, claim_run_folder
from learndrop.core.store import RunStore, StoreError, StoreRecorder, _db
from learndrop.core.store._journal import JournalWriter, journal_dir

TINY = ["--dataset", "digits", "--model", "small_cnn", "--data.limit", "320", "--image-size",
        "16", "--batch-size", "32", "--epochs", "2", "--quiet"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journals(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{JOURNAL_PREFIX}*"))


# ---- a damaged store is never written -----------------------------------------------------------
def _damaged_store(tmp_path: Path) -> Path:
    store = tmp_path / "store.sqlite"
    record(store, make_events(epochs=6, steps_per_epoch=40))
    left = make_events("left-running", epochs=6, steps_per_epoch=40, status="running")
    record(store, left)
    conn = sqlite3.connect(store)
    conn.execute("UPDATE runs SET pid = 999999999, host = ? WHERE name = 'left-running'",
                 (socket.gethostname(),))  # as if its process had died
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    conn.close()
    assert Path(f"{store}-wal").stat().st_size == 0
    data = bytearray(store.read_bytes())
    page = len(data) // 4096 // 2
    data[page * 4096:page * 4096 + 100] = bytes(range(100))
    store.write_bytes(bytes(data))
    return store


def test_a_damaged_store_is_refused_before_any_write(tmp_path: Path,
                                                     run_cli: RunCli) -> None:
    store = _damaged_store(tmp_path)
    before = digest(store)
    for argv in (["runs"], ["show", "demo-run"], ["rm", "demo-run", "--yes"]):
        code, _, err = run_cli([*argv, "--store", str(store)])
        assert code != 0 and "damaged" in err and len(err.strip().splitlines()) == 1, argv
        assert digest(store) == before, argv
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir",
                            str(tmp_path / "runs")])
    assert code != 0 and "damaged" in err
    assert not (tmp_path / "runs").exists()  # refused before any training
    assert digest(store) == before
    with pytest.raises(StoreError, match="damaged"):
        RunStore(store)


# ---- a run the store cannot take is journaled, then replayed ------------------------------------
@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_db, "BUSY_TIMEOUT_S", 0.2)


@pytest.fixture
def locked(tmp_path: Path, short_lock_wait: None) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A store whose write lock another connection holds (as another process would)."""
    store = tmp_path / "store.sqlite"
    RunStore(store).close()
    other = sqlite3.connect(store, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield store, other
    other.close()


def test_a_lock_held_too_long_keeps_the_run_in_a_journal(
        tmp_path: Path, locked: tuple[Path, sqlite3.Connection]) -> None:
    store, other = locked
    folder = claim_run_folder(tmp_path / "runs", "demo-run")
    stream = make_events(output_dir=str(folder))
    rec = StoreRecorder(store)
    for hook, payload in stream:
        getattr(rec, hook)(payload)
    assert rec.error and "busy" in rec.error and rec.lost is None
    assert rec.journal is not None and journals(folder) == [rec.journal]
    assert list(journal_dir(store).glob("*.json"))
    other.execute("ROLLBACK")
    with RunStore(store) as s:
        assert s.replayed == ["demo-run"]
        assert s.load_events("demo-run") == expected_replay(stream)
        assert s.get_run("demo-run").status == "finished"
    assert journals(folder) == [] and not list(journal_dir(store).glob("*.json"))
    with RunStore(store) as s:  # replayed once only
        assert s.replayed == [] and len(s.list_runs()) == 1


def test_a_store_failing_mid_run_keeps_the_rest_in_a_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store.sqlite"
    folder = claim_run_folder(tmp_path / "runs", "demo-run")
    stream = make_events(output_dir=str(folder))
    calls = {"n": 0}
    real = RunStore.write_rows

    def failing(self: RunStore, run_id: int, rows: list) -> None:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] > 1:
            raise StoreError("cannot write the run store: attempt to write a readonly "
                             "database")
        real(self, run_id, rows)

    monkeypatch.setattr(RunStore, "write_rows", failing)
    rec = StoreRecorder(store)
    for hook, payload in stream:
        getattr(rec, hook)(payload)
    assert rec.journal is not None and rec.lost is None and "readonly" in (rec.error or "")
    monkeypatch.setattr(RunStore, "write_rows", real)
    with RunStore(store) as s:
        assert s.replayed == ["demo-run"]
        assert s.load_events("demo-run") == expected_replay(stream)


def test_a_resumed_run_journaled_from_its_start_continues_the_stored_run(
        tmp_path: Path, locked: tuple[Path, sqlite3.Connection]) -> None:
    store, other = locked
    other.execute("ROLLBACK")
    folder = claim_run_folder(tmp_path / "runs", "demo-run")
    full = make_events(epochs=3, output_dir=str(folder))
    ends = [i for i, (hook, _) in enumerate(full) if hook == "on_epoch_end"]
    first_part = full[:ends[1] + 2]
    first = record(store, first_part)
    first.flush()  # then the process died
    other.execute("BEGIN IMMEDIATE")
    start = dataclasses.replace(full[0][1], resumed_from_epoch=2)
    again = [("on_fit_start", start), *full[ends[1] + 2:]]
    rec = StoreRecorder(store, resume_id=first.run_id)
    for hook, payload in again:
        getattr(rec, hook)(payload)
    assert rec.journal is not None
    other.execute("ROLLBACK")
    with RunStore(store) as s:
        assert s.replayed == ["demo-run"]
        events = s.load_events("demo-run")
        run = s.get_run("demo-run")
    assert run.status == "finished" and run.epochs_done == 3
    assert events == [start, *expected_replay(first_part[1:]), *expected_replay(again[1:])]


def test_a_journal_still_being_written_is_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    RunStore(store).close()
    folder = claim_run_folder(tmp_path / "runs", "live")
    journal = JournalWriter(store, folder, run_id=None, resume_id=None, seq=1, checks=0)
    journal.begin(make_events("live")[0][1], {})
    journal.close()  # no end line and this process is alive: its run goes on
    with RunStore(store) as s:
        assert s.replayed == [] and s.list_runs() == []
    assert journal.path.is_file()


def test_events_that_cannot_be_kept_at_all_are_reported(
        tmp_path: Path, locked: tuple[Path, sqlite3.Connection]) -> None:
    store, _ = locked
    rec = StoreRecorder(store)
    for hook, payload in make_events(output_dir=""):  # no run folder for a journal
        getattr(rec, hook)(payload)
    assert rec.journal is None and rec.lost and "could not be kept" in rec.lost


def test_cli_train_with_a_locked_store_exits_0_and_the_next_command_adds_the_run(
        tmp_path: Path, locked: tuple[Path, sqlite3.Connection],
        run_cli: RunCli) -> None:
    store, other = locked
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir",
                            str(tmp_path / "runs"), "--run-name", "r"])
    assert code == 0, err
    assert "warning" in err and JOURNAL_PREFIX in err and "busy" in err
    other.execute("ROLLBACK")
    code, out, _ = run_cli(["runs", "--json", "--store", str(store)])
    runs = json.loads(out)
    assert code == 0 and [(r["name"], r["status"], r["epochs"]) for r in runs] == [
        ("r", "finished", 2)]
    assert journals(tmp_path / "runs" / "r") == []


@pytest.mark.parametrize("command", [
    ["train", "--run-name", "r"],
    pytest.param(["bench", "--quiet"], marks=pytest.mark.slow),  # three runs, recorded alike
])
def test_cli_exits_1_when_neither_store_nor_journal_can_be_written(
        command: list[str], tmp_path: Path, locked: tuple[Path, sqlite3.Connection],
        monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    store, _ = locked

    def full_disk(self: JournalWriter, rows: list) -> None:  # type: ignore[type-arg]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JournalWriter, "rows", full_disk)
    code, _, err = run_cli([command[0], *TINY, "--store", str(store), "--output-dir",
                            str(tmp_path / "runs"), *command[1:]])
    assert code == 1, err
    assert "could not be kept" in err and "No space left" in err


# ---- a real full disk (a 1 MiB tmpfs; skipped where it cannot be mounted) ------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "1m") as mnt:
        yield mnt


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_under_the_store_is_refused_before_training(
        tmp_path: Path, small_disk: Path, run_cli: RunCli) -> None:
    store = small_disk / "store.sqlite"
    RunStore(store).close()
    _fill(small_disk)
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir",
                            str(tmp_path / "runs"), "--run-name", "r"])
    assert code == 1 and "disk" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_disk_filling_under_the_store_mid_run_keeps_the_rest_in_a_journal(
        tmp_path: Path, small_disk: Path) -> None:
    from learndrop.core.config import RunConfig
    from learndrop.core.events import Callback
    from learndrop.core.training import Trainer

    store = small_disk / "store.sqlite"
    RunStore(store).close()
    fillers: list[Path] = []

    class FillAfterFirstEpoch(Callback):
        def on_epoch_end(self, event: object) -> None:
            if not fillers:
                fillers.append(_fill(small_disk))

    cfg = RunConfig()
    for path, value in (("data.dataset", "digits"), ("data.limit", 320),
                        ("data.image_size", 16), ("train.batch_size", 32),
                        ("train.epochs", 3), ("train.log_every", 1)):
        cfg.set(path, value)
    cfg.output.dir, cfg.output.name = str(tmp_path / "runs"), "r"
    rec = StoreRecorder(store)
    result = Trainer(cfg, [rec, FillAfterFirstEpoch()]).fit()
    assert result.status == "finished"
    assert rec.journal is not None and rec.lost is None, (rec.error, rec.lost)
    fillers[0].unlink()
    with RunStore(store) as s:
        assert s.replayed == ["r"]
        run = s.get_run("r")
        assert run.status == "finished" and run.epochs_done == 3


def test_full_disk_under_store_and_run_exits_1(tmp_path: Path, small_disk: Path,
                                               run_cli: RunCli) -> None:
    store = small_disk / "store.sqlite"
    RunStore(store).close()
    (small_disk / "runs").mkdir()
    _fill(small_disk)
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir",
                            str(small_disk / "runs"), "--run-name", "r"])
    assert code == 1, err
    assert "Traceback" not in err and ("disk is full" in err or "No space" in err
                                       or "cannot" in err)
    assert os.path.exists(store)
