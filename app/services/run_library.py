"""The run library: the app's one door to the run store.

:class:`RunLibrary` keeps the :class:`~learndrop.core.store.RunStore` open on the GUI thread and
does everything the app does with stored runs: list them (and tell from the store's files
whether anything changed since the last read, so a timer re-reads only then), replay one into
a live view, follow one that trains elsewhere, rename, annotate and delete runs, load two runs
for a comparison and write reports, give a run's settings for a new run and tell where a stopped
run can be resumed from. A method that cannot do its job raises
:class:`~learndrop.core.errors.LearnDropError` with a one-line message for the user.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from learndrop.core.config import RunConfig, load_config
from learndrop.core.errors import CheckpointError, LearnDropError
from learndrop.core.events import Callback
from learndrop.core.report import RunData, build_report, export, load_run
from learndrop.core.store import RunRecord, RunStore, StoreError, default_store_path, replay
from learndrop.core.training import checkpoint_epoch, load_checkpoint

from .follow import RunFollower

__all__ = ["RunLibrary", "ResumePoint", "RESUMABLE", "FULL_REFRESH_S", "MAX_DISPLAY_NAME"]

#: the statuses of runs that Resume continues (a finished run has done its epochs, a
#: cancelled one has no files left)
RESUMABLE = ("stopped", "interrupted", "failed")

#: the runs are read again after this long even when the store's files did not change (a
#: writer whose process died changes nothing; reading the runs notices it)
FULL_REFRESH_S = 30.0
#: the longest display name, in characters
MAX_DISPLAY_NAME = 200


@dataclass(frozen=True)
class ResumePoint:
    """Where a stored run continues: its checkpoint after ``epochs_done`` complete epochs (in
    the run's own folder) and the settings it ran with, recorded into the same stored run.
    ``before`` is the run's (status, message) before :meth:`RunLibrary.claim` marked it as
    continued here, for :meth:`RunLibrary.release` if it does not start after all."""

    run_id: int
    label: str
    checkpoint: Path
    config: RunConfig
    epochs_done: int
    before: tuple[str, str] = ("", "")


class RunLibrary(QObject):
    """The runs of the store at ``path`` (default: the one under the user data folder or
    ``LEARNDROP_HOME``).

    ``runs_changed(records)`` after a read that found the runs different from the last read
    (a list of :class:`~learndrop.core.store.RunRecord`, newest first).
    ``followed_run_started()`` once the followed run's start reached its target;
    ``follow_ended(status, label)`` when the followed run has ended and
    ``follow_failed(message, label)`` when it cannot be followed any more; following has
    stopped before either is emitted.
    """

    runs_changed = Signal(object)
    followed_run_started = Signal()
    follow_ended = Signal(str, str)
    follow_failed = Signal(str, str)

    def __init__(self, path: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path).expanduser() if path else default_store_path()
        self.records: list[RunRecord] = []
        self.follower: RunFollower | None = None
        self._store: RunStore | None = None
        self._stamp: tuple[int, ...] | None = None
        self._last_read = 0.0

    # ---- the store ---------------------------------------------------------------------------
    def _open(self) -> RunStore:
        if self._store is None:
            self._store = RunStore(self.path)
        return self._store

    def recording_path(self) -> Path:
        """The store a new run is recorded into, opened here so that a problem is told before
        training starts."""
        with RunStore(self.path) as store:
            return store.path

    def close(self) -> None:
        """Stop following and close the store (it opens again when needed)."""
        self.stop_following()
        store, self._store = self._store, None
        if store is not None:
            store.close()

    # ---- listing -----------------------------------------------------------------------------
    def _files_stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.path}{suffix}")
                out += [st.st_mtime_ns, st.st_size]
            except OSError:
                out += [0, 0]
        return tuple(out)

    def changed(self) -> bool:
        """Whether the runs may differ from the last read: the store's files changed since,
        or the last read is older than :data:`FULL_REFRESH_S`."""
        return (self._files_stamp() != self._stamp
                or time.monotonic() - self._last_read >= FULL_REFRESH_S)

    def refresh(self) -> list[RunRecord]:
        """Read the runs, newest first (``runs_changed`` when they differ from the last read)."""
        store = self._open()
        stamp = self._files_stamp()  # before reading: a write during the read is seen later
        records = store.list_runs()
        self._stamp, self._last_read = stamp, time.monotonic()
        if records != self.records:
            self.records = records
            self.runs_changed.emit(records)
        return records

    def get_run(self, ref: str | int) -> RunRecord:
        """The run with this id, name or display name, as stored now."""
        return self._open().get_run(ref)

    # ---- showing a run -----------------------------------------------------------------------
    def replay(self, run_id: int, target: Callback,
               prepare: Callable[[], object] | None = None) -> int:
        """Feed the run's stored events to ``target`` in the order the run emitted them;
        returns how many. ``prepare`` runs once the events are read, before the first is
        delivered (to clear the target), so a run that cannot be read leaves it as it was."""
        events = self._open().load_events(run_id, clock=True)
        if prepare is not None:
            prepare()
        return replay(events, [target])

    def replay_before(self, run_id: int, before_seq: int, target: Callback) -> int:
        """Feed ``target`` the run's stored events numbered below ``before_seq`` (what a
        resumed run held before the session that trains now); returns how many."""
        events = [e for seq, e in self._open().iter_new_events(run_id, -1, clock=True)
                  if seq < before_seq]
        return replay(events, [target])

    def events(self, run_id: int) -> list[Any]:
        """The run's stored events, in order (a run still training: those written so far)."""
        return self._open().load_events(run_id)

    def follow(self, run_id: int, target: Callback) -> RunFollower:
        """Feed ``target`` the run's events as another process writes them (what is stored
        already at once, the rest as it comes); stops following any other run first."""
        self.stop_following()
        follower = RunFollower(self.path, run_id, target, parent=self)
        follower.fit_started.connect(self.followed_run_started)
        follower.ended.connect(self._on_follow_ended)
        follower.failed.connect(self._on_follow_failed)
        self.follower = follower
        try:
            follower.start()
        except BaseException:
            self.follower = None
            follower.deleteLater()
            raise
        return follower

    @Slot()
    def stop_following(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
            follower.deleteLater()

    @property
    def following(self) -> bool:
        return self.follower is not None and self.follower.active

    @Slot(str)
    def _on_follow_ended(self, status: str) -> None:
        label = self.follower.run_label if self.follower else "the run"
        self.stop_following()
        self.follow_ended.emit(status, label)

    @Slot(str)
    def _on_follow_failed(self, message: str) -> None:
        label = self.follower.run_label if self.follower else "the run"
        self.stop_following()
        self.follow_failed.emit(message, label)

    # ---- changing runs -----------------------------------------------------------------------
    def rename(self, run_id: int, display_name: str) -> RunRecord:
        """Show the run as ``display_name``: one line of at most :data:`MAX_DISPLAY_NAME`
        characters; empty, or the run's own name, shows its name again. Returns the run as
        stored now."""
        name = display_name.strip()
        if "\n" in name or len(name) > MAX_DISPLAY_NAME:
            raise StoreError(f"a display name is one line of at most {MAX_DISPLAY_NAME} "
                             f"characters: shorten it")
        store = self._open()
        record = store.get_run(run_id)
        store.set_display_name(record.id, "" if name == record.name else name)
        return store.get_run(record.id)

    def set_note(self, run_id: int, note: str) -> None:
        """Keep ``note`` with the run (trailing blank lines and spaces dropped)."""
        self._open().set_note(run_id, note.rstrip())

    def delete(self, run_id: int) -> Path | None:
        """Delete the run and its own folder; returns the folder removed, if any."""
        return self._open().delete_run(run_id)

    # ---- a run's settings, and resuming it ------------------------------------------------------
    def run_config(self, run_id: int) -> RunConfig:
        """The settings run ``run_id`` started with and the pins it ended with, for a new run:
        its name is cleared, so the new run gets one of its own."""
        store = self._open()
        data = load_run(store, run_id)
        try:
            cfg = RunConfig.from_dict(data.record.config, source=f"run {data.record.label}")
        except LearnDropError as exc:
            raise StoreError(f"the settings of {data.record.label} cannot be used here: "
                             f"{exc.message}") from None
        if data.record.drop_enabled:
            cfg.drop.pinned = [p for p in data.pinned_at_end()
                               if p in {u.name for u in data.units}]
        cfg.output.name = ""
        return cfg

    def resume_point(self, run_id: int) -> ResumePoint:
        """Where run ``run_id`` can continue from; a one-line reason when it cannot (raised
        as :class:`~learndrop.core.errors.CheckpointError`)."""
        rec = self._open().get_run(run_id)
        if rec.status == "running":
            raise CheckpointError(f"{rec.label} is still training: follow it instead, or "
                                  f"wait until it ends")
        if rec.status == "finished":
            raise CheckpointError(f"{rec.label} finished all its epochs: to train longer, "
                                  f"load its settings with Use these settings and raise "
                                  f"Epochs")
        folder = Path(rec.output_dir) if rec.output_dir else None
        if folder is None or not folder.is_dir():
            raise CheckpointError(f"{rec.label} has no run folder any more "
                                  f"({rec.output_dir or 'none recorded'}): start it again "
                                  f"with Use these settings")
        checkpoint, config_file = folder / "checkpoint.pt", folder / "config.toml"
        if not checkpoint.is_file() or not config_file.is_file():
            missing = "checkpoint" if not checkpoint.is_file() else "config.toml"
            raise CheckpointError(f"{rec.label} has no {missing} in {folder}: start it again "
                                  f"with Use these settings")
        done = checkpoint_epoch(load_checkpoint(checkpoint, mmap=True), checkpoint)
        if done <= 0:
            raise CheckpointError(f"{rec.label} stopped before its first epoch was complete, "
                                  f"so there is nothing to continue: start it again with Use "
                                  f"these settings")
        cfg = load_config(config_file)
        cfg.output.dir, cfg.output.name = str(folder.parent), folder.name
        if done >= cfg.train.epochs:
            raise CheckpointError(f"{rec.label} has done all its {done} epochs: load its "
                                  f"settings with Use these settings and raise Epochs")
        return ResumePoint(rec.id, rec.label, checkpoint, cfg, done)

    def claim(self, point: ResumePoint) -> ResumePoint:
        """Mark the run as continued by this window, in one transaction, so that no other
        program resumes it at the same time (refused with a one-line reason if one does)."""
        _record, before = self._open().claim_run(point.run_id)
        return dataclasses.replace(point, before=before)

    def release(self, point: ResumePoint) -> None:
        """Give the run back as it was: its continuation never started."""
        self._open().release_run(point.run_id, *point.before)

    # ---- comparing and reports ---------------------------------------------------------------
    def compare_data(self, first: int, reference: int) -> tuple[RunData, RunData]:
        """Both runs of a comparison, loaded the way the reports load them."""
        store = self._open()
        return load_run(store, first), load_run(store, reference)

    def load_runs(self, run_ids: Sequence[int]) -> list[RunData]:
        """Several runs, loaded the way the reports load them (for many runs side by side)."""
        store = self._open()
        return [load_run(store, run_id) for run_id in run_ids]

    def write_report(self, run: str | int, compare: Sequence[str | int] | None, fmt: str,
                     path: str | Path) -> Path:
        """Build the report of ``run`` (compared with ``compare``) from the store as it is now
        and write it as ``fmt`` to ``path``; returns the path written."""
        report = build_report(self._open(), run, None if compare is None else list(compare))
        return Path(export(report, fmt, path))
