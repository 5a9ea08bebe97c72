"""Training a sweep's runs, recording them in the run store as one sweep, and resuming it.

Runs already finished for a job (found in the store by their config) are kept and not
trained again; a run that was stopped, failed or interrupted is trained again. With
``parallel`` above 1 the runs train in that many processes of their own
(``learndrop train``), each recording itself; otherwise one after another in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import config_to_toml
from ..errors import ConfigError, first_line
from ..events import Callback, FitStart
from ..store import RunRecord, RunStore, StoreRecorder
from ..training import RunControl, Trainer
from ._plan import SweepJob, SweepPlan

__all__ = ["SweepRunner", "JobState", "SweepOutcome"]

#: what a job is: waiting, training, finished (kept), or ended otherwise (failed, stopped)
JOB_STATES = ("queued", "running", "finished", "failed", "stopped")


@dataclass
class JobState:
    job: SweepJob
    state: str = "queued"
    run_name: str = ""
    message: str = ""


@dataclass
class SweepOutcome:
    sweep_id: int
    name: str
    jobs: list[JobState]
    stopped: bool = False
    failed: list[JobState] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(j.state == "finished" for j in self.jobs)


class _Link(Callback):
    """Puts the run its recorder has just created into the sweep, when the run starts."""

    def __init__(self, recorder: StoreRecorder, sweep_id: int, state: JobState) -> None:
        self.recorder, self.sweep_id, self.state = recorder, sweep_id, state

    def on_fit_start(self, event: FitStart) -> None:
        self.state.run_name = self.recorder.run_name or event.run_name
        if self.recorder.run_id is None or self.recorder.store_path is None:
            return
        try:
            with RunStore(self.recorder.store_path) as store:
                store.add_to_group(self.sweep_id, self.recorder.run_id)
        except Exception:  # noqa: BLE001 - linking never stops training; the end links again
            pass


class SweepRunner:
    """A sweep in the store (new, or one to resume) and the state of each of its runs."""

    def __init__(self, plan: SweepPlan | None, store: str | Path | None = None, *,
                 name: str | None = None, resume: str | None = None) -> None:
        with RunStore(store) as s:
            self.store_path = s.path
            if resume is not None:
                self.sweep_id, self.name, spec = s.find_sweep(resume)
                self.plan = SweepPlan.from_dict(spec)
            elif plan is None:
                raise ConfigError("a new sweep needs its plan; give resume to continue one")
            else:
                self.plan = plan
                self.name = name or (f"{plan.base.model.name}-{plan.base.data.dataset}-"
                                     f"{time.strftime('%Y%m%d-%H%M%S')}")
                self.sweep_id = s.create_sweep(self.name, plan.to_dict())
        self.states = [JobState(job) for job in self.plan.jobs()]
        self.refresh()

    # ---- the store ------------------------------------------------------------------------
    def runs(self) -> list[RunRecord]:
        """The sweep's runs in the store, oldest first."""
        with RunStore(self.store_path) as s:
            return s.group_runs(self.sweep_id)

    def finished_runs(self) -> dict[str, list[RunRecord]]:
        """The finished runs of each job key."""
        out: dict[str, list[RunRecord]] = {}
        for run in self.runs():
            key = self.plan.key_of(run.config)
            if key is not None and run.status == "finished":
                out.setdefault(key, []).append(run)
        return out

    def refresh(self) -> None:
        """Mark the jobs that have a finished run in the store."""
        done = self.finished_runs()
        for st in self.states:
            if st.job.key in done and st.state != "running":
                st.state, st.run_name = "finished", done[st.job.key][-1].name

    def left(self) -> list[JobState]:
        return [s for s in self.states if s.state != "finished"]

    # ---- training -------------------------------------------------------------------------
    def run(self, *, parallel: int = 1, control: RunControl | None = None,
            callbacks: Callable[[SweepJob], Sequence[Any]] | None = None,
            on_change: Callable[[JobState], None] | None = None) -> SweepOutcome:
        """Train every job not yet finished. ``control.stop()`` ends the sweep after the
        runs in training stop (they are kept, as stopped, and trained again on resume);
        ``on_change`` hears each job that starts or ends; ``callbacks`` gives extra callbacks
        for a run trained in this process."""
        if parallel < 1:
            raise ConfigError(f"--parallel must be at least 1, not {parallel}")
        control = control or RunControl()
        for st in self.left():
            st.state, st.message = "queued", ""
        tell = on_change or (lambda st: None)
        if parallel == 1:
            for st in self.left():
                if control.should_end:
                    break
                self._train_here(st, control, callbacks, tell)
        else:
            self._train_apart(parallel, control, tell)
        self.refresh()
        failed = [s for s in self.states if s.state == "failed"]
        return SweepOutcome(self.sweep_id, self.name, self.states, control.should_end, failed)

    def _train_here(self, st: JobState, control: RunControl,
                    callbacks: Callable[[SweepJob], Sequence[Any]] | None,
                    tell: Callable[[JobState], None]) -> None:
        cfg = st.job.config.copy()
        cfg.output.name = self._run_name(st.job)
        recorder = StoreRecorder(self.store_path)
        extra = list(callbacks(st.job)) if callbacks else []
        st.state = "running"
        tell(st)
        try:
            result = Trainer(cfg, [*extra, recorder, _Link(recorder, self.sweep_id, st)],
                             control).fit()
            st.state = "finished" if result.status == "finished" else (
                "stopped" if result.status in ("stopped", "cancelled") else "failed")
            st.message = result.message
        except Exception as exc:  # noqa: BLE001 - one run's failure does not end the sweep
            st.state, st.message = "failed", first_line(exc)
        if recorder.run_id is not None:
            self._link(recorder.run_id)
        tell(st)

    def _run_name(self, job: SweepJob) -> str:
        return f"sweep-{self.sweep_id}-{job.index + 1:03d}-{job.role}-seed{job.seed}"

    def _link(self, run_id: int) -> None:
        with RunStore(self.store_path) as s:
            s.add_to_group(self.sweep_id, run_id)

    def _train_apart(self, parallel: int, control: RunControl,
                     tell: Callable[[JobState], None]) -> None:
        queue = list(self.left())
        active: list[tuple[JobState, subprocess.Popen[bytes], float]] = []
        threads = str(max((os.cpu_count() or 1) // parallel, 1))
        signalled = False
        with tempfile.TemporaryDirectory(prefix="learndrop-sweep-") as tmp:
            while queue or active:
                if control.should_end and not signalled:
                    signalled = True
                    queue = []
                    for _, proc, _ in active:
                        proc.send_signal(signal.SIGINT)
                while queue and len(active) < parallel:
                    st = queue.pop(0)
                    active.append((st, self._start(st, Path(tmp), threads), time.time()))
                    st.state = "running"
                    tell(st)
                for item in list(active):
                    st, proc, started = item
                    if proc.poll() is None:
                        continue
                    active.remove(item)
                    self._ended(st, proc, started, Path(tmp) / f"job-{st.job.index}.err")
                    tell(st)
                time.sleep(0.2)

    def _start(self, st: JobState, tmp: Path, threads: str) -> subprocess.Popen[bytes]:
        cfg = st.job.config.copy()
        cfg.output.name = st.run_name = self._run_name(st.job)
        config = tmp / f"job-{st.job.index}.toml"
        config.write_text(config_to_toml(cfg), encoding="utf-8")
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        # its messages to a file: a pipe nobody reads while it trains could fill and block it
        with open(tmp / f"job-{st.job.index}.err", "wb") as err:
            return subprocess.Popen([sys.executable, "-m", "learndrop.core.cli", "train",
                                     "--config", str(config), "--quiet", "--store",
                                     str(self.store_path)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)

    def _ended(self, st: JobState, proc: subprocess.Popen[bytes], started: float,
               messages: Path) -> None:
        try:
            err = messages.read_text(encoding="utf-8", errors="replace")
        except OSError:
            err = ""
        run = self._find(st.run_name, started)
        if run is not None:
            self._link(run.id)
            st.run_name = run.name
            st.state = ("finished" if run.status == "finished" else
                        "stopped" if run.status in ("stopped", "cancelled") else "failed")
            st.message = run.message
        else:
            lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
            st.state = "failed"
            st.message = lines[-1] if lines else f"exit code {proc.returncode}"

    def _find(self, name: str, since: float) -> RunRecord | None:
        with RunStore(self.store_path) as s:
            for run in s.list_runs():
                if (run.name == name or run.name.startswith(name + "-")) and \
                        run.created >= since - 1.0:
                    return run
        return None

