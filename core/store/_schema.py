"""The run store's SQLite schema, its version, and the migrations between versions.

Version history
---------------
1. ``meta``, ``runs`` (id, name, created, status, config, summary, output_dir), ``epochs``
   (losses, accuracies, times, lr, ``train_flops_saved``), ``score_checks`` (one row per check
   and unit: step, epoch, lr, unit index, unit name, change, score, settled) and ``drops``
   (step, epoch, unit name, reason, score).
2. Adds a per-run event sequence number (``seq``) to every event table so that a run can be
   replayed in its original order and followed while it is written; the run's environment,
   heartbeat, note, display name, pid, host and group; the tables ``units``, ``progress``,
   ``savings``, ``events`` and ``groups``; score trends, streaks and check indexes.
3. Adds the wall-clock ``time`` of each drop (empty for drops recorded before), so a run
   shown again tells when its drops happened. The ``events`` table's kinds are
   ``epoch_start``, ``checkpoint``, ``warning``, ``error``, ``info`` and, from this version,
   ``action`` (what the user did to the running run: pin, unpin, drop, pause, resume, stop,
   cancel; its ``data`` holds the action, the unit, the step and the epoch). A version 2
   reader takes an ``action`` row for a log line it does not show.
4. Adds to ``savings`` the range of the measured time saved, the FLOP-predicted time saved
   and the spread of the time per step (earlier rows keep them unknown).
5. ``savings`` gets the gradient bytes a data-parallel run all-reduces per step, now and
   before any drop, and the share of that volume saved so far (0 for one process).
6. The ``savings`` columns are renamed after the fields of the engine's savings record
   (:class:`~learndrop.core.savings.SavingsReport`), whose names say which figures are per
   step now (``_now``) and which cover the run so far (``_total``): :data:`SAVINGS_V6`.
   A run's ``summary`` JSON is left as it was: ``RunSummary.from_dict`` reads the old keys.

Every store carries :data:`APP_ID` in its ``meta`` table and its version in
``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

__all__ = ["APP_ID", "SCHEMA_VERSION", "create_schema", "migrate", "EVENT_TABLES",
           "SAVINGS_V6"]

APP_ID = "learndrop-run-store"
SCHEMA_VERSION = 6

#: Tables whose rows are events of a run, each with a ``seq`` column.
EVENT_TABLES = ("progress", "score_checks", "drops", "epochs", "events")

#: the tables as version 3 made them: :func:`create_schema` then makes the changes of the
#: later versions, as a migration does (so ``savings`` ends with the record's columns)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL,
    created REAL NOT NULL,
    label   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS runs (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    display_name       TEXT NOT NULL DEFAULT '',
    created            REAL NOT NULL,
    updated            REAL NOT NULL,
    status             TEXT NOT NULL CHECK (status IN
                        ('running','finished','stopped','cancelled','failed','interrupted')),
    message            TEXT NOT NULL DEFAULT '',
    config             TEXT NOT NULL DEFAULT '{}',
    environment        TEXT NOT NULL DEFAULT '{}',
    summary            TEXT NOT NULL DEFAULT '{}',
    note               TEXT NOT NULL DEFAULT '',
    output_dir         TEXT NOT NULL DEFAULT '',
    owns_dir           INTEGER NOT NULL DEFAULT 0,
    pid                INTEGER,
    host               TEXT NOT NULL DEFAULT '',
    group_id           INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    model              TEXT NOT NULL DEFAULT '',
    dataset            TEXT NOT NULL DEFAULT '',
    device             TEXT NOT NULL DEFAULT '',
    mode               TEXT NOT NULL DEFAULT '',
    drop_enabled       INTEGER NOT NULL DEFAULT 1,
    epochs_planned     INTEGER NOT NULL DEFAULT 0,
    steps_per_epoch    INTEGER NOT NULL DEFAULT 0,
    total_steps        INTEGER NOT NULL DEFAULT 0,
    total_params       INTEGER NOT NULL DEFAULT 0,
    forward_flops      INTEGER NOT NULL DEFAULT 0,
    resumed_from_epoch INTEGER NOT NULL DEFAULT 0,
    end_seq            INTEGER
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_group ON runs(group_id);
CREATE TABLE IF NOT EXISTS units (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    modules     TEXT NOT NULL DEFAULT '[]',
    params      INTEGER NOT NULL,
    flops       INTEGER NOT NULL,
    flops_share REAL NOT NULL,
    is_head     INTEGER NOT NULL DEFAULT 0,
    skippable   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS progress (
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    batch        INTEGER NOT NULL,
    batches      INTEGER NOT NULL,
    loss         REAL,
    lr           REAL,
    images_per_s REAL,
    elapsed_s    REAL,
    eta_s        REAL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS score_checks (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    check_idx  INTEGER NOT NULL,
    unit_idx   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    epoch      REAL NOT NULL,
    lr         REAL,
    change     REAL,
    score      REAL,
    trend      REAL,
    settled    INTEGER NOT NULL DEFAULT 0,
    streak     INTEGER NOT NULL DEFAULT 0,
    cost_s     REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, check_idx, unit_idx)
);
CREATE INDEX IF NOT EXISTS score_checks_seq ON score_checks(run_id, seq);
CREATE TABLE IF NOT EXISTS drops (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    epoch    REAL NOT NULL,
    unit_idx INTEGER NOT NULL,
    unit     TEXT NOT NULL,
    reason   TEXT NOT NULL,
    score    REAL,
    mode     TEXT NOT NULL DEFAULT '',
    time     REAL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id              INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq                 INTEGER NOT NULL,
    epoch               INTEGER NOT NULL,
    step                INTEGER NOT NULL,
    train_loss          REAL,
    train_accuracy      REAL,
    val_loss            REAL,
    val_accuracy        REAL,
    val_accuracy_scaled REAL,
    epoch_time_s        REAL,
    elapsed_s           REAL,
    eta_s               REAL,
    images_per_s        REAL,
    lr                  REAL,
    dropped             TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS epochs_epoch ON epochs(run_id, epoch);
CREATE TABLE IF NOT EXISTS savings (
    run_id                         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq                            INTEGER NOT NULL,
    step                           INTEGER NOT NULL,
    forward_flops_saved            REAL,
    train_flops_saved              REAL,
    cumulative_forward_flops_saved REAL,
    cumulative_train_flops_saved   REAL,
    trainable_params               INTEGER,
    total_params                   INTEGER,
    step_time_s                    REAL,
    full_step_time_s               REAL,
    measured_time_saved            REAL,
    time_saved_s                   REAL,
    projected_time_saved_s         REAL,
    efficiency                     REAL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS events (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    time    REAL NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS events_kind ON events(run_id, kind);
"""


#: the columns version 4 adds to ``savings``
_SAVINGS_V4 = ("time_saved_low_s", "time_saved_high_s", "predicted_time_saved_s",
               "step_time_spread")

#: the ``savings`` columns version 6 renames: version 5's name -> the savings record's field
SAVINGS_V6: dict[str, str] = {
    "forward_flops_saved": "forward_flops_saved_now",
    "train_flops_saved": "train_flops_saved_now",
    "cumulative_forward_flops_saved": "forward_flops_saved_total",
    "cumulative_train_flops_saved": "train_flops_saved_total",
    "trainable_params": "trainable_params_now",
    "step_time_s": "step_time_s_now",
    "full_step_time_s": "full_step_time_s_now",
    "measured_time_saved": "measured_time_saved_now",
    "time_saved_s": "time_saved_s_total",
    "projected_time_saved_s": "projected_time_saved_s_total",
    "efficiency": "efficiency_total",
    "time_saved_low_s": "time_saved_low_s_total",
    "time_saved_high_s": "time_saved_high_s_total",
    "predicted_time_saved_s": "predicted_time_saved_s_total",
    "step_time_spread": "step_time_spread_now",
    "allreduce_bytes_per_step": "allreduce_bytes_per_step_now",
    "full_allreduce_bytes_per_step": "full_allreduce_bytes_per_step_now",
    "cumulative_allreduce_bytes_saved": "allreduce_bytes_saved_total",
}


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the current schema in an empty database (inside the caller's transaction)."""
    for statement in _statements(_SCHEMA):
        conn.execute(statement)
    _migrate_v3_to_v4(conn)
    _migrate_v4_to_v5(conn)
    _migrate_v5_to_v6(conn)
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('app_id', ?)", (APP_ID,))
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Bring a store at ``from_version`` up to :data:`SCHEMA_VERSION`, step by step.

    The caller holds a write transaction; a failure rolls every step back.
    """
    steps = {1: _migrate_v1_to_v2, 2: _migrate_v2_to_v3, 3: _migrate_v3_to_v4,
             4: _migrate_v4_to_v5, 5: _migrate_v5_to_v6}
    version = from_version
    while version < SCHEMA_VERSION:
        steps[version](conn)
        version += 1
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _rows(conn: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _migrate_v1_to_v2(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2: rebuild the tables with the new columns and number every event.

    Old rows keep their values. Within a run, events are numbered by step, and at equal
    steps checks come before drops and drops before the epoch's end (the engine's order).
    Version 1 kept only the cumulative training FLOPs saved per epoch; it becomes a
    ``savings`` row with the other figures unknown.
    """
    runs = _rows(conn, "SELECT * FROM runs ORDER BY id")
    epochs = _rows(conn, "SELECT * FROM epochs ORDER BY run_id, epoch")
    checks = _rows(conn, "SELECT * FROM score_checks ORDER BY run_id, step, unit_index")
    drops = _rows(conn, "SELECT rowid AS rid, * FROM drops ORDER BY run_id, step, rid")
    for table in ("score_checks", "drops", "epochs", "runs"):
        conn.execute(f"DROP TABLE {table}")
    for statement in _statements(_SCHEMA):
        conn.execute(statement)

    for run in runs:
        created = float(run["created"] or 0.0)
        config = _json_dict(run.get("config"))
        conn.execute(
            "INSERT INTO runs(id, name, created, updated, status, config, summary, output_dir,"
            " model, dataset, epochs_planned, drop_enabled, mode) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run["id"], run["name"], created, created, _v1_status(run["status"]),
             json.dumps(config), json.dumps(_json_dict(run.get("summary"))),
             run.get("output_dir") or "",
             str(config.get("model", {}).get("name", "")),
             str(config.get("data", {}).get("dataset", "")),
             int(config.get("train", {}).get("epochs", 0) or 0),
             int(bool(config.get("drop", {}).get("enabled", True))),
             str(config.get("drop", {}).get("mode", ""))))

    # (run, step, order, kind, row): the order puts checks before drops before epoch ends
    timeline: list[tuple[int, int, int, int, str, Any]] = []
    check_keys: dict[tuple[int, int], int] = {}
    checks_per_run: dict[int, int] = {}
    unit_names: dict[int, dict[int, str]] = {}
    for row in checks:
        key = (row["run_id"], row["step"])
        unit_names.setdefault(row["run_id"], {})[row["unit_index"]] = row["unit"]
        if key not in check_keys:
            check_keys[key] = checks_per_run.get(row["run_id"], 0)
            checks_per_run[row["run_id"]] = check_keys[key] + 1
            timeline.append((row["run_id"], row["step"], 0, len(timeline), "check", key))
    for row in drops:
        timeline.append((row["run_id"], row["step"], 1, len(timeline), "drop", row))
    for row in epochs:
        timeline.append((row["run_id"], row["step"], 2, len(timeline), "epoch", row))
    timeline.sort(key=lambda t: t[:4])

    seq_of_check: dict[tuple[int, int], int] = {}
    next_seq: dict[int, int] = {}
    for run_id, _step, _order, _n, kind, item in timeline:
        seq = next_seq.get(run_id, 1)
        next_seq[run_id] = seq + 1
        if kind == "check":
            seq_of_check[item] = seq
        elif kind == "drop":
            conn.execute(
                "INSERT INTO drops(run_id, seq, step, epoch, unit_idx, unit, reason, score) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (run_id, seq, item["step"], item["epoch"],
                 _index_of(unit_names.get(run_id, {}), item["unit"]),
                 item["unit"], item["reason"], item["score"]))
        else:
            conn.execute(
                "INSERT INTO epochs(run_id, seq, epoch, step, train_loss, train_accuracy,"
                " val_loss, val_accuracy, epoch_time_s, elapsed_s, lr) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, seq, item["epoch"], item["step"], item["train_loss"],
                 item["train_accuracy"], item["val_loss"], item["val_accuracy"],
                 item["epoch_time_s"], item["elapsed_s"], item["lr"]))
            conn.execute(
                "INSERT INTO savings(run_id, seq, step, cumulative_train_flops_saved) "
                "VALUES (?,?,?,?)", (run_id, seq, item["step"], item["train_flops_saved"]))
    for row in checks:
        key = (row["run_id"], row["step"])
        conn.execute(
            "INSERT INTO score_checks(run_id, check_idx, unit_idx, seq, step, epoch, lr,"
            " change, score, settled) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (row["run_id"], check_keys[key], row["unit_index"], seq_of_check[key],
             row["step"], row["epoch"], row["lr"], row["change"], row["score"],
             int(bool(row["settled"]))))
    # version 1 kept no unit table: the scored units are known by index and name only
    for run_id, names in unit_names.items():
        for idx, name in sorted(names.items()):
            conn.execute("INSERT INTO units(run_id, idx, name, params, flops, flops_share) "
                         "VALUES (?,?,?,0,0,0.0)", (run_id, idx, name))
    for run in runs:
        conn.execute("UPDATE runs SET end_seq = ? WHERE id = ?",
                     (next_seq.get(run["id"], 1), run["id"]))


def _migrate_v2_to_v3(conn: sqlite3.Connection) -> None:
    """Version 2 -> 3: drops get their wall-clock time (unknown for the ones stored before).
    A store that came from version 1 through :func:`_migrate_v1_to_v2` has the column
    already."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(drops)")}
    if "time" not in columns:
        conn.execute("ALTER TABLE drops ADD COLUMN time REAL")


def _migrate_v3_to_v4(conn: sqlite3.Connection) -> None:
    """Version 3 -> 4: the new ``savings`` columns, empty in the rows already there."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(savings)")}
    for column in _SAVINGS_V4:
        if column not in columns:
            conn.execute(f"ALTER TABLE savings ADD COLUMN {column} REAL")


def _migrate_v4_to_v5(conn: sqlite3.Connection) -> None:
    """Version 4 -> 5: the all-reduce columns of ``savings`` (0 in older rows: one process);
    a column that is there already stays as it is."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(savings)")}
    for column, kind in (("allreduce_bytes_per_step", "INTEGER"),
                         ("full_allreduce_bytes_per_step", "INTEGER"),
                         ("cumulative_allreduce_bytes_saved", "REAL")):
        if column not in columns:
            conn.execute(f"ALTER TABLE savings ADD COLUMN {column} {kind} NOT NULL DEFAULT 0")


def _migrate_v5_to_v6(conn: sqlite3.Connection) -> None:
    """Version 5 -> 6: the ``savings`` columns take the savings record's names
    (:data:`SAVINGS_V6`); the rows keep their values."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(savings)")}
    for old, new in SAVINGS_V6.items():
        if old in columns and new not in columns:
            conn.execute(f"ALTER TABLE savings RENAME COLUMN {old} TO {new}")


def _index_of(names: dict[int, str], unit: str) -> int:
    """A version 1 drop named its unit only; -1 when no check ever scored it."""
    return next((idx for idx, name in names.items() if name == unit), -1)


def _v1_status(status: Any) -> str:
    """Version 1 had no heartbeat nor pid: a run it left "running" can no longer be running
    once a newer version migrates the store, so it is interrupted."""
    allowed = ("finished", "stopped", "cancelled", "failed")
    return status if status in allowed else "interrupted"


def _json_dict(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
