"""Data-parallel pieces that need no second process: the fixed shards of cache mode, and what
a run with ``train.nproc`` above 1 does outside a data-parallel launch."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import HookRecorder, RunCli, tiny_config
from learndrop.core import Trainer
from learndrop.core.training._distributed import FixedShardSampler, distributed_environment


def test_fixed_shards_cover_the_data_keep_their_samples_and_reshuffle() -> None:
    shards = [FixedShardSampler(10, rank, 3, seed=5) for rank in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to equal length
    assert set().union(*(set(s) for s in shards)) == set(range(10))
    first = [list(s) for s in shards]
    for s in shards:
        s.set_epoch(1)
    second = [list(s) for s in shards]
    assert [sorted(a) for a in first] == [sorted(b) for b in second]  # the same samples
    assert first != second  # in another order


def test_nproc_outside_a_launch_warns_and_trains_alone(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed_environment()
    rec = HookRecorder()
    cfg = tiny_config(tmp_path, **{"train.epochs": 1, "train.nproc": 2})
    result = Trainer(cfg, [rec]).fit()
    assert result.status == "finished" and result.summary.world_size == 1
    warnings = [p for name, p in rec.calls if name == "on_warning"]
    assert any("trains alone" in w for w in warnings)
    start = next(p for name, p in rec.calls if name == "on_fit_start")
    assert start.config["train"]["nproc"] == 1


def test_bench_refuses_several_processes(run_cli: RunCli) -> None:
    code, _, err = run_cli(["bench", "--preset", "quick-digits", "--nproc", "2"])
    assert code == 2
    assert "scripts/bench_ddp.py" in err
