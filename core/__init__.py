"""Learn&Drop engine: score how much each layer still learns, drop the settled ones.

Qt-free by contract (checked by import-linter). The public surface:

- :class:`LearnDrop` - plug into your own training loop;
- :class:`Trainer`, :class:`RunConfig` - a whole training run from one typed config;
- :class:`Callback` and the event dataclasses - observe a run;
- :class:`RunControl` - pause, stop, cancel, drop or pin from another thread;
- :func:`get_model`, :func:`list_models`, :func:`build_datasets`, :func:`list_datasets`.
"""

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
from .data import build_datasets, list_datasets
from .engine import DropPolicy, LearnDrop, Unit, discover_units
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
from .models import get_model, list_models
from .summary import RunSummary
from .training import FitResult, RunControl, Trainer

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
