"""The model registry: names, one-line descriptions and checked builders.

Besides its own models, ``get_model`` builds ``SOURCE:NAME`` (for example ``timm:resnet10t``)
with the builder that entry point ``SOURCE`` of the ``learndrop.models`` group names, so an
integration adds a whole model library without core importing it. Such a builder is called
as ``build(NAME, num_classes=..., in_channels=..., image_size=..., width=...)`` and returns a
model with ``learndrop_units()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import Literal

from torch import nn

from ..errors import ModelError
from ..plugins import load_plugin
from .cifar_resnet import CifarResNet
from .small_cnn import SmallCNN
from .torchvision_models import build_resnet, build_vgg

__all__ = ["ModelInfo", "get_model", "is_model_name", "list_models", "model_info",
           "model_sources", "unknown_model_message"]

SOURCES_GROUP = "learndrop.models"

Family = Literal["resnet", "vgg", "cnn", "external"]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it."""

    name: str
    family: Family
    description: str
    min_image_size: int


Builder = Callable[..., nn.Module]

_MODELS: dict[str, tuple[ModelInfo, Builder]] = {}


def _small_cnn(*, num_classes: int, in_channels: int, image_size: int,
               width: float) -> nn.Module:
    """SmallCNN (works at any size from 8 px)."""
    del image_size
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=width)


def _cifar_resnet(depth: int, *, num_classes: int, in_channels: int, image_size: int,
                  width: float) -> nn.Module:
    """CifarResNet of the given depth (works at any size from 8 px)."""
    del image_size
    return CifarResNet(depth, num_classes=num_classes, in_channels=in_channels, width=width)


def _add(name: str, family: Family, description: str, min_image_size: int,
         build: Builder) -> None:
    _MODELS[name] = (ModelInfo(name, family, description, min_image_size), build)


_add("small_cnn", "cnn", "Small CNN: four conv blocks and a linear head; fast on CPU.", 8,
     _small_cnn)
_add("resnet20", "resnet", "CIFAR ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels).",
     8, partial(_cifar_resnet, 20))
_add("resnet56", "resnet", "CIFAR ResNet-56 (3 stages of 9 basic blocks, 16/32/64 channels).",
     8, partial(_cifar_resnet, 56))
_add("vgg11", "vgg", "VGG-11 with batch norm (torchvision); global pool and small "
     "classifier below 64 px.", 32, partial(build_vgg, "vgg11"))
_add("vgg16", "vgg", "VGG-16 with batch norm (torchvision); global pool and small "
     "classifier below 64 px.", 32, partial(build_vgg, "vgg16"))
_add("resnet18", "resnet", "ResNet-18 (torchvision); 3x3 stem without max-pool below 100 px; "
     "width is ignored.", 8, partial(build_resnet, "resnet18"))
_add("resnet50", "resnet", "ResNet-50 (torchvision, bottleneck blocks); 3x3 stem without "
     "max-pool below 100 px; width is ignored.", 8, partial(build_resnet, "resnet50"))
_add("resnet152", "resnet", "ResNet-152 (torchvision, bottleneck blocks); 3x3 stem without "
     "max-pool below 100 px; width is ignored.", 8, partial(build_resnet, "resnet152"))


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def model_sources() -> list[str]:
    """Prefixes of the installed model sources (``timm`` builds ``timm:NAME``), sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=SOURCES_GROUP)})


def is_model_name(name: object) -> bool:
    """Whether ``name`` is a registered model or ``SOURCE:NAME`` for an installed source
    (whether that source knows NAME is found out when the model is built)."""
    if not isinstance(name, str):
        return False
    if name in _MODELS:
        return True
    source, sep, inner = name.partition(":")
    return bool(sep and inner.strip()) and source in model_sources()


def unknown_model_message(name: object) -> str:
    """One line naming the models that ``name`` could have been."""
    sources = "".join(f" or {s}:NAME" for s in model_sources())
    return f"unknown model {name!r}: pick one of {', '.join(list_models())}{sources}"


def _lookup(name: str) -> tuple[ModelInfo, Builder]:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ModelError(unknown_model_message(name)) from None


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; unknown names raise :class:`ModelError`."""
    return _lookup(name)[0]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def get_model(name: str, *, num_classes: int, in_channels: int = 3, image_size: int = 32,
              width: float = 1.0) -> nn.Module:
    """Build model ``name`` (or ``SOURCE:NAME``) for the given data; it has
    ``learndrop_units()``."""
    if isinstance(name, str) and ":" in name and name not in _MODELS:
        info, build = _external(name)
    else:
        info, build = _lookup(name)
    if not _is_int(num_classes) or num_classes < 2:
        raise ModelError(f"{name} needs at least 2 classes, got num_classes={num_classes!r}: "
                         f"use a data set with two or more classes")
    if not _is_int(in_channels) or in_channels < 1:
        raise ModelError(f"{name} needs at least 1 input channel, got "
                         f"in_channels={in_channels!r}: check the data set's channels")
    if not _is_int(image_size) or image_size < info.min_image_size:
        raise ModelError(f"{name} needs images of at least {info.min_image_size}x"
                         f"{info.min_image_size} pixels, got {image_size!r}: set "
                         f"data.image_size to {info.min_image_size} or more, or pick a "
                         f"model for smaller images")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not width > 0:
        raise ModelError(f"model width must be a positive number, got {width!r}: set "
                         f"model.width to e.g. 1.0")
    model = build(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                  width=float(width))
    if not isinstance(model, nn.Module):
        raise ModelError(f"the builder of {name!r} returned {type(model).__name__}, not a "
                         f"torch.nn.Module")
    return model


def _external(name: str) -> tuple[ModelInfo, Builder]:
    """``SOURCE:NAME`` through the source's entry point."""
    if not is_model_name(name):
        raise ModelError(unknown_model_message(name))
    source, _, inner = name.partition(":")
    build = load_plugin(SOURCES_GROUP, source, what=f"{source} models",
                        install=f"pip install {source} (the learndrop[{source}] extra)")
    info = ModelInfo(name, "external", f"{inner.strip()} from {source}", 1)
    return info, partial(build, inner.strip())
