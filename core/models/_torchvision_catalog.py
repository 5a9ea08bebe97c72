"""Every torchvision classification model, by its torchvision name.

Built with ``torchvision.models.get_model(name, weights=None, num_classes=N)`` (no network
access; weights come from ``model.weights`` when wanted). When the data is not RGB the first
convolution is adapted to the data's channels. The Learn&Drop units of these models are found
by the engine from their structure.

Image sizes, by rule: a CNN that halves its input five times (total stride 32) needs 32 px, so
its last stage sees at least one pixel. AlexNet (63 px) and Inception v3 (75 px) shrink their
input with unpadded convolutions and pools: those are the smallest sizes that leave one pixel.
Swin needs its last stage to hold one attention window (32 px times the window: 224 px for v1,
256 px for v2; smaller images run but attend mostly to padding). ViT and MaxViT are built for
one fixed size, 224 px (ViT's position embedding and MaxViT's partition grids are sized for
it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm

__all__ = ["TORCHVISION_FAMILIES", "TorchvisionFamily", "adapt_first_conv",
           "build_torchvision", "torchvision_family", "torchvision_names"]

#: the torchvision models whose builders take these extra settings
_EXTRA: dict[str, dict[str, object]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


@dataclass(frozen=True)
class TorchvisionFamily:
    """One family of torchvision classification models and what it needs.

    ``example`` builds a small model of the same classes (for tests) and returns it with the
    image size it takes; ``reference`` names the family's smallest torchvision model (for the
    documentation's family table)."""

    key: str
    family: str
    title: str
    prefixes: tuple[str, ...]
    min_image_size: int
    fixed_image_size: int | None
    size_rule: str
    example: Callable[[], tuple[nn.Module, int]]
    reference: str

    def matches(self, name: str) -> bool:
        return name.startswith(self.prefixes)


def _materialise(model: nn.Module) -> nn.Module:
    """A model built on the meta device, allocated on the CPU and initialised afresh."""
    model.to_empty(device="cpu")
    for m in model.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return model


def _vgg_example(batch_norm: bool) -> tuple[nn.Module, int]:
    cfg: list[str | int] = [16, "M", 32, "M", 64, 64, "M", 64, "M", 64, "M"]
    with torch.device("meta"):
        model = tvm.VGG(tvm.vgg.make_layers(cfg, batch_norm=batch_norm), num_classes=5,
                        init_weights=False)
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(inplace=True),
                                         nn.Dropout(0.5), nn.Linear(32, 5))
    return _materialise(model), 32


def _builder(name: str, size: int, **kwargs: object) -> Callable[[], tuple[nn.Module, int]]:
    def build() -> tuple[nn.Module, int]:
        return build_torchvision(name, num_classes=5, in_channels=3, **kwargs), size
    return build


def _resnext_example() -> tuple[nn.Module, int]:
    block = tvm.resnet.Bottleneck
    return tvm.ResNet(block, [1, 2, 1, 1], num_classes=5, groups=8, width_per_group=4), 32


def _wide_resnet_example() -> tuple[nn.Module, int]:
    block = tvm.resnet.Bottleneck
    return tvm.ResNet(block, [1, 2, 1, 1], num_classes=5, width_per_group=128), 32


def _efficientnet_v2_example() -> tuple[nn.Module, int]:
    from torchvision.models.efficientnet import FusedMBConvConfig, MBConvConfig

    setting = [FusedMBConvConfig(1, 3, 1, 8, 8, 2), FusedMBConvConfig(4, 3, 2, 8, 16, 2),
               MBConvConfig(4, 3, 2, 16, 24, 3), MBConvConfig(6, 3, 1, 24, 32, 2)]
    return tvm.EfficientNet(setting, dropout=0.2, num_classes=5, last_channel=64), 32


def _convnext_example() -> tuple[nn.Module, int]:
    from torchvision.models.convnext import CNBlockConfig

    setting = [CNBlockConfig(8, 16, 2), CNBlockConfig(16, 32, 3), CNBlockConfig(32, None, 2)]
    return tvm.ConvNeXt(setting, num_classes=5), 32


def _densenet_example() -> tuple[nn.Module, int]:
    return tvm.DenseNet(growth_rate=8, block_config=(2, 3, 2, 2), num_init_features=16,
                        bn_size=2, num_classes=5), 32


def _vit_example() -> tuple[nn.Module, int]:
    return tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2,
                                 hidden_dim=16, mlp_dim=32, num_classes=5), 32


def _swin_example(v2: bool) -> tuple[nn.Module, int]:
    from torchvision.models import swin_transformer as sw

    extra: dict[str, object] = {}
    if v2:
        extra = {"block": sw.SwinTransformerBlockV2, "downsample_layer": sw.PatchMergingV2}
    return sw.SwinTransformer(patch_size=[2, 2], embed_dim=8, depths=[2, 3], num_heads=[2, 2],
                              window_size=[2, 2], num_classes=5, **extra), 16  # type: ignore


def _maxvit_example() -> tuple[nn.Module, int]:
    return tvm.MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2,
                      block_channels=[8, 16], block_layers=[2, 1], head_dim=4,
                      stochastic_depth_prob=0.0, num_classes=5), 32


_STRIDE_32 = "halves the image five times: 32 px leave its last stage one pixel"


def _family(key: str, family: str, title: str, prefixes: tuple[str, ...],
            example: Callable[[], tuple[nn.Module, int]], reference: str, *,
            min_size: int = 32, fixed: int | None = None,
            rule: str = _STRIDE_32) -> TorchvisionFamily:
    return TorchvisionFamily(key, family, title, prefixes, min_size, fixed, rule, example,
                             reference)


TORCHVISION_FAMILIES: tuple[TorchvisionFamily, ...] = (
    _family("resnet", "resnet", "ResNet", ("resnet",), _builder("resnet18", 32), "resnet18"),
    _family("resnext", "resnet", "ResNeXt", ("resnext",), _resnext_example,
            "resnext50_32x4d"),
    _family("wide_resnet", "resnet", "Wide ResNet", ("wide_resnet",), _wide_resnet_example,
            "wide_resnet50_2"),
    _family("vgg", "vgg", "VGG", ("vgg11", "vgg13", "vgg16", "vgg19"),
            lambda: _vgg_example(False), "vgg13"),
    _family("vgg_bn", "vgg", "VGG with batch norm", ("vgg11_bn", "vgg13_bn", "vgg16_bn",
                                                     "vgg19_bn"),
            lambda: _vgg_example(True), "vgg11_bn"),
    _family("alexnet", "alexnet", "AlexNet", ("alexnet",), _builder("alexnet", 63), "alexnet",
            min_size=63, rule="an unpadded 11x11/4 conv and three unpadded 3x3/2 pools leave "
                              "one pixel from 63 px"),
    _family("mobilenet_v2", "mobilenet", "MobileNet v2", ("mobilenet_v2",),
            _builder("mobilenet_v2", 32), "mobilenet_v2"),
    _family("mobilenet_v3", "mobilenet", "MobileNet v3", ("mobilenet_v3",),
            _builder("mobilenet_v3_small", 32), "mobilenet_v3_small"),
    _family("efficientnet", "efficientnet", "EfficientNet", ("efficientnet_b",),
            _builder("efficientnet_b0", 32), "efficientnet_b0"),
    _family("efficientnet_v2", "efficientnet", "EfficientNet v2", ("efficientnet_v2",),
            _efficientnet_v2_example, "efficientnet_v2_s"),
    _family("densenet", "densenet", "DenseNet", ("densenet",), _densenet_example,
            "densenet121"),
    _family("convnext", "convnext", "ConvNeXt", ("convnext",), _convnext_example,
            "convnext_tiny"),
    _family("regnet", "regnet", "RegNet", ("regnet",), _builder("regnet_y_400mf", 32),
            "regnet_y_400mf"),
    _family("shufflenet", "shufflenet", "ShuffleNet v2", ("shufflenet",),
            _builder("shufflenet_v2_x0_5", 32), "shufflenet_v2_x0_5"),
    _family("mnasnet", "mnasnet", "MNASNet", ("mnasnet",), _builder("mnasnet0_5", 32),
            "mnasnet0_5"),
    _family("squeezenet", "squeezenet", "SqueezeNet", ("squeezenet",),
            _builder("squeezenet1_1", 32), "squeezenet1_1"),
    _family("googlenet", "inception", "GoogLeNet", ("googlenet",), _builder("googlenet", 32),
            "googlenet"),
    _family("inception_v3", "inception", "Inception v3", ("inception_v3",),
            _builder("inception_v3", 75), "inception_v3", min_size=75,
            rule="unpadded stem convolutions and pools leave one pixel from 75 px"),
    _family("vit", "vit", "Vision Transformer", ("vit_",), _vit_example, "vit_b_32",
            min_size=224, fixed=224, rule="its position embedding is sized for 224 px"),
    _family("swin", "swin", "Swin Transformer", ("swin_t", "swin_s", "swin_b"),
            lambda: _swin_example(False), "swin_t", min_size=224,
            rule="its last stage holds one 7x7 attention window from 224 px"),
    _family("swin_v2", "swin", "Swin Transformer v2", ("swin_v2",),
            lambda: _swin_example(True), "swin_v2_t", min_size=256,
            rule="its last stage holds one 8x8 attention window from 256 px"),
    _family("maxvit", "maxvit", "MaxViT", ("maxvit",), _maxvit_example, "maxvit_t",
            min_size=224, fixed=224, rule="its partition grids are sized for 224 px"),
)


def torchvision_names() -> list[str]:
    """torchvision's classification models (``list_models(module=torchvision.models)``)."""
    return list(tvm.list_models(module=tvm))


def torchvision_family(name: str) -> TorchvisionFamily:
    """The family a torchvision classification model belongs to (the longest prefix wins)."""
    found = [f for f in TORCHVISION_FAMILIES if f.matches(name)]
    if not found:
        raise KeyError(name)
    return max(found, key=lambda f: max(len(p) for p in f.prefixes if name.startswith(p)))


def adapt_first_conv(model: nn.Module, in_channels: int) -> nn.Module:
    """Give the model's first convolution ``in_channels`` inputs.

    Each new input channel gets the mean of the old kernel over its RGB inputs: an image whose
    channels are all equal (a grey image) gives the same first activations as it would in RGB.
    """
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return model
    if conv.groups != 1:
        raise ValueError(f"cannot adapt the grouped input convolution '{name}'")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                    stride=conv.stride, padding=conv.padding,  # type: ignore[arg-type]
                    dilation=conv.dilation, bias=conv.bias is not None,  # type: ignore[arg-type]
                    padding_mode=conv.padding_mode, device=conv.weight.device,
                    dtype=conv.weight.dtype)
    with torch.no_grad():
        kernel = conv.weight.sum(dim=1, keepdim=True) / in_channels
        new.weight.copy_(kernel.expand_as(new.weight))
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return model


def build_torchvision(name: str, *, num_classes: int, in_channels: int, **_: object
                      ) -> nn.Module:
    """torchvision's ``name`` with random weights, ``num_classes`` outputs and the first
    convolution adapted to ``in_channels``."""
    model = tvm.get_model(name, weights=None, num_classes=num_classes, **_EXTRA.get(name, {}))
    return adapt_first_conv(model, in_channels)
