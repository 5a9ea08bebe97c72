"""CIFAR-style ResNets (He et al. 2016): three stages of basic blocks, 16/32/64 channels."""

from __future__ import annotations

import torch
from torch import nn

from ._units import Units, scaled

__all__ = ["BasicBlock", "CifarResNet"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual shortcut (1x1 conv + BN when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x))."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: 3x3 stem, stages layer1..layer3 of n blocks each."""

    def __init__(self, depth: int, *, num_classes: int, in_channels: int = 3,
                 width: float = 1.0) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        c1, c2, c3 = (scaled(c, width) for c in (16, 32, 64))
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(c1, c1, n, stride=1)
        self.layer2 = self._stage(c1, c2, n, stride=2)
        self.layer3 = self._stage(c2, c3, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
        """``blocks`` basic blocks; the first one changes stride and channels."""
        layers = [BasicBlock(cin, cout, stride)]
        layers += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def learndrop_units(self) -> Units:
        """Stem, every residual block, head."""
        units: Units = [("stem", ["conv1", "bn1", "relu"])]
        for stage in ("layer1", "layer2", "layer3"):
            for i in range(len(getattr(self, stage))):
                units.append((f"{stage}.{i}", [f"{stage}.{i}"]))
        units.append(("head", ["avgpool", "fc"]))
        return units
