"""``learndrop train --nproc N``: N processes on this machine, one data-parallel run.

The launcher starts ``python -m learndrop.core.cli ARGV`` N times with the environment that
``torchrun`` would give them (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) and hosts the rendezvous store itself, on a free port of 127.0.0.1, as
torchrun's agent does. Then it watches them:

* Ctrl-C (SIGINT) or SIGTERM reaches the launcher alone (the ranks run in a session of
  their own) and is passed on to every rank once: they agree to stop after the same batch,
  rank 0 checkpoints, and the run is kept as ``stopped``. A second Ctrl-C ends them at once.
* A rank that ends with an error gives the others :data:`GRACE_S` seconds to notice (their
  next collective fails, and rank 0 records the run as failed with the reason), then the
  ones left are killed: a dead rank never leaves the others hanging. The launcher exits
  with the first failing rank's exit code. Bad input (exit code 2) is the same for every
  rank: rank 0 says it, in one line, and the others and the launcher say nothing more.
* The ranks die with the launcher (``PR_SET_PDEATHSIG`` on Linux, else a watchdog thread),
  so killing it, even with SIGKILL, leaves no orphan; the run is then ``interrupted`` in
  the store and ``learndrop resume RUN`` continues it from its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["launch", "watch_launcher", "run_processes", "LAUNCHER_PID", "GRACE_S"]

#: the environment variable that tells a rank which process started it
LAUNCHER_PID = "LEARNDROP_LAUNCHER_PID"
#: seconds the other ranks get to end by themselves once one has failed
GRACE_S = 15.0
_PR_SET_PDEATHSIG = 1
#: the exit code of bad input (the same for every rank: only rank 0 reports it)
BAD_INPUT = 2


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``learndrop ARGV`` as ``nproc`` ranks of one data-parallel run; their exit
    status (0 when every rank ended well)."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, None, True, wait_for_workers=False)
    base = dict(os.environ)
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(store.port),
                WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc), GROUP_RANK="0",
                TORCHELASTIC_USE_AGENT_STORE="True", **{LAUNCHER_PID: str(os.getpid())})
    base.setdefault("OMP_NUM_THREADS", str(max((os.cpu_count() or 1) // nproc, 1)))
    procs: list[subprocess.Popen[bytes]] = []
    signals: list[int] = []
    previous = _catch(signals)
    try:
        for rank in range(nproc):
            env = dict(base, RANK=str(rank), LOCAL_RANK=str(rank))
            procs.append(subprocess.Popen([sys.executable, "-m", "learndrop.core.cli", *argv],
                                          env=env, start_new_session=True))
        return _watch(procs, signals)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        _restore(previous)
        del store


def _catch(signals: list[int]) -> dict[int, Any]:
    def note(signum: int, frame: Any) -> None:
        signals.append(signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, note)
        except ValueError:  # not the main thread: the caller forwards signals itself
            pass
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _watch(procs: list[subprocess.Popen[bytes]], signals: list[int]) -> int:
    failed: tuple[int, int] | None = None  # (rank, exit code) of the first failure
    deadline = float("inf")
    passed = 0
    while True:
        while passed < len(signals):  # each Ctrl-C/SIGTERM once to every rank
            passed += 1
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
        codes = [p.poll() for p in procs]
        if all(c is not None for c in codes):
            break
        if failed is None:
            for rank, code in enumerate(codes):
                if code not in (None, 0):
                    failed = (rank, code)
                    deadline = time.monotonic() + GRACE_S
                    left = [r for r, c in enumerate(codes) if c is None]
                    if code != BAD_INPUT:  # bad input: rank 0 finds the same and says it
                        print(f"learndrop: rank {rank} of {len(procs)} ended with "
                              f"{_how(code)}; ending rank(s) {', '.join(map(str, left))}",
                              file=sys.stderr, flush=True)
                    break
        elif time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.1)
    if failed is None:
        failed = next(((r, c) for r, c in enumerate(codes) if c), None)
    if failed is None:
        return 0
    code = failed[1] or 1
    return code if code > 0 else 1


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def watch_launcher() -> None:
    """In a rank started by :func:`launch`: end this process when the launcher ends."""
    pid = os.environ.get(LAUNCHER_PID)
    if not pid or not pid.isdigit():
        return
    launcher = int(pid)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != launcher:  # it ended before the line above
        os._exit(1)

    def watchdog() -> None:
        while os.getppid() == launcher:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watchdog, name="launcher-watchdog", daemon=True).start()


def run_processes(cfg: Any, callbacks: Sequence[Any], control: Any, *,
                  store: str | Path | None = None, poll_s: float = 0.5) -> Any:
    """Train ``cfg`` as a ``learndrop train`` of ``cfg.train.nproc`` processes and feed the
    run's events, as rank 0 records them in the run store ``store``, to ``callbacks`` (in
    this thread), as if it trained here; returns its ``FitResult``. ``control``: stop and
    cancel end the processes as Ctrl-C does (the run is kept, as stopped); pause and unit
    requests cannot reach them."""
    import tempfile

    from ..config import config_to_toml
    from ..errors import TrainingError
    from ..events import FitEnd
    from ..store import RunStore, StoreError, replay
    from ..training import FitResult

    cfg = cfg.copy()
    base = cfg.output.name or (f"{cfg.model.name}-{cfg.data.dataset}-"
                               f"{time.strftime('%Y%m%d-%H%M%S')}")
    cfg.output.name = base
    with RunStore(store) as s:
        store_path = s.path
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="learndrop-launch-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(config_to_toml(cfg), encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "learndrop.core.cli", "train",
                                 "--config", str(config), "--quiet", "--store",
                                 str(store_path)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.extend(proc.stderr or ()),
                                  name="launch-stderr", daemon=True)
        reader.start()
        run_id: int | None = None
        cursor = -1
        end: FitEnd | None = None
        signalled = False
        try:
            with RunStore(store_path) as s:
                while True:
                    done = proc.poll() is not None
                    if control.should_end and not signalled:
                        proc.send_signal(signal.SIGINT)
                        signalled = True
                    if run_id is None:
                        run_id = _find_run(s, base, started)
                    if run_id is not None:
                        try:
                            events = list(s.iter_new_events(run_id, cursor))
                        except StoreError:  # busy: a writer holds the lock
                            events = []
                        if events:
                            cursor = events[-1][0]
                            replay(events, callbacks)
                            end = next((e for _, e in reversed(events)
                                        if isinstance(e, FitEnd)), end)
                    if done or end is not None:
                        break
                    time.sleep(poll_s)
                if end is None and run_id is not None:  # written just before the exit
                    events = list(s.iter_new_events(run_id, cursor))
                    replay(events, callbacks)
                    end = next((e for _, e in reversed(events) if isinstance(e, FitEnd)),
                               None)
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            reader.join(5)
    if end is None:
        lines = [ln.strip() for ln in errors if ln.strip()]
        raise TrainingError(lines[-1] if lines else f"the {cfg.train.nproc} training "
                            f"processes ended with exit code {proc.returncode}")
    return FitResult(end.status, end.message, end.summary)


def _find_run(store: Any, base: str, since: float) -> int | None:
    """The run ``base`` (or ``base-2``, ... when the name was taken) started since then."""
    for run in store.list_runs():
        named = run.name == base or run.name.startswith(base + "-")
        if named and run.created >= since - 1.0:
            return int(run.id)
    return None
