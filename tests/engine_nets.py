"""Tiny CPU networks and data shared by the engine tests (importable from any test)."""

from __future__ import annotations

import torch
from torch import nn

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
