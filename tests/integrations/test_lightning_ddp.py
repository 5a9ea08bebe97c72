"""LearnDropCallback with Lightning's DDP strategies: real two-process runs (gloo on CPU) as
users start them (``strategy="ddp"``: Lightning starts the script again as rank 1;
``"ddp_spawn"``: it spawns both ranks), a one-process DDP run in this process, and the
strategies that are refused."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from learndrop.core import ConfigError  # noqa: E402
from learndrop.integrations.lightning import LearnDropCallback  # noqa: E402

RUNS = Path(__file__).resolve().parents[1] / "lightning_runs.py"
TIMEOUT = 240
FULL, NO_STEM, HEAD_ONLY = 8304, 7344, 144  # gradient bytes the DDP wrapper all-reduces


def _run(out: Path, *args: str) -> dict[int, dict[str, Any]]:
    """Run ``tests/lightning_runs.py`` (both ranks) to its end; each rank's record."""
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, str(RUNS), str(out), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its ranks too end with the test
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, log[-3000:]
    return {r: torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)}


def _same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_every_rank_drops_the_same_units_and_a_checkpoint_resumes_them(tmp_path: Path) -> None:
    full = _run(tmp_path / "full", "--strategy", "ddp", "--epochs", "2")
    drops = [("stem", 3, "policy"), ("block2", 5, "manual"), ("block1", 5, "policy"),
             ("block3", 5, "policy")]
    for rank, rec in full.items():
        assert rec["world_size"] == 2
        assert rec["drops"] == drops, rank  # rank 0 decided, rank 1 followed
        # Lightning's DDP wrapper: built anew at the first batch and after each drop step,
        # and then it registers only the parameters that still train
        assert rec["ddp_bytes"] == [(0, FULL, True), (1, FULL, False), (2, FULL, False),
                                    (3, NO_STEM, True), (4, NO_STEM, False),
                                    (5, HEAD_ONLY, True), (6, HEAD_ONLY, False),
                                    (7, HEAD_ONLY, False)]
        assert rec["savings"]["allreduce_timeline"] == [[0, FULL], [3, NO_STEM], [5, HEAD_ONLY]]
        assert rec["logged"]["learndrop/allreduce_bytes_per_step"] == HEAD_ONLY
    assert full[0]["warnings"] == []
    assert full[1]["warnings"] == ["1 request(s) made on rank 1 ignored: only rank 0's "
                                   "requests apply to every rank"]
    assert _same_params(full[0]["params"], full[1]["params"])
    with open(next((tmp_path / "full").glob("lightning_logs/*/metrics.csv")), newline="") as f:
        logged = [float(r["learndrop/allreduce_bytes_per_step"]) for r in csv.DictReader(f)]
    assert logged == [FULL] * 3 + [NO_STEM] * 2 + [HEAD_ONLY] * 3  # one row a step

    # one epoch spawned, then the rest resumed from its checkpoint under ddp
    first = _run(tmp_path / "first", "--strategy", "ddp_spawn", "--epochs", "1")
    assert [r["drops"] for r in first.values()] == [drops[:1]] * 2
    resumed = _run(tmp_path / "resumed", "--strategy", "ddp", "--epochs", "2", "--resume",
                   str(tmp_path / "first" / "last.ckpt"))
    for rank, rec in resumed.items():
        assert rec["restored"] == ["stem"], rank
        assert rec["drops"] == drops[1:] and rec["dropped"] == full[rank]["dropped"]
        assert rec["ddp_bytes"][0] == (4, NO_STEM, True)  # rebuilt without the stem at once
        assert rec["ddp_bytes"][1:] == full[rank]["ddp_bytes"][5:]
        assert rec["savings"]["allreduce_timeline"] == full[rank]["savings"][
            "allreduce_timeline"]
        assert _same_params(rec["params"], full[rank]["params"])  # the same training


@pytest.mark.slow
def test_cache_mode_under_ddp_serves_each_rank_its_own_samples(tmp_path: Path) -> None:
    """Each rank trains on a fixed share (FixedShardSampler), which its cache fills in the
    epoch after the last drop and serves in the next."""
    runs = _run(tmp_path / "cache", "--strategy", "ddp", "--epochs", "4", "--mode", "cache")
    for rank, rec in runs.items():
        assert rec["dropped"] == ["stem", "block2", "block1", "block3"], rank
        savings = rec["savings"]
        assert savings["cache_location"] == "host" and not savings["cache_disabled_reason"]
        assert rec["verifications"] >= 1  # served, after checking it against the prefix
        assert rec["ddp_bytes"][-1] == (15, HEAD_ONLY, False)
    assert _same_params(runs[0]["params"], runs[1]["params"])


@pytest.mark.parametrize("strategy", ["FSDPStrategy", "DeepSpeedStrategy"])
def test_sharding_strategies_are_refused_with_what_works(strategy: str) -> None:
    cls = getattr(pl.strategies, strategy)
    instance = cls() if strategy == "FSDPStrategy" else cls.__new__(cls)  # needs deepspeed
    with pytest.raises(ConfigError, match=f"does not train with {strategy}.*strategy='ddp'"):
        LearnDropCallback().setup(SimpleNamespace(strategy=instance), None, "fit")  # type: ignore[arg-type]
