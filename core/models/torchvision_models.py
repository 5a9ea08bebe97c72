"""torchvision's VGG (with batch norm) and ResNet classes, adapted to small images."""

from __future__ import annotations

import torch
from torch import nn
from torchvision import models as tvm

from ._units import Units, attach_units, scaled

__all__ = [
    "SMALL_RESNET_BELOW",
    "SMALL_VGG_BELOW",
    "build_resnet",
    "build_vgg",
    "resnet_units",
    "vgg_units",
]

SMALL_VGG_BELOW = 64
SMALL_RESNET_BELOW = 100

_VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


def _vgg_features(cfg: list[int | str], in_channels: int, width: float) -> tuple[nn.Sequential,
                                                                                  int]:
    """The conv+BN+ReLU(+MaxPool) stack and its output channel count."""
    layers: list[nn.Module] = []
    cin = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            cout = scaled(int(v), width)
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
            cin = cout
    return nn.Sequential(*layers), cin


def _init_vgg(model: nn.Module) -> None:
    """torchvision's VGG initialisation, applied to freshly materialised modules."""
    for m in model.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build_vgg(name: str, *, num_classes: int, in_channels: int, image_size: int,
              width: float) -> tvm.VGG:
    """VGG-11/16 with batch norm; below 64 px a global pool and a small classifier."""
    # Built on the meta device first so the 100M-parameter classifier that small images
    # never use is not allocated and initialised for nothing.
    with torch.device("meta"):
        features, channels = _vgg_features(_VGG_CFGS[name], in_channels, width)
        model = tvm.VGG(features, num_classes=num_classes, init_weights=False)
        if image_size < SMALL_VGG_BELOW:
            model.avgpool = nn.AdaptiveAvgPool2d(1)
            model.classifier = nn.Sequential(
                nn.Linear(channels, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
                nn.Linear(512, num_classes))
        elif channels != 512:
            model.classifier[0] = nn.Linear(channels * 7 * 7, 4096)
    model.to_empty(device="cpu")
    _init_vgg(model)
    return attach_units(model, vgg_units(model))


def vgg_units(model: tvm.VGG) -> Units:
    """One unit per conv+BN+ReLU group in ``features`` (with the pool after it), then the head."""
    units: Units = []
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d) or not units:
            units.append((f"conv{len(units) + 1}", []))
        units[-1][1].append(f"features.{i}")
    units.append(("head", ["avgpool", "classifier"]))
    return units


def build_resnet(name: str, *, num_classes: int, in_channels: int, image_size: int,
                 width: float) -> tvm.ResNet:
    """torchvision ResNet; below 100 px a 3x3 stride-1 stem and no max-pool (width ignored)."""
    del width  # torchvision's ResNets have fixed widths
    builder = {"resnet18": tvm.resnet18, "resnet50": tvm.resnet50,
               "resnet152": tvm.resnet152}[name]
    model = builder(weights=None, num_classes=num_classes)
    stem_out = model.conv1.out_channels
    if image_size < SMALL_RESNET_BELOW:
        model.conv1 = nn.Conv2d(in_channels, stem_out, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, stem_out, 7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return attach_units(model, resnet_units(model))


def resnet_units(model: tvm.ResNet) -> Units:
    """Stem, every residual block (``layer1.0`` ...), head."""
    units: Units = [("stem", ["conv1", "bn1", "relu", "maxpool"])]
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for i in range(len(getattr(model, stage))):
            units.append((f"{stage}.{i}", [f"{stage}.{i}"]))
    units.append(("head", ["avgpool", "fc"]))
    return units
