"""A small four-block CNN: fast on CPU, used by the tests and the digits default."""

from __future__ import annotations

import torch
from torch import nn

from ._units import Units, scaled

__all__ = ["SmallCNN"]

_CHANNELS = (16, 32, 64, 128)


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    """3x3 conv, batch norm, ReLU, and a 2x2 max-pool when ``pool``."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Four conv blocks (the first three halve the image) and a linear head."""

    def __init__(self, *, num_classes: int, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3, c4 = (scaled(c, width) for c in _CHANNELS)
        self.block1 = _block(in_channels, c1, pool=True)
        self.block2 = _block(c1, c2, pool=True)
        self.block3 = _block(c2, c3, pool=True)
        self.block4 = _block(c3, c4, pool=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c4, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes)."""
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def learndrop_units(self) -> Units:
        """One unit per conv block, then the head."""
        return [(f"block{i}", [f"block{i}"]) for i in range(1, 5)] + [
            ("head", ["avgpool", "fc"])]
