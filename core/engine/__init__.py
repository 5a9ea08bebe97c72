"""The Learn&Drop method itself, in plain PyTorch.

Scores how much each unit (a block of layers) still learns, drops the settled ones and skips
their work. It imports only ``torch`` and ``learndrop.core``'s bottom layer (events, errors,
fields): no config, no torchvision, no store, so it can be vendored into another project.
Its settings are declared once, in :class:`DropPolicy`.
"""

from ._learndrop import LearnDrop
from ._notices import LearnDropWarning
from ._policy import MODES, ORDERS, SCORES, DropMode, DropOrder, DropPolicy, DropScore
from ._rule import (
    RecordedAction,
    RecordedCheck,
    Replay,
    ReplayDrop,
    RuleUnit,
    ScoreState,
    UnitStatus,
    advance,
    blocked_by,
    drops_now,
    is_kept,
    may_drop,
    qualifies,
    replay,
    slope,
)
from ._savings import SavingsMeter, StepCost, step_cost
from ._scoring import GradientNorms, ParameterSnapshots, Scorer
from ._units import Unit, discover_units, measure_units

__all__ = ["LearnDrop", "LearnDropWarning", "DropPolicy", "DropMode", "DropOrder", "DropScore",
           "MODES", "ORDERS", "SCORES", "Unit", "discover_units", "measure_units",
           "SavingsMeter", "StepCost", "step_cost", "GradientNorms", "ParameterSnapshots", "Scorer",
           "ScoreState", "RuleUnit", "UnitStatus", "RecordedCheck", "RecordedAction",
           "ReplayDrop", "Replay", "advance", "drops_now", "blocked_by", "is_kept", "may_drop",
           "qualifies", "replay", "slope"]
