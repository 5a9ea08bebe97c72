"""Tiny CPU networks and data shared by the engine tests (importable from any test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from learndrop.core import Callback, LearnDrop

DATA_X = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
DATA_Y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(2))


class Block(nn.Module):
    """A residual block: its output is its input plus a branch."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class ConvBnRelu(nn.Module):
    """A plain conv-BN-ReLU block whose output has its input's shape: not residual, so it
    must never be skipped."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    """stem, block1, block2, block3, head; ``middle`` replaces block2."""

    def __init__(self, ch: int = 8, classes: int = 4, middle: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(ch), nn.ReLU())
        self.block1 = Block(ch)
        self.block2 = middle if middle is not None else Block(ch)
        self.block3 = Block(ch)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block3(self.block2(self.block1(self.stem(x)))))


def conv8() -> nn.Module:
    """A convolution of 8 channels to 8 and its BatchNorm."""
    return nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h.mean((2, 3)))


class LongSkip(nn.Module):
    """``a = l1(x); c = l3(l2(a)); out = head(c + a)``: l1's output is read twice."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3, self.head = conv8(), conv8(), conv8(), Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.l1(x)
        return self.head(self.l3(self.l2(a)) + a)


class Chain(nn.Module):
    """Units in sequence: cache mode serves it."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3, self.head = conv8(), conv8(), conv8(), Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l3(self.l2(self.l1(x))))


def batch(step: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs, labels and sample indices of training step ``step`` (epochs of
    ``32 // size`` steps, always in the same order)."""
    per_epoch = 32 // size
    ids = torch.arange((step % per_epoch) * size, (step % per_epoch + 1) * size)
    return DATA_X[ids], DATA_Y[ids], ids


def plain_loop(mode: str, data: Callable[[int], torch.Tensor], epochs: int, *,
               with_ids: bool = True, callbacks: tuple[Callback, ...] = (),
               make: Callable[[], nn.Module] = Net, drop: tuple[str, ...] = ("stem", "block1"),
               autocast: bool = False, batch_size: int = 8) -> tuple[LearnDrop, list[float]]:
    """A plain training loop over the 32 samples of ``data(epoch)`` in fixed batches, with
    ``drop``'s units dropped by hand before it starts; returns the engine and every step's
    loss."""
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    example = data(0)[:2]
    ld = LearnDrop(net, opt, mode=mode, warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=example, num_samples=32, callbacks=callbacks)
    for name in drop:
        ld.drop(name)
    losses = []
    for epoch in range(epochs):
        x_all = data(epoch)
        for b in range(32 // batch_size):
            ids = torch.arange(b * batch_size, (b + 1) * batch_size)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out = ld.model(x_all[ids], sample_ids=ids if with_ids else None)
            loss = nn.functional.cross_entropy(out.float(), DATA_Y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            ld.step()
            losses.append(loss.item())
        ld.end_epoch()
    return ld, losses


def train_with_gaps(ld: LearnDrop, net: nn.Module, opt: torch.optim.Optimizer,
                    data: torch.Tensor, labels: torch.Tensor, epochs: int, *,
                    batch_size: int = 8,
                    out_of: Callable[[Any], torch.Tensor] = lambda o: o) -> list[float]:
    """Train ``ld`` (over ``net``) on ``data`` in fixed batches with sample ids. Before each
    step the complete model is called directly on the same batch (its statistics put back,
    the same random draws as the step's), and the gap between ``ld.model``'s output and it,
    relative to its scale, is returned, one per step."""
    gaps = []
    for _ in range(epochs):
        for b in range(len(data) // batch_size):
            ids = torch.arange(b * batch_size, (b + 1) * batch_size)
            ld.model.train()  # dropped modules stay in eval mode
            state = {k: v.clone() for k, v in net.state_dict().items()}
            torch.manual_seed(b)  # the same dropout draws in both calls
            with torch.no_grad():  # the complete model, called directly
                expected = out_of(net(data[ids]))
            net.load_state_dict(state)  # the reference pass moved no statistics
            torch.manual_seed(b)
            out = out_of(ld.model(data[ids], sample_ids=ids))
            gaps.append(float((out.detach() - expected).abs().amax()
                              / expected.abs().amax().clamp_min(1e-6)))
            loss = (nn.functional.cross_entropy(out, labels[ids]) if out.dim() == 2
                    else out.float().square().mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            ld.step()
        ld.end_epoch()
    return gaps
