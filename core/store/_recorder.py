"""Recording a run into the run store, and replaying a stored run into callbacks.

:class:`StoreRecorder` is a :class:`~learndrop.core.events.Callback`: add it to the
trainer's callbacks and every event of the run lands in the store. Hooks only append rows to
a buffer; the buffer is written in one transaction at each epoch's end, every
``flush_every_s`` seconds, every ``flush_every_n`` events, and at the end of the run, so
recording costs the training loop next to nothing (``time_spent_s`` says how much).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..environment import environment_info
from ..errors import first_line
from ..events import (
    Callback,
    CheckpointSaved,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    RestoreEvent,
    ScoreCheck,
    UserAction,
    call_hook,
    payload_hooks,
)
from ._events import EpochStart, Row, RunMessage, WallClock, rows_for
from ._journal import JournalWriter
from ._runs import RunStore, default_store_path

__all__ = ["StoreRecorder", "replay"]

log = logging.getLogger(__name__)


class StoreRecorder(Callback):
    """Writes a run's events to a :class:`RunStore`.

    ``store`` is a path, a ``RunStore`` (its path is used) or ``None`` for the default
    store. The recorder opens its own connection when the run starts and closes it at the
    end, so it works from the training thread while other threads read the store.

    A store that cannot be written never stops training: the recorder logs the problem
    once, keeps it in :attr:`error` and goes on writing the run's events to a journal in the
    run's folder (:attr:`journal`), which the next opening of the store replays into it. If
    the journal cannot be written either, :attr:`lost` says what was lost and why.
    """

    def __init__(self, store: RunStore | str | Path | None = None, *,
                 flush_every_s: float = 2.0, flush_every_n: int = 500,
                 resume_id: int | None = None) -> None:
        self.store_path: Path | None = (store.path if isinstance(store, RunStore)
                                        else Path(store) if store is not None else None)
        self.flush_every_s = flush_every_s
        self.flush_every_n = flush_every_n
        #: the stored run that this run continues (``learndrop resume``); else a new run
        self.resume_id = resume_id
        self.run_id: int | None = None
        self.run_name: str | None = None
        #: the sequence number of this session's first event: what the stored run held
        #: before it (a resumed run's earlier sessions) comes before it
        self.first_seq = 0
        self.error: str | None = None
        self.time_spent_s = 0.0
        self.events_recorded = 0
        self.flushes = 0
        self._store: RunStore | None = None
        self._buffer: list[Row] = []
        self._pending = 0
        self._seq = 0
        self._checks = 0
        self._last_flush = 0.0
        self._early: list[str] = []
        self._active = False
        self._start: FitStart | None = None
        self._begun = False
        #: the journal the run's events went to when the store could not take them
        self.journal: Path | None = None
        #: why events of this run are in neither the store nor a journal, if they are not
        self.lost: str | None = None
        self._journal: JournalWriter | None = None

    # ---- hooks -----------------------------------------------------------------------------
    def on_fit_start(self, event: FitStart) -> None:
        t0 = time.perf_counter()
        try:
            self._close()
            self._active = True
            self.error = self.lost = None
            self.journal = None
            self.run_id = self.run_name = None
            self._start, self._begun = event, False
            self._seq, self._checks = 1, 0
            self._buffer, self._pending = [], 0
            self._last_flush = time.monotonic()
            self._store = RunStore(self.store_path)
            self.store_path = self._store.path
            self.run_id, self.run_name, self._seq = self._store.begin_run(
                event, environment_info(event.device), resume_id=self.resume_id)
            self.first_seq = self._seq
            self._begun = True
            self._checks = self._store_checks()
        except Exception as exc:  # noqa: BLE001 - recording must never stop training
            self._fail(exc)
        try:
            if not self._recording:
                return
            if (self.run_name and self.run_name != event.run_name
                    and self.resume_id is None):
                self._add(RunMessage("info", f"recorded as '{self.run_name}': a run named "
                                             f"'{event.run_name}' was already in the store"))
            for message in self._early:
                self._add(RunMessage("warning", message))
            self._early = []
        finally:
            self.time_spent_s += time.perf_counter() - t0

    def on_epoch_start(self, epoch: int) -> None:
        self._record(EpochStart(epoch))

    def on_progress(self, event: Progress) -> None:
        self._record(event)

    def on_scores(self, event: ScoreCheck) -> None:
        self._record(event)

    def on_drop(self, event: DropEvent) -> None:
        self._record(event)

    def on_restore(self, event: RestoreEvent) -> None:
        self._record(event)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self._record(event, flush=True)

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        self._record(event)

    def on_user_action(self, event: UserAction) -> None:
        self._record(event)

    def on_warning(self, message: str) -> None:
        if not self._active:  # a warning found while the run was being prepared
            self._early = [*self._early[-99:], message]
            return
        self._record(RunMessage("warning", message))

    def on_info(self, message: str) -> None:
        self._record(RunMessage("info", message))

    def on_fit_end(self, event: FitEnd) -> None:
        t0 = time.perf_counter()
        try:
            if not self._recording:
                return
            if event.status == "failed" and event.message:
                self._add(RunMessage("error", event.message))
            try:
                self._flush()
                if self._journal is None:
                    assert self._store is not None and self.run_id is not None
                    self._store.end_run(self.run_id, event.status, event.message,
                                        event.summary, self._seq)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
            if self._journal is not None:
                self._journal.end(event.status, event.message, event.summary, self._seq)
            self._seq += 1
        except Exception as exc:  # noqa: BLE001
            self._journal_lost(exc)
        finally:
            self._close()
            self._active = False
            self._early = []
            self.time_spent_s += time.perf_counter() - t0

    # ---- buffering -------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what is buffered now."""
        t0 = time.perf_counter()
        try:
            self._flush()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            self.time_spent_s += time.perf_counter() - t0

    @property
    def _recording(self) -> bool:
        return self._store is not None or self._journal is not None

    def _record(self, event: Any, flush: bool = False) -> None:
        if not self._recording:
            return
        t0 = time.perf_counter()
        try:
            self._add(event)
            if (flush or self._pending >= self.flush_every_n
                    or time.monotonic() - self._last_flush >= self.flush_every_s):
                self._flush()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            self.time_spent_s += time.perf_counter() - t0

    def _add(self, event: Any) -> None:
        self._buffer.extend(rows_for(self.run_id or 0, self._seq, event, self._checks))
        if isinstance(event, ScoreCheck):
            self._checks += 1
        self._seq += 1
        self._pending += 1
        self.events_recorded += 1

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        if self._journal is not None:
            try:
                self._journal.rows(self._buffer)
            except Exception as exc:  # noqa: BLE001
                self._journal_lost(exc)
                return
        elif self._store is not None and self.run_id is not None:
            self._store.write_rows(self.run_id, self._buffer)  # kept in the buffer if it fails
        else:
            return
        self._buffer, self._pending = [], 0
        self.flushes += 1

    def _store_checks(self) -> int:
        """Checks already stored for this run (non-zero when it resumes)."""
        assert self._store is not None and self.run_id is not None
        return self._store.count_checks(self.run_id)

    def _fail(self, exc: Exception) -> None:
        """The store cannot take the run: keep its events in a journal from here on."""
        if self._journal is not None:  # already journaling: the journal failed
            self._journal_lost(exc)
            return
        if self.error is None:
            self.error = str(exc) or type(exc).__name__
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001
                pass
        if not self._active or self._start is None:
            return
        folder = Path(self._start.output_dir) if self._start.output_dir else None
        if folder is None or not folder.is_dir():
            self._journal_lost(exc, "the run has no folder to keep them in")
            return
        try:
            journal = JournalWriter(
                self.store_path or default_store_path(), folder,
                run_id=self.run_id if self._begun else None, resume_id=self.resume_id,
                seq=self._seq if self._begun else 1, checks=self._checks if self._begun else 0)
            if not self._begun:
                journal.begin(self._start, environment_info(self._start.device))
            journal.rows(self._buffer)
        except Exception as err:  # noqa: BLE001
            self._journal_lost(err)
            return
        self._journal, self.journal = journal, journal.path
        self._buffer, self._pending = [], 0
        log.warning("the run store cannot be written (%s): the run's events are kept in %s "
                    "and will be added to the store by the next learndrop command",
                    self.error, journal.path)

    def _journal_lost(self, exc: BaseException, why: str = "") -> None:
        if self.lost is None:
            self.lost = (f"the run store could not record this run ({self.error or exc}) "
                         f"and its events could not be kept beside it either "
                         f"({why or first_line(exc)})")
            log.error("%s", self.lost)
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()
        self._buffer, self._pending = [], 0

    def _close(self) -> None:
        store, self._store = self._store, None
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()
        self._buffer, self._pending = [], 0
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001
                pass


#: the hook each stored event goes to: the events' own (from the Callback's signatures),
#: and the store's record of an epoch's start
_HOOKS: dict[type, str] = {**payload_hooks(), EpochStart: "on_epoch_start"}


def replay(events: Iterable[Any], callbacks: Iterable[Callback]) -> int:
    """Feed stored events (from ``RunStore.load_events`` or ``iter_new_events``) to
    callbacks as if the run were happening now. Warnings go to ``on_warning`` and
    information lines to ``on_info``; errors are skipped (a failed run's end says it again);
    a :class:`~._events.WallClock` (events read with ``clock=True``) goes to ``on_clock``.
    Returns the number of events delivered (clocks not counted)."""
    targets = list(callbacks)
    count = 0
    for event in events:
        if isinstance(event, tuple) and len(event) == 2 and isinstance(event[0], int):
            event = event[1]
        args: tuple[Any, ...]
        if isinstance(event, RunMessage):
            if event.level not in ("warning", "info"):
                continue  # an error comes again with the run's end
            hook, args = f"on_{event.level}", (event.message,)
        elif isinstance(event, WallClock):
            call_hook(targets, "on_clock", event.time)
            continue
        elif isinstance(event, EpochStart):
            hook, args = "on_epoch_start", (event.epoch,)
        else:
            name = _HOOKS.get(type(event))
            if name is None:
                continue
            hook, args = name, (event,)
        call_hook(targets, hook, *args)
        count += 1
    return count
