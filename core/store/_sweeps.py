"""Sweeps in the run store: a sweep is a group of kind ``sweep`` whose runs each carry its
id (``group_id``); what the sweep trains (its base config, the settings it varies, its seeds)
is kept as JSON in the ``meta`` table under ``sweep:<id>``, so that it can be resumed."""

from __future__ import annotations

import json
import time
from typing import Any

from ._db import StoreError
from ._writer import RunWriter

__all__ = ["SweepRecords", "SWEEP_KIND"]

#: the kind of the groups that are sweeps
SWEEP_KIND = "sweep"


class SweepRecords(RunWriter):
    """Methods of :class:`~learndrop.core.store.RunStore` that keep sweeps."""

    def create_sweep(self, label: str, spec: dict[str, Any]) -> int:
        """A new, empty sweep named ``label`` (unique among sweeps) that trains ``spec``;
        returns its id."""
        label = label.strip()
        if not label or label.isdigit() or len(label) > 200:
            raise StoreError(f"'{label}' cannot name a sweep: use letters, digits, dots, "
                             f"dashes or underscores, not only digits")
        text = json.dumps(spec)
        with self._write():
            taken = self._conn.execute("SELECT id FROM groups WHERE kind = ? AND label = ?",
                                       (SWEEP_KIND, label)).fetchone()
            if taken:
                raise StoreError(f"a sweep named '{label}' already exists (id {taken[0]}): "
                                 f"continue it with --resume {label}, or choose another "
                                 f"--name")
            cur = self._conn.execute("INSERT INTO groups(kind, created, label) VALUES (?,?,?)",
                                     (SWEEP_KIND, time.time(), label))
            sweep_id = int(cur.lastrowid or 0)
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                               (f"sweep:{sweep_id}", text))
        return sweep_id

    def find_sweep(self, ref: str | int) -> tuple[int, str, dict[str, Any]]:
        """A sweep by id or name: ``(id, name, spec)``."""
        text = str(ref).strip()
        with self._read():
            row = self._conn.execute("SELECT id, label FROM groups WHERE kind = ? AND label = ?",
                                     (SWEEP_KIND, text)).fetchone()
            if row is None and text.isascii() and text.isdigit() and len(text) <= 18:
                row = self._conn.execute("SELECT id, label FROM groups WHERE kind = ? AND "
                                         "id = ?", (SWEEP_KIND, int(text))).fetchone()
            spec = None if row is None else self._conn.execute(
                "SELECT value FROM meta WHERE key = ?", (f"sweep:{row['id']}",)).fetchone()
        if row is None or spec is None:
            raise StoreError(f"no sweep '{text}' in the run store {self.path}: see "
                             f"'learndrop sweeps' for the names")
        try:
            loaded = json.loads(spec[0])
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise StoreError(f"the sweep '{row['label']}' in {self.path} has a damaged "
                             f"description: start a new sweep")
        return int(row["id"]), str(row["label"]), loaded

    def add_to_group(self, group_id: int, run_id: int) -> None:
        """Make the run ``run_id`` one of group ``group_id``'s."""
        with self._write():
            self._conn.execute("UPDATE runs SET group_id = ? WHERE id = ?", (group_id, run_id))
