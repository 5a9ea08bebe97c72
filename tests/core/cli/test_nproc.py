"""``learndrop train --nproc 2``: two CPU processes (gloo) through the real command line.

One run in the store with the world size recorded, the all-reduce volume falling after drops,
a resume after the launcher was killed with SIGKILL, a clean stop on Ctrl-C, and a rank that
dies ending the run with a clear error instead of a hang. Every command has a timeout and
every process a test starts is killed on the way out."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import tiny_flags

pytestmark = pytest.mark.slow

TINY = tiny_flags(**{"data.limit": 128, "train.batch_size": 16, "train.log_every": 1})
TIMEOUT = 240


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, LEARNDROP_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1",
               LEARNDROP_DIST_TIMEOUT="60")
    env.pop("WORLD_SIZE", None)
    return env


def _cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "learndrop", *argv]


def _ranks_of(launcher: int) -> list[int]:
    """The pids of the processes ``launcher`` started (read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LEARNDROP_LAUNCHER_PID={launcher}".encode() in env:
            out.append(int(entry.name))
    return out


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _ranks_of(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Launchers a test starts; they and their ranks are killed at its end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        ranks = _ranks_of(p.pid)
        if p.poll() is None:
            p.kill()
        p.wait(10)
        for pid in ranks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_for(check: object, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _runs(store: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT name, status, summary FROM runs ORDER BY id").fetchall()


def test_nproc_2_trains_one_run_recorded_by_rank_0(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    out = tmp_path / "runs"
    r = subprocess.run(_cmd("train", "--nproc", "2", *TINY, "--epochs", "4",
                            "--output-dir", str(out), "--run-name", "dp", "--store",
                            str(store), "--json"),
                       capture_output=True, text=True, timeout=TIMEOUT, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("status          finished") == 1  # rank 0 alone reports
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2
    assert "2 processes (gloo)" in summary["device"]
    assert summary["dropped"], "the tiny run drops units from its second epoch on"
    savings = summary["savings"]
    full = savings["full_allreduce_bytes_per_step_now"]
    end = savings["allreduce_bytes_per_step_now"]
    assert full > end > 0
    assert 0 < savings["allreduce_bytes_saved_total"] < 1
    assert "all-reduced per step" in r.stdout
    runs = _runs(store)
    assert [(name, status) for name, status, _ in runs] == [("dp", "finished")]
    assert json.loads(runs[0][2])["world_size"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["dp"]  # one run folder
    assert "nproc = 2" in (out / "dp" / "config.toml").read_text()
    with sqlite3.connect(store) as conn:
        saved = conn.execute("SELECT allreduce_bytes_per_step_now FROM savings ORDER BY seq"
                             ).fetchall()
    per_epoch = [b for (b,) in saved]
    assert per_epoch[0] == full and per_epoch[-1] == end


def test_resume_after_the_launcher_is_killed(tmp_path: Path,
                                             started: list[subprocess.Popen[bytes]]) -> None:
    store = tmp_path / "store.sqlite"
    out = tmp_path / "runs"
    env = _env(tmp_path)
    launcher = subprocess.Popen(
        _cmd("train", "--nproc", "2", *TINY, "--epochs", "40", "--output-dir", str(out),
             "--run-name", "killed", "--store", str(store), "--quiet"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(launcher)
    _wait_for(lambda: (out / "killed" / "checkpoint.pt").exists(), "the first checkpoint")
    ranks = _ranks_of(launcher.pid)
    assert len(ranks) == 2
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(10)
    # the ranks die with their launcher
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and _running(pid)
                              for pid in ranks), "the ranks to end", timeout=30)
    r = subprocess.run(_cmd("resume", "killed", "--store", str(store), "--json"),
                       capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["epochs"] == 40
    assert summary["world_size"] == 2
    assert [(name, status) for name, status, _ in _runs(store)] == [("killed", "finished")]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_every_rank_and_a_dead_rank_ends_the_run(
        tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> None:
    store = tmp_path / "store.sqlite"
    out = tmp_path / "runs"
    env = _env(tmp_path)
    flags = [*TINY, "--epochs", "200", "--output-dir", str(out), "--store", str(store),
             "--quiet"]
    # Ctrl-C: every rank stops after the same batch, rank 0 keeps a checkpoint
    stopped = subprocess.Popen(_cmd("train", "--nproc", "2", *flags, "--run-name", "stop"),
                               env=env, stderr=subprocess.PIPE, text=True)
    started.append(stopped)  # type: ignore[arg-type]
    _wait_for(lambda: (out / "stop" / "checkpoint.pt").exists(), "the first checkpoint")
    stopped.send_signal(signal.SIGINT)
    _, err = stopped.communicate(timeout=120)
    assert stopped.returncode == 0, err
    assert err.count("stopping after this batch") == 1, err  # said by rank 0 alone
    assert ("stop", "stopped") in [(n, s) for n, s, _ in _runs(store)]
    assert (out / "stop" / "stopped.pt").exists()

    # a rank killed: the others end with a clear error, the run is failed, nothing hangs
    dying = subprocess.Popen(_cmd("train", "--nproc", "2", *flags, "--run-name", "dies"),
                             env=env, stderr=subprocess.PIPE, text=True)
    started.append(dying)  # type: ignore[arg-type]
    _wait_for(lambda: (out / "dies" / "checkpoint.pt").exists(), "the first checkpoint")
    rank1 = _rank_pid(dying.pid, 1)
    assert rank1 is not None
    os.kill(rank1, signal.SIGKILL)
    _, err = dying.communicate(timeout=120)
    assert dying.returncode != 0
    assert "rank 1 of 2 ended with signal SIGKILL" in err
    runs = {n: (s, json.loads(summary or "{}")) for n, s, summary in _runs(store)}
    status, summary = runs["dies"]
    assert status in ("failed", "interrupted"), status
    if status == "failed":
        assert "another process of this data-parallel run" in summary.get("error", "")


def test_bad_data_under_nproc_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Every rank finds the same bad input; rank 0 alone says it (images of 0x0 pixels)."""
    from factories import one_line, write_idx_set

    write_idx_set(tmp_path / "mnist", side=0)
    flags = tiny_flags(**{"data.dataset": "mnist", "data.root": str(tmp_path / "mnist")})
    proc = subprocess.run(_cmd("train", "--nproc", "2", *flags, "--no-store", "--quiet",
                               "--output-dir", str(tmp_path / "runs")),
                          env=_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)
    line = one_line(proc.stderr)
    assert proc.returncode == 2 and "0x0 pixels" in line
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte") in line


def test_run_processes_feeds_a_callback_like_a_run_trained_here(tmp_path: Path,
                                                                store_path: Path) -> None:
    """What the app does for a run of several processes: the run's events reach the
    callbacks through the store, and the result is the run's own."""
    from factories import HookRecorder, tiny_config
    from learndrop.core.cli import run_processes
    from learndrop.core.training import RunControl

    cfg = tiny_config(tmp_path / "runs", **{"data.limit": 128, "train.batch_size": 16,
                                            "train.nproc": 2, "output.name": "app-dp"})
    rec = HookRecorder()
    result = run_processes(cfg, [rec], RunControl(), store=store_path, poll_s=0.1)
    assert result.status == "finished"
    assert result.summary.world_size == 2
    names = [name for name, _ in rec.calls]
    assert names[0] == "on_fit_start" and names[-1] == "on_fit_end"
    assert names.count("on_epoch_end") == 4
    assert "on_drop" in names


def test_torchrun_runs_the_same_as_nproc(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    out = tmp_path / "runs"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--standalone", "-m", "learndrop", "train", *TINY, "--epochs", "2",
         "--output-dir", str(out), "--run-name", "tr", "--store", str(store), "--json"],
        capture_output=True, text=True, timeout=TIMEOUT, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["status"] == "finished"
    assert [(name, status) for name, status, _ in _runs(store)] == [("tr", "finished")]
    assert sorted(p.name for p in out.iterdir()) == ["tr"]
