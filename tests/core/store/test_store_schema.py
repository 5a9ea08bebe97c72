"""The run store's schema: migrations from every older version, and stores that are damaged,
foreign or newer refused untouched."""


from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest

from factories import expected_replay, make_events, record
from learndrop.core.errors import LearnDropError
from learndrop.core.events import (
    DropEvent,
    EpochEnd,
)
from learndrop.core.savings import SavingsReport
from learndrop.core.store import (
    RunStore,
    StoreError,
    WallClock,
)
from learndrop.core.store._schema import SAVINGS_V6
from learndrop.core.summary import RunSummary

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL,
    status TEXT NOT NULL, config TEXT, summary TEXT, output_dir TEXT);
CREATE TABLE epochs (run_id INTEGER NOT NULL, epoch INTEGER NOT NULL, step INTEGER NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    epoch_time_s REAL, elapsed_s REAL, lr REAL, train_flops_saved REAL);
CREATE TABLE score_checks (run_id INTEGER NOT NULL, step INTEGER NOT NULL, epoch REAL,
    lr REAL, unit_index INTEGER NOT NULL, unit TEXT NOT NULL, change REAL, score REAL,
    settled INTEGER);
CREATE TABLE drops (run_id INTEGER NOT NULL, step INTEGER NOT NULL, epoch REAL,
    unit TEXT NOT NULL, reason TEXT, score REAL);
INSERT INTO meta VALUES ('app_id', 'learndrop-run-store');
INSERT INTO runs VALUES (1, 'old-run', 1700000000.0, 'finished',
    '{"model": {"name": "vgg11"}, "data": {"dataset": "cifar10"}, "train": {"epochs": 2}}',
    '{"wall_time_s": 99.0}', '/nowhere/old-run');
INSERT INTO runs VALUES (2, 'old-crash', 1700000100.0, 'running', '{}', NULL, '');
INSERT INTO score_checks VALUES (1, 10, 1.0, 0.1, 0, 'features.0', 0.02, 1.0, 0);
INSERT INTO score_checks VALUES (1, 10, 1.0, 0.1, 1, 'features.1', 0.03, 1.0, 0);
INSERT INTO score_checks VALUES (1, 20, 2.0, 0.1, 0, 'features.0', 0.001, 0.05, 1);
INSERT INTO score_checks VALUES (1, 20, 2.0, 0.1, 1, 'features.1', 0.02, 0.6, 0);
INSERT INTO drops VALUES (1, 20, 2.0, 'features.0', 'policy', 0.05);
INSERT INTO epochs VALUES (1, 1, 10, 1.5, 0.4, 1.6, 0.38, 5.0, 5.0, 0.1, 0.0);
INSERT INTO epochs VALUES (1, 2, 20, 0.9, 0.7, 1.0, 0.66, 4.0, 9.0, 0.1, 0.12);
PRAGMA user_version = 1;
"""


def test_migrates_a_version_1_store(store_path: Path) -> None:
    conn = sqlite3.connect(store_path)
    conn.executescript(V1_SCHEMA)
    conn.close()
    with RunStore(store_path) as store:
        runs = {r.name: r for r in store.list_runs()}
        old = runs["old-run"]
        assert (old.model, old.dataset, old.epochs_done, old.drops) == ("vgg11", "cifar10", 2, 1)
        assert old.final_val_accuracy == pytest.approx(0.66) and old.wall_time_s == 99.0
        assert old.train_flops_saved_total == pytest.approx(0.12)
        assert runs["old-crash"].status == "interrupted"
        events = store.load_events("old-run")
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["FitStart", "ScoreCheck", "EpochEnd", "ScoreCheck", "DropEvent",
                         "EpochEnd", "FitEnd"]
        assert [u.name for u in events[0].units] == ["features.0", "features.1"]
        assert events[3].scores == (0.05, 0.6) and events[4].index == 0
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 6  # the current version
    conn.close()
    with RunStore(store_path) as store:  # reopening the migrated store is a no-op
        assert sorted(r.name for r in store.list_runs()) == ["old-crash", "old-run"]
    record(store_path, make_events())  # and it records new runs
    with RunStore(store_path) as store:
        assert sorted(r.name for r in store.list_runs()) == ["demo-run", "old-crash", "old-run"]
        assert store.load_events("demo-run") == expected_replay(make_events())


def test_migrates_a_version_3_store(store_path: Path) -> None:
    """Version 4 adds the time-saved range to the savings rows; older rows keep it unknown."""
    from learndrop.core.store import _schema

    record(store_path, make_events("before"))
    conn = sqlite3.connect(store_path)
    _back_to_version_5(conn)
    for column in _schema._SAVINGS_V4:  # back to version 3
        conn.execute(f"ALTER TABLE savings DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with RunStore(store_path) as store:
        ends = [e for e in store.load_events("before") if type(e).__name__ == "EpochEnd"]
        assert ends and all(e.savings.time_saved_low_s_total is None for e in ends)
        assert ends[-1].savings.time_saved_s_total > 0
    record(store_path, make_events("after"))
    with RunStore(store_path) as store:
        ends = [e for e in store.load_events("after") if type(e).__name__ == "EpochEnd"]
        assert ends[-1].savings.time_saved_low_s_total is not None
        assert ends[-1].savings.step_time_spread_now == 0.05
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 6  # the current version
    conn.close()


def _assert_refused(path: Path) -> None:
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        RunStore(path)
    message = str(info.value)
    assert "\n" not in message
    assert "is not a Learn&Drop run store (or is damaged)" in message
    assert "--store/LEARNDROP_HOME" in message
    assert path.read_bytes() == before
    assert isinstance(info.value, LearnDropError)


def test_random_bytes_are_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(os.urandom(8192))
    _assert_refused(path)


def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO contacts(name) VALUES ('Ada')")
    conn.commit()
    conn.close()
    _assert_refused(path)


def test_truncated_store_is_refused(store_path: Path) -> None:
    record(store_path, make_events())
    data = store_path.read_bytes()
    store_path.write_bytes(data[:100] + os.urandom(len(data) - 100))
    _assert_refused(store_path)


def test_newer_store_is_refused(store_path: Path) -> None:
    RunStore(store_path).close()
    conn = sqlite3.connect(store_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer Learn&Drop"):
        RunStore(store_path)


def test_migrates_a_version_2_store(store_path: Path) -> None:
    """Version 2 kept no drop times: the column is added, the old drops have no time."""
    record(store_path, make_events())
    conn = sqlite3.connect(store_path)
    conn.execute("ALTER TABLE drops DROP COLUMN time")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with RunStore(store_path) as store:
        events = store.load_events("demo-run", clock=True)
        drops = [i for i, e in enumerate(events) if isinstance(e, DropEvent)]
        assert len(drops) == 2 and not any(isinstance(events[i - 1], WallClock) for i in drops)
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 6  # the current version
    conn.close()
    record(store_path, make_events("second-run"))  # and new drops get their time
    with RunStore(store_path) as store:
        events = store.load_events("second-run", clock=True)
    assert all(isinstance(events[i - 1], WallClock)
               for i, e in enumerate(events) if isinstance(e, DropEvent))


def test_migrates_a_version_4_store(store_path: Path) -> None:
    """Version 4 kept no all-reduce figures: the columns are added, 0 (one process) in the
    rows stored before, and new runs record theirs."""
    record(store_path, make_events())
    conn = sqlite3.connect(store_path)
    _back_to_version_5(conn)
    for column in ("allreduce_bytes_per_step", "full_allreduce_bytes_per_step",
                   "cumulative_allreduce_bytes_saved"):
        conn.execute(f"ALTER TABLE savings DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with RunStore(store_path) as store:
        ends = [e for e in store.load_events("demo-run") if isinstance(e, EpochEnd)]
    assert ends and all(e.savings.allreduce_bytes_per_step_now == 0
                        and e.savings.full_allreduce_bytes_per_step_now == 0 for e in ends)
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 6
    conn.close()
    record(store_path, make_events("second-run"))
    with RunStore(store_path) as store:
        assert store.load_events("second-run") == expected_replay(make_events("second-run"))


def _back_to_version_5(conn: sqlite3.Connection) -> None:
    """Give the ``savings`` columns the names version 5 had."""
    for old, new in SAVINGS_V6.items():
        conn.execute(f"ALTER TABLE savings RENAME COLUMN {new} TO {old}")


#: a summary as the version before the savings record stored it: its ``train_flops_saved``
#: covered the whole run, ``final_train_flops_saved`` was the last step's
OLD_SUMMARY = {"run_name": "demo-run", "status": "finished", "wall_time_s": 12.5,
               "forward_flops_saved": 0.2, "train_flops_saved": 0.18,
               "final_forward_flops_saved": 0.4, "final_train_flops_saved": 0.36,
               "trainable_params": 28_026, "total_params": 28_954, "time_saved_s": 0.1,
               "efficiency": 0.83, "allreduce_bytes_saved": 0.0}


def test_migrates_a_version_5_store(store_path: Path) -> None:
    """Version 6 names the savings columns after the savings record: the rows keep their
    values, and a summary stored in the old form is read into the record."""
    import json

    events = make_events()
    record(store_path, events)
    conn = sqlite3.connect(store_path)
    _back_to_version_5(conn)
    conn.execute("UPDATE runs SET summary = ?", (json.dumps(OLD_SUMMARY),))
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    columns = {r[1] for r in conn.execute("PRAGMA table_info(savings)")}
    conn.close()
    assert "cumulative_train_flops_saved" in columns and "train_flops_saved_total" not in columns
    with RunStore(store_path) as store:
        loaded = store.load_events("demo-run")
        run = store.get_run("demo-run")
    expected = [e.savings for _, e in events if isinstance(e, EpochEnd)]
    assert [e.savings for e in loaded if isinstance(e, EpochEnd)] == expected
    assert run.train_flops_saved_total == pytest.approx(expected[-1].train_flops_saved_total)
    assert run.summary.savings == SavingsReport(
        forward_flops_saved_now=0.4, train_flops_saved_now=0.36,
        forward_flops_saved_total=0.2, train_flops_saved_total=0.18,
        trainable_params_now=28_026, total_params=28_954, time_saved_s_total=0.1,
        efficiency_total=0.83)
    assert isinstance(loaded[-1].summary, RunSummary) and loaded[-1].summary == run.summary
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 6
    columns = [r[1] for r in conn.execute("PRAGMA table_info(savings)")]
    conn.close()
    assert columns[2:] == [f.name for f in dataclasses.fields(SavingsReport)]
    record(store_path, make_events("second-run"))  # and new runs are recorded
    with RunStore(store_path) as store:
        assert store.load_events("second-run") == expected_replay(make_events("second-run"))


def test_a_new_store_has_the_savings_record_as_its_columns(store_path: Path) -> None:
    RunStore(store_path).close()
    conn = sqlite3.connect(store_path)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(savings)")]
    conn.close()
    assert columns == ["run_id", "seq", *(f.name for f in dataclasses.fields(SavingsReport))]
