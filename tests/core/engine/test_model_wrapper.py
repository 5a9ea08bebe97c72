"""``ld.model``: dropped units replaced once per drop event, only inside ``ld.model``'s own
thread; its state_dict is the model's; compiled and DDP-wrapped models."""

from __future__ import annotations

import copy
import io
import pickle
import threading
from typing import Any

import pytest
import torch
from torch import nn

from engine_nets import DATA_X, Net, batch
from learndrop.core import LearnDrop


def _setup(mode: str = "freeze", model: nn.Module | None = None, **kw: Any
           ) -> tuple[nn.Module, torch.optim.Optimizer, LearnDrop]:
    torch.manual_seed(0)
    net = model if model is not None else Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    ld = LearnDrop(net, opt, mode=mode, warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=DATA_X[:2], num_samples=32, **kw)
    return net, opt, ld


def _train(net: nn.Module, opt: torch.optim.Optimizer, ld: LearnDrop, steps: range,
           drops: dict[int, str] | None = None) -> list[float]:
    """Train ``net`` (``ld.model``, or a model without sample ids) for ``steps``."""
    losses = []
    for s in steps:
        if drops and s in drops:
            ld.drop(drops[s])
        x, y, ids = batch(s)
        out = net(x, sample_ids=ids) if net is ld.model else net(x)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ld.step()
        losses.append(loss.item())
    return losses


def test_another_thread_calling_the_model_meanwhile_gets_the_complete_network() -> None:
    inside, done = threading.Event(), threading.Event()

    class Pause(nn.Module):
        """Holds ld.model's forward (in the main thread) until the other thread is done."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if threading.current_thread() is threading.main_thread() and hold:
                inside.set()
                assert done.wait(10)
            return x

    hold = False
    model, opt, ld = _setup("skip")
    model.head.insert(0, Pause())
    model.eval()
    with torch.no_grad():
        expected = model(DATA_X)
    ld.drop("stem")
    ld.drop("block1")
    ld.drop("block2")
    got: list[torch.Tensor] = []

    def other() -> None:
        assert inside.wait(10)
        with torch.no_grad():
            got.append(model(DATA_X))
        done.set()

    hold = True
    t = threading.Thread(target=other)
    t.start()
    ld.model.eval()
    with torch.no_grad():
        scaled = ld.model(DATA_X)
    t.join(10)
    assert got and torch.equal(got[0], expected), "the complete model saw the bypassed blocks"
    assert not torch.equal(scaled, expected)  # ld.model did bypass them


def test_replacements_are_installed_once_per_drop_event_not_per_call() -> None:
    model, opt, ld = _setup("freeze")
    ld.drop("stem")
    installed = model.stem.__dict__["forward"]
    _train(ld.model, opt, ld, range(3))
    assert model.stem.__dict__["forward"] is installed
    ld.drop("block1")  # the stem's role is unchanged: its replacement stays
    assert model.stem.__dict__["forward"] is installed
    ld.restore("block1")
    ld.restore("stem")
    assert "forward" not in model.stem.__dict__
    assert "forward" not in model.block1.__dict__


def test_a_copy_or_pickle_of_the_model_while_units_are_dropped_is_the_complete_network() -> None:
    model, opt, ld = _setup("skip")
    ld.drop("stem")
    ld.drop("block1")
    plain = Net()
    plain.load_state_dict(model.state_dict())
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)),
                  torch.load(buf, weights_only=False)):
        other.eval()
        plain.eval()
        with torch.no_grad():
            assert torch.equal(other(DATA_X[:4]), plain(DATA_X[:4]))
        assert not any(isinstance(m.__dict__.get("forward"), type(ld.drops.redirects[
            model.block1])) for m in other.modules())


def test_state_dict_of_ld_model_is_the_model_s_and_loads_both_ways() -> None:
    model, opt, ld = _setup("freeze")
    _train(ld.model, opt, ld, range(2))
    sd = ld.model.state_dict()
    assert list(sd) == list(model.state_dict())
    fresh = Net()
    fresh.load_state_dict(sd)  # strict: every key matches
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, sd[k])
    other = Net()
    result = ld.model.load_state_dict(other.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.block1.conv.weight, other.block1.conv.weight)
    with pytest.raises(RuntimeError, match=r"block1\.conv\.weight"):
        ld.model.load_state_dict({k: v for k, v in sd.items() if k != "block1.conv.weight"})


def test_state_dict_of_a_compiled_ld_model_loads_back() -> None:
    model, opt, ld = _setup("freeze")
    compiled = torch.compile(ld.model, backend="eager")
    sd = compiled.state_dict()
    assert list(sd) == [f"_orig_mod.{k}" for k in model.state_dict()]
    zeros = {k: torch.zeros_like(v) for k, v in sd.items()}
    compiled.load_state_dict(zeros)
    assert not model.block1.conv.weight.detach().any()


def test_skip_and_freeze_outputs_are_unchanged_by_the_new_forward() -> None:
    """ld.model's loss equals a hand-written network that freezes and bypasses the same
    units."""
    model, opt, ld = _setup("skip")
    ld.drop("stem")
    ld.drop("block1")
    ld.model.train()
    x, y, ids = batch(0)
    out = ld.model(x, sample_ids=ids)
    with torch.no_grad():
        h = model.stem(x)
    expected = model.head(model.block3(model.block2(h)))
    assert torch.allclose(out, expected)
    assert not model.stem[0].weight.requires_grad


def test_a_compiled_model_is_unwrapped_for_its_units_and_trains() -> None:
    torch.manual_seed(0)
    net = Net()
    compiled = torch.compile(net, backend="eager")
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    ld = LearnDrop(compiled, opt, warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=DATA_X[:2])
    assert [u.name for u in ld.units] == ["stem", "block1", "block2", "block3", "head"]
    assert ld.base_model is net
    assert list(ld.model.state_dict()) == list(net.state_dict())
    _train(compiled, opt, ld, range(2))  # the compiled module itself stays the complete model
    _train(ld.model, opt, ld, range(2, 6), drops={3: "stem"})
    assert ld.dropped == ["stem"]


def _count_compiles(mode: str, where: str, drops: dict[int, str], steps: int
                    ) -> tuple[list[float], list[int]]:
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    torch.manual_seed(0)
    net = Net()
    given = torch.compile(net, backend=counter) if where == "model" else net
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    ld = LearnDrop(given, opt, mode=mode, warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=DATA_X[:2], num_samples=32)
    run = torch.compile(ld.model, backend=counter) if where == "ld" else ld.model
    losses, counts = [], []
    for s in range(steps):
        if s in drops:
            ld.drop(drops[s])
        x, y, ids = batch(s)
        loss = nn.functional.cross_entropy(run(x, sample_ids=ids), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ld.step()
        losses.append(loss.item())
        counts.append(counter.frame_count)
    return losses, counts


def _dynamo_supported() -> bool:
    try:
        import torch._dynamo
    except ImportError:
        return False
    return bool(torch._dynamo.is_dynamo_supported())


@pytest.mark.slow
@pytest.mark.skipif(not _dynamo_supported(), reason="torch.compile is not supported here")
@pytest.mark.parametrize("mode,where", [("freeze", "ld"), ("skip", "ld"), ("cache", "ld"),
                                        ("freeze", "model")])
def test_torch_compile_recompiles_once_per_drop_event(mode: str, where: str) -> None:
    """aot_eager needs no C compiler; the counts are of compiled graphs."""
    drops = {3: "stem", 6: "block1", 9: "block2"}
    compiled, counts = _count_compiles(mode, where, drops, 12)
    torch._dynamo.reset()
    eager, _ = _count_compiles(mode, "none", drops, 12)
    assert compiled == pytest.approx(eager, rel=1e-5, abs=1e-6)
    # one compile at the start, then at most one more per drop event, none between them
    assert counts[:3] == [1, 1, 1]
    assert counts == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def _init_gloo() -> None:
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


@pytest.mark.parametrize("how", ["given", "wrap"])
def test_ddp_wrapped_model_trains_on_after_drops(how: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    _init_gloo()
    try:
        torch.manual_seed(0)
        net = Net()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        settings: dict[str, Any] = dict(warmup_epochs=0, keep_last=0, threshold=0.0,
                                        example_input=DATA_X[:2])
        if how == "given":
            ld = LearnDrop(DDP(net), opt, **settings)
        else:
            ld = LearnDrop(net, opt, wrap=lambda m: DDP(m), **settings)
        assert [u.name for u in ld.units][:2] == ["stem", "block1"]
        assert list(ld.model.state_dict()) == list(net.state_dict())
        losses = _train(ld.model, opt, ld, range(8), drops={2: "stem", 4: "block1"})
        first = ld.runner.module
        ld.restore("block1")
        losses += _train(ld.model, opt, ld, range(8, 10))
        assert isinstance(ld.runner.module, DDP) and ld.runner.module is not first
    finally:
        dist.destroy_process_group()
    _, opt2, ld2 = _setup("freeze")
    expected = _train(ld2.model, opt2, ld2, range(8), drops={2: "stem", 4: "block1"})
    ld2.restore("block1")
    expected += _train(ld2.model, opt2, ld2, range(8, 10))
    assert losses == pytest.approx(expected, rel=1e-5)
