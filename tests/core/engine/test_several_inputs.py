"""Models with more than one input: ``ld.model(*args, **kwargs)`` in every mode, FLOPs
measured on all of them, and an example input of several tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learndrop.core import LearnDrop

X = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(6))
Z = torch.randn(16, 5, generator=torch.Generator().manual_seed(7))
Y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(8))


def _block(cin: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())


class TwoInputs(nn.Module):
    """An image and a side vector (forward(x, z))."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.l1, self.l2 = _block(3), _block(8), _block(8)
        self.side = nn.Linear(5, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, z: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        h = self.l2(self.l1(self.stem(x))).mean((2, 3))
        return self.head(h + scale * self.side(z))


class DictInput(nn.Module):
    """One dict input ({"img": ..., "aux": ...})."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TwoInputs()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.inner(batch["img"], batch["aux"])


@pytest.mark.parametrize("mode", ["freeze", "skip", "cache"])
def test_a_model_of_two_inputs_trains_in_every_mode_and_stays_exact(mode: str) -> None:
    torch.manual_seed(0)
    net = TwoInputs()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    ld = LearnDrop(net, opt, mode=mode, warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=(X[:2], Z[:2]), example_kwargs={"scale": 0.5},
                   num_samples=16)
    side = next(u for u in ld.units if "side" in u.module_names)
    # the side input's layer (with the head, one unit) is measured on the second input
    assert side.forward_flops == 2 * 5 * 8 + 2 * 8 * 3
    ld.drop("stem")
    ld.drop("l1")
    for epoch in range(3):
        for b in range(2):
            ids = torch.arange(b * 8, (b + 1) * 8)
            ld.model.train()
            with torch.no_grad():
                state = {k: v.clone() for k, v in net.state_dict().items()}
                expected = net(X[ids], Z[ids], scale=0.5)
                net.load_state_dict(state)
            out = ld.model(X[ids], Z[ids], scale=0.5, sample_ids=ids)
            assert torch.allclose(out, expected, rtol=1e-2, atol=1e-3), (epoch, b)
            loss = nn.functional.cross_entropy(out, Y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            ld.step()
        ld.end_epoch()
    assert not ld.cache_disabled_reason


def test_a_dict_input_is_measured_on_first_call_and_trains() -> None:
    torch.manual_seed(0)
    net = DictInput()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    ld = LearnDrop(net, opt, warmup_epochs=0, units=["inner.stem", "inner.l1", "inner.l2",
                                                     "inner.side", "inner.head"])
    batch = {"img": X[:8], "aux": Z[:8]}
    loss = nn.functional.cross_entropy(ld.model(batch), Y[:8])
    loss.backward()
    opt.step()
    ld.step()
    assert ld.total_forward_flops > 0 and ld.unit("inner.side").forward_flops == 80
    ld.drop("inner.stem")
    assert ld.model(batch).shape == (8, 3)
