"""Data-parallel test runs: N processes on this machine (gloo on CPU), each started with
:func:`start_ranks`, which always ends them (join timeout, then kill).

The functions run in spawned processes, so they live in this importable module (``tests/`` is
on pytest's path, and spawned children get the parent's ``sys.path``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["start_ranks", "run_ranks", "engine_run"]


@contextmanager
def start_ranks(target: Callable[..., None], world: int, *args: Any
                ) -> Iterator[list[mp.process.BaseProcess]]:
    """Start ``target(rank, world, port, *args)`` in ``world`` spawned processes that meet
    through a TCP store this process hosts; every one is killed on the way out."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, None, True, wait_for_workers=False)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank_main, args=(target, rank, world, store.port, *args),
                         daemon=True)
             for rank in range(world)]
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(10)
        del store


def _rank_main(target: Callable[..., None], *args: Any) -> None:
    """Run one rank, then end the process at once: its results are saved and its process
    group destroyed, and the interpreter's teardown can still abort (SIGABRT, "terminate
    called without an active exception") while gloo's threads let go of their last tensors,
    which would read as a failed rank."""
    import sys
    import traceback

    code = 0
    try:
        target(*args)
    except BaseException:  # noqa: BLE001 - reported, then the rank's exit code says it
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_ranks(target: Callable[..., None], world: int, *args: Any, timeout: float = 120.0
              ) -> list[int | None]:
    """Run ``target`` on ``world`` ranks to the end (at most ``timeout`` seconds in all);
    the exit codes, ``None`` for a process that had to be killed."""
    import time

    with start_ranks(target, world, *args) as procs:
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(deadline - time.monotonic(), 0.1))
        return [p.exitcode if not p.is_alive() else None for p in procs]


def _init(rank: int, world: int, port: int) -> None:
    import datetime

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, None, False,
                          timeout=datetime.timedelta(seconds=60))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))


def _tiny_net() -> Any:
    from torch import nn

    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = block(3, 8)
            self.block1 = block(8, 8)
            self.block2 = block(8, 8)
            self.block3 = block(8, 8)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

        def forward(self, x: Any) -> Any:
            return self.head(self.block3(self.block2(self.block1(self.stem(x)))))

        def learndrop_units(self) -> list[tuple[str, list[str]]]:
            return [(n, [n]) for n in ("stem", "block1", "block2", "block3", "head")]

    return Net()


def engine_run(rank: int, world: int, port: int, out: str, mode: str, steps: int) -> None:
    """A LearnDrop(ddp=True) loop on this rank's own data: writes what the test compares to
    ``out/rank{rank}.pt``. Every unit settles at every check (steps 3, 6, ...); rank 0
    alone pins block1 (applied at step 2), then unpins it and drops block2 by hand (step 5);
    rank 1's own request is ignored. So: stem drops at 3 (the prefix stops at the pinned
    block1), block2 at 5 (manual), block1 and block3 at 6."""
    import torch
    import torch.distributed as dist
    from torch import nn

    from learndrop.core.engine import LearnDrop
    from learndrop.core.events import Callback

    _init(rank, world, port)
    torch.manual_seed(0)  # the same initial weights on every rank
    model = _tiny_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    drops: list[tuple[str, int, str]] = []
    warnings: list[str] = []

    class Record(Callback):
        def on_drop(self, event: Any) -> None:
            drops.append((event.unit, event.step, event.reason))

        def on_warning(self, message: str) -> None:
            warnings.append(message)

    ld = LearnDrop(model, opt, ddp=True, mode=mode, threshold=1.0, patience=1,
                   warmup_epochs=0, keep_last=0, check_every=3, num_samples=64 * world,
                   window=2, trend_tolerance=10.0, settle="tolerance",
                   callbacks=[Record()])
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own samples
    x_all = torch.randn(64, 3, 8, 8, generator=g)
    y_all = torch.randint(0, 4, (64,), generator=g)
    bytes_log: list[tuple[int, int]] = []
    frozen: dict[str, torch.Tensor] = {}
    ddp_bytes: list[tuple[int, int]] = []
    for step in range(steps):
        if rank == 0 and step == 1:
            ld.request("pin", "block1")
        if rank == 0 and step == 4:
            ld.request("unpin", "block1")
            ld.request("drop", "block2")
        if rank == 1 and step == 4:
            ld.request("drop", "stem")  # ignored: only rank 0's requests apply
        i = (step * 16) % 64
        idx = torch.arange(i, i + 16) + 64 * rank
        out_ = ld.model(x_all[i:i + 16], sample_ids=idx)
        module = ld.distributed.module if ld.distributed else None  # this step's DDP
        data = module._get_ddp_logging_data() if module is not None else {}
        ddp_bytes.append((step + 1, int(data.get("total_parameter_size_bytes", 0))))
        loss = nn.functional.cross_entropy(out_, y_all[i:i + 16])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ld.step()
        bytes_log.append((step + 1, ld.savings()["allreduce_bytes_per_step_now"]))
        for name in ld.dropped:
            if name not in frozen:
                frozen[name] = torch.cat([p.detach().flatten().clone()
                                          for p in ld.unit(name).parameters()])
    still = {name: torch.equal(value, torch.cat([p.detach().flatten()
                                                 for p in ld.unit(name).parameters()]))
             for name, value in frozen.items()}
    torch.save({"drops": drops, "weights": {k: v.clone() for k, v in model.state_dict().items()},
                "savings": ld.savings(), "bytes": bytes_log, "ddp_bytes": ddp_bytes,
                "unchanged": still, "warnings": warnings, "state": ld.state_dict(),
                "pinned": [u.name for u in ld.units if ld.is_pinned(u.name)]},
               Path(out) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def engine_resume(rank: int, world: int, port: int, out: str, steps: int) -> None:
    """Every rank builds the model anew, loads rank 0's saved drop state and weights from
    ``out/rank0.pt``, and trains ``steps`` more steps data-parallel."""
    import torch
    import torch.distributed as dist
    from torch import nn

    from learndrop.core.engine import LearnDrop

    _init(rank, world, port)
    saved = torch.load(Path(out) / "rank0.pt", weights_only=False)
    torch.manual_seed(1)  # other initial weights: the loaded ones must win
    model = _tiny_net()
    model.load_state_dict(saved["weights"])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ld = LearnDrop(model, opt, ddp=True, threshold=1.0, patience=1, warmup_epochs=0,
                   keep_last=0, check_every=0)
    ld.load_state_dict(saved["state"])
    g = torch.Generator().manual_seed(200 + rank)
    for _ in range(steps):
        x = torch.randn(16, 3, 8, 8, generator=g)
        y = torch.randint(0, 4, (16,), generator=g)
        loss = nn.functional.cross_entropy(ld.model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ld.step()
    torch.save({"dropped": list(ld.dropped), "weights": model.state_dict(),
                "savings": ld.savings()}, Path(out) / f"resumed{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover - a manual check: python tests/distributed_runs.py
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(run_ranks(engine_run, 2, tmp, sys.argv[1] if len(sys.argv) > 1 else "freeze", 12))
        print(os.listdir(tmp))
