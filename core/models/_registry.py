"""The model registry: names, one-line descriptions and checked builders.

The registry's own models (small_cnn, the CIFAR ResNets, and VGG/ResNet adapted to small
images) come first; every other torchvision classification model is available by its
torchvision name (see :mod:`._torchvision_catalog`).

``SOURCE:NAME`` (for example ``timm:resnet10t``) is built by the builder that entry point
``SOURCE`` of the ``learndrop.models`` group names, so an integration adds a whole model
library without core importing it. Such a builder is called as ``build(NAME,
num_classes=..., in_channels=..., image_size=..., width=...)`` and returns a model with
``learndrop_units()``.
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
from ._torchvision_catalog import build_torchvision, torchvision_family, torchvision_names
from .cifar_resnet import CifarResNet
from .small_cnn import SmallCNN
from .torchvision_models import build_resnet, build_vgg

__all__ = ["SMALL_IMAGE_SIZE", "SOURCES_GROUP", "ModelInfo", "get_model", "is_model_name",
           "list_models", "model_info", "model_sources", "unknown_model_message"]

Family = Literal["resnet", "vgg", "cnn", "alexnet", "mobilenet", "efficientnet", "densenet",
                 "convnext", "regnet", "shufflenet", "mnasnet", "squeezenet", "inception",
                 "vit", "swin", "maxvit", "external"]

#: the entry point group of model sources: ``--model SOURCE:NAME``
SOURCES_GROUP = "learndrop.models"

#: the image side of the small data sets (CIFAR, MNIST resized): a model "fits small images"
#: when it takes images this small
SMALL_IMAGE_SIZE = 32


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it.

    ``fixed_image_size``: the one image size the model takes (ViT, MaxViT), else None.
    ``source``: ``"learndrop"`` for the registry's own builders, ``"torchvision"`` for a
    torchvision model built as torchvision defines it, ``"external"`` for ``SOURCE:NAME``."""

    name: str
    family: Family
    description: str
    min_image_size: int
    fixed_image_size: int | None = None
    source: Literal["learndrop", "torchvision", "external"] = "learndrop"

    @property
    def fits_small_images(self) -> bool:
        """Whether it takes 32 px images (CIFAR-10, resized MNIST)."""
        return self.fixed_image_size is None and self.min_image_size <= SMALL_IMAGE_SIZE

    def size_text(self) -> str:
        """``"32+"`` (at least 32 px) or ``"=224"`` (exactly 224 px)."""
        if self.fixed_image_size is not None:
            return f"={self.fixed_image_size}"
        return f"{self.min_image_size}+"


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


def _torchvision_entry(name: str) -> tuple[ModelInfo, Builder]:
    fam = torchvision_family(name)
    if fam.fixed_image_size is not None:
        size = f"exactly {fam.fixed_image_size} px"
    else:
        size = f"{fam.min_image_size} px or more"
    description = f"{fam.title} (torchvision; random init, width ignored); {size}."
    info = ModelInfo(name, fam.family, description,  # type: ignore[arg-type]
                     fam.min_image_size, fam.fixed_image_size, "torchvision")
    return info, partial(build_torchvision, name)


def _torchvision_models() -> dict[str, tuple[ModelInfo, Builder]]:
    """torchvision's classification models not shadowed by the registry's own entries."""
    if not _TORCHVISION:
        for name in torchvision_names():
            if name not in _MODELS:
                _TORCHVISION[name] = _torchvision_entry(name)
    return _TORCHVISION


_TORCHVISION: dict[str, tuple[ModelInfo, Builder]] = {}


def list_models() -> list[str]:
    """Names of every model: the registry's own and torchvision's classification models,
    sorted."""
    return sorted([*_MODELS, *_torchvision_models()])


def model_sources() -> list[str]:
    """Prefixes of the installed model sources (``timm`` builds ``timm:NAME``), sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=SOURCES_GROUP)})


def is_model_name(name: object) -> bool:
    """Whether ``name`` names a model: the registry's, torchvision's, or ``SOURCE:NAME`` for
    an installed source (whether that source knows NAME is found out when it is built)."""
    if not isinstance(name, str):
        return False
    if name in _MODELS or name in _torchvision_models():
        return True
    source, sep, inner = name.partition(":")
    return bool(sep and inner.strip()) and source in model_sources()


def unknown_model_message(name: object) -> str:
    """One line for a model name that names no model (``learndrop models`` lists the model
    sources too)."""
    return (f"unknown model '{name}': pick a name that 'learndrop models' lists, e.g. "
            f"small_cnn, resnet20 or mobilenet_v2")


def _external(name: str) -> tuple[ModelInfo, Builder]:
    """``SOURCE:NAME`` through the source's entry point."""
    if not is_model_name(name):
        raise ModelError(unknown_model_message(name))
    source, _, inner = name.partition(":")
    build = load_plugin(SOURCES_GROUP, source, what=f"{source} models",
                        install=f"pip install {source} (the learndrop[{source}] extra)")
    info = ModelInfo(name, "external", f"{inner.strip()} from {source}", 1, None, "external")
    return info, partial(build, inner.strip())


def _lookup(name: str) -> tuple[ModelInfo, Builder]:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        pass
    try:
        return _torchvision_models()[name]
    except (KeyError, TypeError):
        raise ModelError(f"unknown model {name!r}: pick one of {', '.join(sorted(_MODELS))} "
                         f"or a torchvision classification model such as mobilenet_v2 "
                         f"('learndrop models' lists them all)") from None


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; unknown names raise :class:`ModelError`."""
    return _lookup(name)[0]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def get_model(name: str, *, num_classes: int, in_channels: int = 3, image_size: int = 32,
              width: float = 1.0) -> nn.Module:
    """Build model ``name`` for the given data. The registry's own models and ``SOURCE:NAME``
    ones have ``learndrop_units()``; torchvision's leave their units to the engine's
    discovery."""
    if isinstance(name, str) and ":" in name:
        info, build = _external(name)
    else:
        info, build = _lookup(name)
    if not _is_int(num_classes) or num_classes < 2:
        raise ModelError(f"{name} needs at least 2 classes, got num_classes={num_classes!r}: "
                         f"use a data set with two or more classes")
    if not _is_int(in_channels) or in_channels < 1:
        raise ModelError(f"{name} needs at least 1 input channel, got "
                         f"in_channels={in_channels!r}: check the data set's channels")
    if info.fixed_image_size is not None and image_size != info.fixed_image_size:
        raise ModelError(f"{name} needs images of exactly {info.fixed_image_size}x"
                         f"{info.fixed_image_size} pixels, got {image_size!r}: set "
                         f"data.image_size to {info.fixed_image_size}, or pick a model for "
                         f"other image sizes")
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
