"""The Learn&Drop method itself, in plain PyTorch.

Scores how much each unit (a block of layers) still learns, drops the settled ones and skips
their work. It imports only ``torch`` and ``learndrop.core``'s bottom layer (events, errors,
fields): no config, no torchvision, no store, so it can be vendored into another project.
Its settings are declared once, in :class:`DropPolicy`.

The parts that need PyTorch are imported on first use, so the policy alone (what a run config
is made of) does not bring PyTorch in.
"""

from typing import TYPE_CHECKING, Any

from ._notices import LearnDropWarning
from ._policy import (
    MODES,
    ORDERS,
    SCORES,
    SETTLE_TESTS,
    DropMode,
    DropOrder,
    DropPolicy,
    DropScore,
)
from ._replay import RecordedAction, RecordedCheck, Replay, ReplayDrop, prepare_replay, replay
from ._rule import (
    LossSpan,
    RuleUnit,
    ScoreState,
    UnitStatus,
    advance,
    blocked_by,
    drops_now,
    is_kept,
    is_settled,
    loss_rose,
    may_drop,
    measure,
    qualifies,
    restore_hold,
    slope,
    slope_error,
)
from ._savings import SavingsMeter, StepCost, step_cost
from ._why import Condition, verdict, why_not_yet

if TYPE_CHECKING:
    from ._learndrop import LearnDrop
    from ._scoring import GradientNorms, ParameterSnapshots, Scorer
    from ._units import Unit, discover_units, measure_units, structural_units

__all__ = ["LearnDrop", "LearnDropWarning", "DropPolicy", "DropMode", "DropOrder", "DropScore",
           "MODES", "ORDERS", "SCORES", "SETTLE_TESTS", "Unit", "discover_units", "measure_units",
           "structural_units",
           "SavingsMeter", "StepCost", "step_cost", "GradientNorms", "ParameterSnapshots",
           "Scorer", "ScoreState", "RuleUnit", "UnitStatus", "RecordedCheck", "RecordedAction",
           "ReplayDrop", "Replay", "advance", "drops_now", "blocked_by", "is_kept", "may_drop",
           "qualifies", "replay", "slope", "measure", "is_settled", "Condition", "why_not_yet",
           "verdict", "prepare_replay", "LossSpan", "loss_rose", "restore_hold", "slope_error"]


def __getattr__(name: str) -> Any:
    """The PyTorch parts, imported when first asked for."""
    if name.startswith("_"):  # a submodule being imported, or a dunder: not one of ours
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _learndrop, _scoring, _units

    for module in (_learndrop, _units, _scoring):
        if name in module.__all__:
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
