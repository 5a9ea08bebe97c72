"""Model registry: CNNs that know their Learn&Drop units.

Every model built by :func:`get_model` has ``learndrop_units()``, returning
``[(unit name, [qualified module names]), ...]`` from input to output with the head last;
each unit's output is the next unit's input.
"""

from __future__ import annotations

from ._registry import (
                        ModelInfo,
                        get_model,
                        is_model_name,
                        list_models,
                        model_info,
                        model_sources,
                        unknown_model_message,
)
from ._units import StaticUnits, Units
from .cifar_resnet import CifarResNet
from .small_cnn import SmallCNN

__all__ = [
           "CifarResNet",
           "ModelInfo",
           "SmallCNN",
           "StaticUnits",
           "Units",
           "get_model",
           "is_model_name",
           "list_models",
           "model_info",
           "model_sources",
           "unknown_model_message",
]
