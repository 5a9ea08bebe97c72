"""LearnDrop(ddp=True) on two CPU processes (gloo), each on its own data: the same drops at the
same step on both ranks, the same weights, frozen parameters that stay put, and the gradient
all-reduce volume falling with each drop (checked against DistributedDataParallel's own
count). Every run is bounded (join timeout) and its processes are killed on the way out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from distributed_runs import engine_resume, engine_run, run_ranks
from learndrop.core import ConfigError, LearnDrop


def test_ddp_needs_an_initialised_process_group() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="init_process_group"):
        LearnDrop(model, torch.optim.SGD(model.parameters(), lr=0.1), ddp=True)
    with pytest.raises(ConfigError, match="init_process_group"):
        LearnDrop(model, None, ddp="outside")  # a wrapper built by the caller (Lightning's)
    with pytest.raises(ConfigError, match="ddp must be True, False, 'outside' or a dict"):
        LearnDrop(model, None, ddp="yes")


def _load(folder: Path, name: str) -> list[dict[str, Any]]:
    return [torch.load(folder / f"{name}{r}.pt", weights_only=False) for r in (0, 1)]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_ranks_drop_the_same_units_at_the_same_step(tmp_path: Path) -> None:
    assert run_ranks(engine_run, 2, str(tmp_path), "freeze", 12, timeout=180) == [0, 0]
    r0, r1 = _load(tmp_path, "rank")
    assert r0["drops"] == r1["drops"]
    drops = {unit: (step, reason) for unit, step, reason in r0["drops"]}
    assert drops["block2"] == (5, "manual")  # requested on rank 0 alone, applied on both
    assert drops["block1"][0] > 5  # pinned by rank 0's request until step 5
    assert set(drops) == {"stem", "block1", "block2", "block3"}
    assert "stem" not in [u for u, s, _ in r0["drops"] if s == 5]  # rank 1's request ignored
    assert any("rank 1 ignored" in w for w in r1["warnings"])
    assert not r0["warnings"]
    assert _same_weights(r0["weights"], r1["weights"])
    assert r0["unchanged"] and all(r0["unchanged"].values())  # dropped means frozen
    # bytes all-reduced per step: what each step's DDP reducer holds (its own count), the
    # engine's figure after each step (once the step's drops are applied: the next step's)
    used = [b for _, b in r0["ddp_bytes"]]
    per_step = [b for _, b in r0["bytes"]]
    assert used[1:] == per_step[:-1] and r0["bytes"] == r1["bytes"]
    assert per_step == sorted(per_step, reverse=True)
    assert used[0] == per_step[0] > per_step[4] > per_step[-1] > 0
    s = r0["savings"]
    assert s["world_size"] == 2
    assert s["full_allreduce_bytes_per_step_now"] == per_step[0]
    assert s["allreduce_bytes_per_step_now"] == per_step[-1]
    assert s["allreduce_timeline"][0] == [0, per_step[0]]
    assert [t[0] for t in s["allreduce_timeline"][1:]] == sorted({st for _, st, _ in r0["drops"]})
    spent = sum(used)
    assert s["allreduce_bytes_saved_total"] == pytest.approx(1 - spent / (12 * per_step[0]))

    # both ranks resume from rank 0's state and weights, and go on data-parallel
    assert run_ranks(engine_resume, 2, str(tmp_path), 4, timeout=180) == [0, 0]
    q0, q1 = _load(tmp_path, "resumed")
    assert q0["dropped"] == q1["dropped"] == [u for u, _, _ in r0["drops"]]
    assert _same_weights(q0["weights"], q1["weights"])
    assert q0["savings"]["allreduce_timeline"] == s["allreduce_timeline"]
    assert q0["savings"]["allreduce_bytes_per_step_now"] == per_step[-1]
    for k in ("stem.0.weight", "block2.0.weight"):  # still frozen after the resume
        assert torch.equal(q0["weights"][k], r0["weights"][k])


@pytest.mark.slow
def test_cache_mode_caches_each_ranks_own_samples(tmp_path: Path) -> None:
    assert run_ranks(engine_run, 2, str(tmp_path), "cache", 12, timeout=180) == [0, 0]
    r0, r1 = _load(tmp_path, "rank")
    assert r0["drops"] == r1["drops"]
    assert _same_weights(r0["weights"], r1["weights"])
    assert r0["savings"]["cache_location"] == r1["savings"]["cache_location"] == "host"
    assert all(r0["unchanged"].values()) and all(r1["unchanged"].values())
