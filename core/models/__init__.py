"""Model registry: the registry's own CNNs and every torchvision classification model.

The registry's own models have ``learndrop_units()``, returning
``[(unit name, [qualified module names]), ...]`` from input to output with the head last;
each unit's output is the next unit's input. torchvision's models (by their torchvision
names) leave their units to the engine, which finds them from the model's structure.
"""

from __future__ import annotations

from ._registry import (
                        SMALL_IMAGE_SIZE,
                        ModelInfo,
                        get_model,
                        is_model_name,
                        list_models,
                        model_info,
                        model_sources,
                        unknown_model_message,
)
from ._torchvision_catalog import (
    TORCHVISION_FAMILIES,
    TorchvisionFamily,
    adapt_first_conv,
    build_torchvision,
    torchvision_family,
)
from ._units import StaticUnits, Units
from .cifar_resnet import CifarResNet
from .small_cnn import SmallCNN

__all__ = [
           "SMALL_IMAGE_SIZE",
           "TORCHVISION_FAMILIES",
           "CifarResNet",
           "ModelInfo",
           "SmallCNN",
           "StaticUnits",
           "TorchvisionFamily",
           "Units",
           "adapt_first_conv",
           "build_torchvision",
           "get_model",
           "is_model_name",
           "list_models",
           "model_info",
           "model_sources",
           "torchvision_family",
           "unknown_model_message",
]
