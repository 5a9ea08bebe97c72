"""Holding the engine wrong is said plainly: bad sample ids, callbacks without hooks, a
second LearnDrop on a dropped model, the wrong optimizer, steps without optimizer steps, and
the order of loading a resumed state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine_nets import DATA_X, DATA_Y, Net
from learndrop.core import Callback, ConfigError, LearnDrop
from learndrop.core.engine import LearnDropWarning


def _cache_run(ids_of: object = None) -> LearnDrop:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    ld = LearnDrop(net, opt, mode="cache", warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=DATA_X[:2], num_samples=32)
    ld.drop("stem")
    ld.drop("block1")
    return ld


def _step(ld: LearnDrop, ids: object, size: int = 8) -> None:
    out = ld.model(DATA_X[:size], sample_ids=ids)
    loss = nn.functional.cross_entropy(out, DATA_Y[:size])
    assert ld.optimizer is not None
    ld.optimizer.zero_grad()
    loss.backward()
    ld.optimizer.step()
    ld.step()


@pytest.mark.parametrize("ids,words", [
    (torch.tensor([-1, 0, 1, 2, 3, 4, 5, 6]), "got -1"),
    (torch.arange(30, 38), "0 to 31; got 37"),
    (torch.linspace(0, 7, 8), "whole numbers"),
    ("abc", "sample_ids must be"),
])
def test_bad_sample_ids_are_refused_naming_them(ids: object, words: str) -> None:
    ld = _cache_run()
    with pytest.raises(ValueError, match="sample_ids") as info:
        _step(ld, ids)
    assert words in str(info.value)


def test_sample_ids_as_a_list_or_a_numpy_array_are_taken() -> None:
    ld = _cache_run()
    _step(ld, list(range(8)))
    _step(ld, np.arange(8, 16))
    _step(ld, torch.arange(16, 24))
    assert ld.caches.activations.covers(torch.arange(24))


def test_a_callback_without_every_hook_is_refused_with_what_it_lacks() -> None:
    class OnlyDrops:
        def on_drop(self, event: object) -> None: ...

    net = Net()
    with pytest.raises(TypeError, match="on_scores.*subclass learndrop.core.Callback"):
        LearnDrop(net, callbacks=[OnlyDrops()])
    ld = LearnDrop(net)
    with pytest.raises(TypeError, match="subclass"):
        ld.add_callback(OnlyDrops())  # type: ignore[arg-type]
    ld.add_callback(Callback())


def test_a_second_learndrop_on_a_model_with_drops_is_refused() -> None:
    net = Net()
    first = LearnDrop(net, torch.optim.SGD(net.parameters(), lr=0.1))
    first.drop("stem")
    with pytest.raises(ConfigError, match="another LearnDrop has units of this model "
                                          "dropped \\(stem\\)"):
        LearnDrop(net, torch.optim.SGD(net.parameters(), lr=0.1))
    first.restore("stem")
    second = LearnDrop(net, torch.optim.SGD(net.parameters(), lr=0.1))
    second.drop("stem")
    second.restore("stem")
    assert all(p.requires_grad for p in net.stem.parameters())


def test_an_optimizer_for_another_model_is_refused() -> None:
    net, other = Net(), Net()
    with pytest.raises(ConfigError, match="none of this model's parameters"):
        LearnDrop(net, torch.optim.SGD(other.parameters(), lr=0.1))


def test_steps_without_optimizer_steps_are_said_once() -> None:
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ld = LearnDrop(net, opt)
    with pytest.warns(LearnDropWarning, match="call ld.step\\(\\) after optimizer.step") as seen:
        for _ in range(3):
            ld.model(DATA_X[:4])
            ld.step()
            ld.end_epoch()
    assert sum("after optimizer.step" in str(w.message) for w in seen) == 1


def test_loading_the_optimizer_before_the_drop_state_says_which_order_works() -> None:
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    ld = LearnDrop(net, opt)
    ld.drop("stem")
    saved_opt, saved_ld = opt.state_dict(), ld.state_dict()
    torch.manual_seed(1)
    net2 = Net()
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9)
    ld2 = LearnDrop(net2, opt2)
    with pytest.raises(ValueError, match="load the drop state first"):
        opt2.load_state_dict(saved_opt)
    ld2.load_state_dict(saved_ld)
    opt2.load_state_dict(saved_opt)  # the right order
    assert ld2.dropped == ["stem"]
