"""A sweep trained for the app: the runs of a :class:`~learndrop.core.sweep.SweepRunner` in a
thread of their own (or in processes with ``parallel`` above 1), each job's start and end told
to the GUI thread, stoppable, and its report written.

``job_changed(JobState)`` when a run of the sweep starts or ends; ``finished(SweepOutcome)``
when the sweep has ended (all done, or stopped); ``failed(message)`` when it could not go on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from learndrop.core.config import RunConfig
from learndrop.core.errors import ConfigError, LearnDropError, first_line
from learndrop.core.report import build_sweep_report, export_sweep
from learndrop.core.store import RunStore
from learndrop.core.sweep import (
    JobState,
    SweepPlan,
    SweepRunner,
    format_sweep_table,
    parse_values,
    sweep_rows,
)
from learndrop.core.training import RunControl, check_config

__all__ = ["SweepJob", "plan_sweep"]


def plan_sweep(base: RunConfig, varied: Sequence[tuple[str, str]], seeds: int,
               baseline: bool) -> SweepPlan:
    """The sweep of ``base`` with each (setting path, values separated by commas) of
    ``varied``; a one-line :class:`~learndrop.core.errors.ConfigError` says what to fix."""
    axes = []
    for path, text in varied:
        path = path.strip()
        if not path and not text.strip():
            continue
        if not path:
            raise ConfigError(f"choose the setting that takes the values {text}")
        axes.append((path, parse_values(path, text, "sweep")))
    base = check_config(base.copy())
    base.output.name = ""
    plan = SweepPlan(base, tuple(axes), seeds, baseline)
    for job in plan.jobs()[:1]:
        check_config(job.config)
    return plan


class SweepJob(QObject):
    """One sweep, trained in the background once :meth:`start` is called."""

    job_changed = Signal(object)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, plan: SweepPlan, store: str | Path, *, name: str | None = None,
                 parallel: int = 1, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = SweepRunner(plan, store, name=name or None)
        self.parallel = parallel
        self.control = RunControl()
        self.outcome: Any = None
        self.error = ""
        self._thread: threading.Thread | None = None

    @property
    def states(self) -> list[JobState]:
        return self.runner.states

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="learndrop-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current batch of the runs in training (they are kept)."""
        self.control.stop()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the sweep's thread to end; whether it has."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.running

    def _run(self) -> None:
        try:
            self.outcome = self.runner.run(parallel=self.parallel, control=self.control,
                                           on_change=self.job_changed.emit)
        except LearnDropError as exc:
            self.error = exc.message
            self.failed.emit(exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - the dialog says it in one line
            self.error = first_line(exc)
            self.failed.emit(self.error)
            return
        self.finished.emit(self.outcome)

    def table_text(self) -> str:
        """The sweep's table as the command line prints it."""
        return format_sweep_table(self.runner.plan, sweep_rows(self.runner.plan,
                                                               self.runner.runs()))

    def run_ids(self) -> list[int]:
        return [r.id for r in self.runner.runs()]

    def write_report(self, path: str | Path) -> Path:
        """The sweep's report as HTML or PDF (by the file's suffix)."""
        with RunStore(self.runner.store_path) as store:
            report = build_sweep_report(store, self.runner.sweep_id)
        return export_sweep(report, path)
