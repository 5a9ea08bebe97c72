"""Learn&Drop engine: score how much each layer still learns, drop the settled ones.

Qt-free by contract (checked by import-linter). The public surface:

- :class:`LearnDrop` - plug into your own training loop;
- :class:`Trainer`, :class:`RunConfig` - a whole training run from one typed config;
- :class:`Callback` and the event dataclasses - observe a run;
- :class:`RunControl` - pause, stop, cancel, drop or pin from another thread;
- :func:`get_model`, :func:`list_models`, :func:`build_datasets`, :func:`list_datasets`.

The names that need PyTorch (the engine, the catalogues, the trainer) are imported on first
use, so the config, the events and the errors can be used without it.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .config import (
                        DataConfig,
                        DropConfig,
                        ModelConfig,
                        OptimConfig,
                        OutputConfig,
                        RunConfig,
                        TrainConfig,
                        load_config,
                        save_config,
)
from .engine import DropPolicy
from .errors import (
                        CheckpointError,
                        ConfigError,
                        DataError,
                        DeviceError,
                        LearnDropError,
                        ModelError,
                        TrainingError,
)
from .events import (
                        Callback,
                        CheckpointSaved,
                        DropEvent,
                        EpochEnd,
                        FitEnd,
                        FitStart,
                        Progress,
                        SavingsReport,
                        ScoreCheck,
                        UnitInfo,
)
from .summary import RunSummary

if TYPE_CHECKING:
    from .data import build_datasets, list_datasets
    from .engine import LearnDrop, Unit, discover_units
    from .models import get_model, list_models
    from .training import FitResult, RunControl, Trainer

#: the names that bring PyTorch in, by the sub-package that has them
_WITH_TORCH = {"build_datasets": "data", "list_datasets": "data", "LearnDrop": "engine",
               "Unit": "engine", "discover_units": "engine", "get_model": "models",
               "list_models": "models", "FitResult": "training", "RunControl": "training",
               "Trainer": "training"}

__all__ = [
    "LearnDrop", "DropPolicy", "RunSummary", "Trainer", "FitResult", "RunConfig", "DataConfig",
    "ModelConfig",
    "OptimConfig", "DropConfig", "TrainConfig", "OutputConfig", "load_config", "save_config",
    "RunControl", "Callback", "FitStart", "Progress", "ScoreCheck", "DropEvent",
    "SavingsReport", "EpochEnd", "CheckpointSaved", "FitEnd", "UnitInfo", "Unit",
    "discover_units", "get_model", "list_models", "build_datasets", "list_datasets",
    "LearnDropError", "ConfigError", "DataError", "ModelError", "DeviceError",
    "CheckpointError", "TrainingError",
]


def __getattr__(name: str) -> Any:
    """The names that need PyTorch, imported when first asked for."""
    package = _WITH_TORCH.get(name)
    if package is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{package}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
