"""Two machines rehearsed on one: ``torchrun --nnodes 2 --nproc-per-node 1`` started twice on
this machine with the c10d rendezvous, each "node" with its own home, store and output folder,
training through the real command line (gloo on CPU).

One run is recorded (by the node that got rank 0), both nodes build the same DDP wrappers
(PyTorch logs each construction with the bytes it all-reduces: the same drops at the same
steps), and killing one node (its launcher and its worker, as a machine that goes away) ends
the other with a clear error within seconds. Every process a test starts is killed on the way
out; every wait has a limit."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
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
TIMEOUT = 180
ERROR_WITHIN_S = 40  # the run's collective timeout is 20 s; a lost peer is usually seen at once


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _kill_node(node: subprocess.Popen[str]) -> None:
    """The launcher and its workers (torchrun starts each in a session of its own)."""
    for pid in [*_children(node.pid), node.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[str]]]:
    started: dict[str, subprocess.Popen[str]] = {}
    yield started
    for node in started.values():
        _kill_node(node)
        node.wait(10)


def _start(tmp_path: Path, nodes: dict[str, subprocess.Popen[str]], port: int,
           *flags: str) -> None:
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        env = dict(os.environ, LEARNDROP_HOME=str(folder / "home"), OMP_NUM_THREADS="1",
                   LEARNDROP_DIST_TIMEOUT="20", TORCH_DISTRIBUTED_DEBUG="INFO",
                   TORCH_CPP_LOG_LEVEL="INFO")
        for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)
        nodes[name] = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
             "--nproc-per-node", "1", "--rdzv-backend", "c10d",
             "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "rehearsal",
             "--max-restarts", "0", "-m", "learndrop", "train", *TINY, *flags,
             "--output-dir", str(folder / "runs"), "--run-name", "two",
             "--store", str(folder / "store.sqlite")],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs(store: Path) -> list[tuple[str, str, str]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT name, status, summary FROM runs ORDER BY id").fetchall()


def _ddp_bytes(stderr: str) -> list[int]:
    """The gradient bytes of each DDP wrapper this node built, in order (PyTorch's log)."""
    return [int(b) for b in re.findall(r"total_parameter_size_bytes: (\d+)", stderr)]


def test_two_nodes_train_one_run_with_the_same_drops(tmp_path: Path,
                                                     nodes: dict[str, subprocess.Popen[str]]
                                                     ) -> None:
    _start(tmp_path, nodes, _free_port(), "--epochs", "4", "--json")
    out: dict[str, tuple[str, str]] = {}
    for name, node in nodes.items():
        out[name] = node.communicate(timeout=TIMEOUT)
        assert node.returncode == 0, out[name][1][-3000:]
    recorded = {name: _runs(tmp_path / name / "store.sqlite") for name in nodes}
    main = next(name for name in nodes if recorded[name])  # the node that got rank 0
    other = "b" if main == "a" else "a"
    assert [(n, s) for n, s, _ in recorded[main]] == [("two", "finished")]
    assert recorded[other] == [] and not (tmp_path / other / "runs").exists()
    summary = json.loads(out[main][0].strip().splitlines()[-1])
    assert out[other][0].strip() == ""  # rank 1 reports nothing
    assert summary["world_size"] == 2 and summary["dropped"]
    savings = summary["savings"]
    full = savings["full_allreduce_bytes_per_step_now"]
    end = savings["allreduce_bytes_per_step_now"]
    assert full > end > 0
    # both nodes rebuilt their DDP wrapper at the same drops: the same registered bytes
    built = {name: _ddp_bytes(out[name][1]) for name in nodes}
    assert built[main] == built[other]
    assert built[main][0] == full and built[main][-1] == end and len(built[main]) >= 2


def test_killing_one_node_ends_the_other_with_a_clear_error(
        tmp_path: Path, nodes: dict[str, subprocess.Popen[str]]) -> None:
    _start(tmp_path, nodes, _free_port(), "--epochs", "300", "--quiet")
    deadline = time.monotonic() + TIMEOUT
    main = None
    while main is None:
        assert time.monotonic() < deadline, "no checkpoint from either node"
        assert all(n.poll() is None for n in nodes.values()), "a node ended early"
        main = next((name for name in nodes
                     if (tmp_path / name / "runs" / "two" / "checkpoint.pt").exists()), None)
        time.sleep(0.1)
    other = "b" if main == "a" else "a"
    _kill_node(nodes[other])  # the machine of rank 1 goes away
    killed_at = time.monotonic()
    _, err = nodes[main].communicate(timeout=ERROR_WITHIN_S + 60)
    took = time.monotonic() - killed_at
    assert nodes[main].returncode != 0
    assert took < ERROR_WITHIN_S, f"the surviving node took {took:.0f} s to end"
    assert "another process of this data-parallel run ended or cannot be reached" in err
    [(_, status, _)] = _runs(tmp_path / main / "store.sqlite")  # the one run, ended
    assert status in ("failed", "interrupted"), status
