"""Kill training with SIGKILL at random moments and check that nothing is lost.

Each trial starts ``learndrop train`` on a tiny config as a separate process, kills it with
``kill -9`` after a random delay, then checks that:

- the run store still opens and the run shows ``interrupted``;
- no checkpoint, config or summary under its real name is half-written or unreadable;
- ``learndrop resume RUN`` continues from the last checkpoint into the same folder and the same
  stored run, finishes, and drops the same units at the same epochs and steps as an
  uninterrupted reference run with the same seed (same final accuracy and weights too);
- when the kill came before the first checkpoint, ``resume`` says so in one line (a fresh
  run is the remedy; those trials are counted separately).

Usage::

    python scripts/kill_trials.py [--trials 20] [--seed 0] [--workdir DIR] [--keep]

A third of the trials are killed at a uniformly random moment of the whole run, the rest at
a random moment of a random epoch after the first. Prints a table and exits 1 when any trial
lost data, printed a traceback or resumed inexactly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EPOCHS = 16
#: every digit (45 steps an epoch), a score check every 7 steps (so checks and drops fall
#: inside epochs, not only at the checkpoints' epoch ends) and drops spread out
TINY = ["--dataset", "digits", "--model", "small_cnn", "--image-size", "16", "--batch-size",
        "32", "--epochs", str(EPOCHS), "--threshold", "0.5", "--patience", "2",
        "--warmup-epochs", "1",
        "--drop.check_every", "7", "--drop.window", "3", "--drop.trend_tolerance", "10",
        "--seed", "3"]

REAL_FILES = ("checkpoint.pt", "stopped.pt", "final.pt", "config.toml", "summary.json")


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, LEARNDROP_HOME=str(home), PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")  # several trials share a small machine
    return env


def cli(args: list[str], home: Path, *, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "learndrop.core.cli", *args],
                          capture_output=True, text=True, env=_env(home), timeout=timeout)


def start_train(store: Path, out: Path, home: Path, log: Path) -> subprocess.Popen:
    fh = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "learndrop.core.cli", "train", *TINY, "--store", str(store),
         "--output-dir", str(out), "--json"], stdout=fh, stderr=subprocess.STDOUT,
        env=_env(home))


def last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def stored_run(store: Path) -> tuple[str | None, dict[str, Any]]:
    """(status, {'name', 'drops', 'epochs'}) of the store's only run; (None, {}) if none."""
    from learndrop.core.events import DropEvent, EpochEnd
    from learndrop.core.store import RunStore

    with RunStore(store) as st:
        runs = st.list_runs()
        if not runs:
            return None, {}
        run = runs[0]
        events = st.load_events(run.name)
    drops = [(e.unit, e.step, round(e.epoch, 6)) for e in events if isinstance(e, DropEvent)]
    epochs = [(e.epoch, e.step) for e in events if isinstance(e, EpochEnd)]
    return run.status, {"name": run.name, "drops": drops, "epochs": epochs, "runs": len(runs)}


def damaged_files(folder: Path) -> list[str]:
    """Files under their real names that cannot be read back."""
    from learndrop.core.config import load_config
    from learndrop.core.errors import LearnDropError
    from learndrop.core.training import load_checkpoint

    bad: list[str] = []
    for path in folder.rglob("*"):
        try:
            if path.name.endswith(".pt"):
                load_checkpoint(path)
            elif path.name == "config.toml":
                load_config(path)
            elif path.name == "summary.json":
                json.loads(path.read_text())
        except (LearnDropError, ValueError, OSError):
            bad.append(str(path))
    return bad


def temp_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*.tmp")]


def final_weights_equal(a: Path, b: Path, atol: float = 1e-5) -> bool:
    import torch

    wa = torch.load(a, weights_only=True)["model"]
    wb = torch.load(b, weights_only=True)["model"]
    return wa.keys() == wb.keys() and all(
        torch.allclose(wa[k].float(), wb[k].float(), atol=atol) for k in wa)


@dataclass
class Reference:
    summary: dict[str, Any]
    stored: dict[str, Any]
    wall_s: float
    first_checkpoint_s: float
    final: Path


def reference_run(work: Path) -> Reference:
    """One uninterrupted run of the same config and seed."""
    store, out, home = work / "ref.sqlite", work / "ref", work / "home"
    shutil.rmtree(out, ignore_errors=True)
    store.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = start_train(store, out, home, work / "ref.log")
    first = 0.0
    while proc.poll() is None:
        if not first and list(out.glob("*/checkpoint.pt")):
            first = time.monotonic() - t0
        time.sleep(0.05)
    wall = time.monotonic() - t0
    text = (work / "ref.log").read_text()
    summary = last_json(text)
    if proc.returncode != 0 or summary is None:
        raise SystemExit(f"the reference run failed (exit {proc.returncode}):\n{text[-2000:]}")
    status, stored = stored_run(store)
    assert status == "finished", status
    return Reference(summary, stored, wall, first or wall / 2,
                     Path(summary["output_dir"]) / "final.pt")


@dataclass
class Trial:
    index: int
    delay_s: float
    killed: bool = False
    recorded: bool = False
    status_after_kill: str | None = None
    no_checkpoint: bool = False
    no_checkpoint_message_ok: bool = False
    resumed: bool = False
    exact: bool = False
    tracebacks: int = 0
    damaged: list[str] = field(default_factory=list)
    temps_after_kill: int = 0
    temps_after_resume: int = 0
    store_ok: bool = True
    where: str = "any moment"
    note: str = ""


def run_trial(i: int, work: Path, ref: Reference, rng: random.Random,
              in_epoch: bool) -> Trial:
    """``in_epoch``: kill at a random moment of a random epoch after the first (found from
    the process's own progress lines, so a busier or quieter machine changes nothing);
    otherwise at a uniformly random moment of the reference run's duration."""
    tdir = work / f"trial{i:02d}"
    shutil.rmtree(tdir, ignore_errors=True)
    tdir.mkdir(parents=True)
    store, out, home = tdir / "store.sqlite", tdir / "out", tdir / "home"
    delay = rng.uniform(0.3, 0.95 * ref.wall_s)
    epoch = rng.randint(1, EPOCHS - 1)
    trial = Trial(i, delay)
    t0 = time.monotonic()
    log = tdir / "train.log"
    proc = start_train(store, out, home, log)
    if in_epoch:
        mark = f"epoch {epoch}/{EPOCHS}:"
        while proc.poll() is None and mark not in log.read_text():
            time.sleep(0.01)
        epoch_s = (ref.wall_s - ref.first_checkpoint_s) / (EPOCHS - 1)
        delay = time.monotonic() - t0 + rng.uniform(0.0, epoch_s)
        trial.delay_s = delay
        trial.where = f"epoch {epoch + 1}/{EPOCHS}"
    while proc.poll() is None and time.monotonic() - t0 < delay:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        trial.killed = True
    proc.wait()
    log = (tdir / "train.log").read_text()
    trial.tracebacks += log.count("Traceback")
    if not trial.killed:
        trial.note = f"finished before the kill (exit {proc.returncode})"
        return trial
    trial.temps_after_kill = len(temp_files(tdir))
    trial.damaged = damaged_files(tdir)
    try:
        status, stored = stored_run(store)
    except Exception as exc:  # noqa: BLE001 - a store that no longer opens is a finding
        trial.store_ok = False
        trial.note = f"store does not open: {exc}"
        return trial
    if status is None:
        trial.no_checkpoint = True  # killed before the run was even recorded
        trial.no_checkpoint_message_ok = True
        trial.note = "killed before the run was recorded; a fresh run is the remedy"
        return trial
    trial.recorded = True
    trial.status_after_kill = status
    if status == "finished":  # killed while the interpreter was exiting
        trial.killed = False
        trial.note = "killed after the run had finished"
        return trial
    res = cli(["resume", stored["name"], "--store", str(store), "--json"], home)
    trial.tracebacks += res.stderr.count("Traceback") + res.stdout.count("Traceback")
    err_lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("learndrop:")]
    if res.returncode == 2 and ("no checkpoint yet" in res.stderr
                                or "before its first epoch" in res.stderr):
        trial.no_checkpoint = True
        trial.no_checkpoint_message_ok = len(err_lines) == 1
        trial.note = err_lines[0][:80] if err_lines else res.stderr[-80:]
        return trial
    if res.returncode != 0:
        trial.note = f"resume exit {res.returncode}: {res.stderr.strip()[-160:]}"
        return trial
    trial.resumed = True
    summary = last_json(res.stdout) or {}
    status2, stored2 = stored_run(store)
    trial.temps_after_resume = len(temp_files(tdir))
    trial.damaged += damaged_files(tdir)
    checks = {
        "status": status2 == "finished",
        "one stored run": stored2.get("runs") == 1,
        "same folder": Path(summary.get("output_dir", "")).parent == out,
        "drops (summary)": summary.get("dropped") == ref.summary["dropped"],
        "drops (store)": stored2.get("drops") == ref.stored["drops"],
        "epochs (store)": stored2.get("epochs") == ref.stored["epochs"],
        "accuracy": summary.get("final_accuracy") == ref.summary["final_accuracy"],
        "weights": final_weights_equal(Path(summary["output_dir"]) / "final.pt", ref.final),
    }
    trial.exact = all(checks.values())
    if not trial.exact:
        trial.note = "differs: " + ", ".join(k for k, ok in checks.items() if not ok)
    return trial


def table(trials: list[Trial]) -> str:
    killed = [t for t in trials if t.killed]
    rows = [
        ("trials", len(trials)),
        ("killed with SIGKILL while running", len(killed)),
        ("run had finished before the kill came", len(trials) - len(killed)),
        ("store opened after the kill", sum(t.store_ok for t in killed)),
        ("run recorded before the kill", sum(t.recorded for t in killed)),
        ("  ... shown as 'interrupted'",
         sum(t.status_after_kill == "interrupted" for t in killed)),
        ("resumed with 'learndrop resume'", sum(t.resumed for t in killed)),
        ("  ... resumed exactly (same drops, epochs, steps, accuracy, weights)",
         sum(t.exact for t in killed)),
        ("killed before the first checkpoint (fresh run is the remedy)",
         sum(t.no_checkpoint for t in killed)),
        ("  ... resume said so in one line",
         sum(t.no_checkpoint_message_ok for t in killed)),
        ("tracebacks seen", sum(t.tracebacks for t in trials)),
        ("half-written or unreadable files under real names",
         sum(len(t.damaged) for t in trials)),
        ("temporary files left by the kill (removed on resume)",
         sum(t.temps_after_kill for t in trials)),
        ("temporary files left after resume", sum(t.temps_after_resume for t in trials)),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>4}" for name, value in rows)


def failures(trials: list[Trial]) -> list[Trial]:
    return [t for t in trials if t.killed and (
        not t.store_ok or t.tracebacks or t.damaged or t.temps_after_resume
        or (t.recorded and t.status_after_kill != "interrupted")
        or (t.resumed and not t.exact)
        or (t.no_checkpoint and not t.no_checkpoint_message_ok)
        or not (t.resumed or t.no_checkpoint))] + [t for t in trials if t.tracebacks]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the trials' folders")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="learndrop-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    ref = reference_run(work)
    print(f"reference run: {ref.wall_s:.1f} s, first checkpoint after "
          f"{ref.first_checkpoint_s:.1f} s, drops "
          f"{[(d['unit'], d['step']) for d in ref.summary['dropped']]}", flush=True)
    trials: list[Trial] = []
    for i in range(args.trials):
        t = run_trial(i, work, ref, rng, in_epoch=i % 3 != 0)
        trials.append(t)
        what = ("exact" if t.exact else "RESUMED, NOT EXACT" if t.resumed
                else "no checkpoint yet" if t.no_checkpoint else "-")
        print(f"trial {i:2d}: kill after {t.delay_s:5.2f} s ({t.where:<10}) status "
              f"{t.status_after_kill!s:<12} {what:<18} {t.note}", flush=True)
    print()
    print(table(trials))
    print(f"\ntotal time {time.monotonic() - t0:.0f} s; folders in {work}"
          + ("" if args.keep else " (removed)"))
    bad = failures(trials)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
