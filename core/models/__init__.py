"""Model registry: CNNs that know their Learn&Drop units.

Every model built by :func:`get_model` has ``learndrop_units()``, returning
``[(unit name, [qualified module names]), ...]`` from input to output with the head last;
each unit's output is the next unit's input.
"""

from __future__ import annotations

from ._registry import ModelInfo, get_model, list_models, model_info
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
           "list_models",
           "model_info",
]
