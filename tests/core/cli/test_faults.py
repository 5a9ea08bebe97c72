"""Faults: a training process killed with SIGKILL or stopped with SIGTERM loses nothing.

Each test starts ``learndrop train`` as a real process (importing torch takes a few
seconds), so they are few; ``scripts/kill_trials.py`` runs many more at random moments.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import learndrop.core
from factories import RunCli, one_line, tiny_flags
from learndrop.core.cli import main
from learndrop.core.events import DropEvent, EpochEnd
from learndrop.core.store import RunStore
from learndrop.core.training import load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TINY = tiny_flags()


def _start(store: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "learndrop.core.cli", "train", *TINY,
                             "--store", str(store), "--output-dir", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def _wait_for(proc: subprocess.Popen[str], ready: Any, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training ended before the moment to signal it:\n{err[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("training did not get there in time")
        time.sleep(0.005)


def _has_checkpoint(out: Path) -> Any:
    return lambda: bool(list(out.glob("*/checkpoint.pt")))


def _recorded(store: Path) -> Any:
    def ready() -> bool:
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
                return bool(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        except sqlite3.Error:
            return False
    return ready


def _stored(store: Path) -> tuple[str, str, list[tuple[str, int, float]], list[int]]:
    with RunStore(store) as st:
        [run] = st.list_runs()
        events = st.load_events(run.name)
    drops = [(e.unit, e.step, e.epoch) for e in events if isinstance(e, DropEvent)]
    epochs = [e.epoch for e in events if isinstance(e, EpochEnd)]
    return run.name, run.status, drops, epochs


def _no_half_files(folder: Path) -> None:
    assert not list(folder.rglob("*.tmp")), list(folder.rglob("*.tmp"))
    for pt in folder.rglob("*.pt"):
        load_checkpoint(pt)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, _one_thread: None) -> dict[str, Any]:
    """The same config run without interruption (in this process: no torch import)."""
    tmp = tmp_path_factory.mktemp("reference")
    store = tmp / "store.sqlite"
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert main(["train", *TINY, "--store", str(store), "--output-dir", str(tmp / "out"),
                     "--quiet", "--json"]) == 0
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    _, status, drops, epochs = _stored(store)
    assert status == "finished" and drops
    [folder] = (tmp / "out").iterdir()
    return {"drops": drops, "epochs": epochs, "final": folder / "final.pt"}


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.12])
def test_sigkill_after_a_checkpoint_then_resume_is_exact(
        delay: float, tmp_path: Path, reference: dict[str, Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    store, out = tmp_path / "store.sqlite", tmp_path / "out"
    proc = _start(store, out)
    _wait_for(proc, _has_checkpoint(out))
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL and "Traceback" not in err
    [folder] = out.iterdir()
    name, status, _, _ = _stored(store)
    assert status == "interrupted"
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] >= 1
    assert not (folder / "final.pt").exists()

    assert main(["resume", name[:14], "--store", str(store), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(summary["output_dir"]) == folder and summary["status"] == "finished"
    name2, status, drops, epochs = _stored(store)  # the same stored run, finished
    assert (name2, status) == (name, "finished")
    assert drops == reference["drops"] and epochs == reference["epochs"] == [0, 1, 2, 3]
    a = torch.load(reference["final"], weights_only=True)["model"]
    b = torch.load(folder / "final.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    _no_half_files(tmp_path)


@pytest.mark.slow
def test_sigkill_before_the_first_checkpoint(tmp_path: Path, run_cli: RunCli) -> None:
    store, out = tmp_path / "store.sqlite", tmp_path / "out"
    # checkpoints only at the end of a run far longer than the wait: killed once it is
    # recorded, it has none for sure, however slow or fast the machine
    proc = _start(store, out, "--output.checkpoint_every", "0", "--epochs", "40")
    _wait_for(proc, _recorded(store))
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL and "Traceback" not in err
    assert not _has_checkpoint(out)()
    name, status, _, _ = _stored(store)
    assert status == "interrupted"
    code, _, err = run_cli(["resume", name, "--store", str(store)])
    assert code == 2
    line = one_line(err)
    assert "no checkpoint yet" in line and "start it again" in line
    _no_half_files(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_cleanly_and_keeps_the_checkpoint(
        sig: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, out = tmp_path / "store.sqlite", tmp_path / "out"
    proc = _start(store, out, "--epochs", "40")  # long enough to be running when told to stop
    _wait_for(proc, _has_checkpoint(out))
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopping after this batch" in err and "Traceback" not in err
    assert "status          stopped" in stdout
    [folder] = out.iterdir()
    name, status, _, epochs = _stored(store)
    assert status == "stopped"
    done = load_checkpoint(folder / "checkpoint.pt")["epoch"]
    assert 1 <= done < 40 and epochs == list(range(len(epochs)))
    assert load_checkpoint(folder / "stopped.pt")["model"]
    _no_half_files(tmp_path)
    # and it continues from there, into the same run
    assert main(["resume", name, "--store", str(store), "--epochs", str(done + 1),
                 "--quiet"]) == 0
    _, status, _, epochs = _stored(store)
    assert status == "finished" and epochs == list(range(done + 1))


_SLOW_WRITER = """
import sys, time, types
root = sys.argv[1]
for name, path in (("learndrop", []), ("learndrop.core", [root])):  # skip the heavy __init__
    mod = types.ModuleType(name); mod.__path__ = path; sys.modules[name] = mod
from learndrop.core.files import atomic_write
def write(fh):
    for i in range(1000):
        fh.write(b"new data " * 1000); fh.flush()
        if i == 10:
            print("writing", flush=True)
        time.sleep(0.01)
atomic_write(sys.argv[2], write)
"""


@pytest.mark.slow
def test_a_kill_while_writing_never_leaves_half_a_file(tmp_path: Path) -> None:
    from learndrop.core.files import atomic_write_bytes, remove_stale_temps

    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"the old, complete file")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER,
                             str(Path(learndrop.core.__file__).parent), str(target)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"the old, complete file"
    temps = list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # the half file, not the real one
    assert remove_stale_temps(tmp_path, ("checkpoint.pt",)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_killed_after_the_last_checkpoint_resume_completes_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Training was done but the process died before writing its final files."""
    store, out = tmp_path / "store.sqlite", tmp_path / "out"
    assert main(["train", *TINY, "--epochs", "2", "--store", str(store), "--output-dir",
                 str(out), "--quiet", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = Path(first["output_dir"])
    (folder / "final.pt").unlink()
    (folder / "summary.json").unlink()
    with sqlite3.connect(store) as conn:  # as a SIGKILL right after the checkpoint leaves it
        conn.execute("UPDATE runs SET status = 'interrupted', summary = '{}'")
    name, status, drops, epochs = _stored(store)
    assert status == "interrupted"
    assert main(["resume", name, "--store", str(store), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["final_accuracy"] == first["final_accuracy"]
    assert summary["dropped"] == first["dropped"] and summary["epochs"] == 2
    assert _stored(store) == (name, "finished", drops, epochs)
    assert (folder / "final.pt").is_file() and (folder / "summary.json").is_file()
