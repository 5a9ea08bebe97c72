"""A :class:`~._learndrop.LearnDrop`'s saved state: one section per part, so that a resumed
run repeats the same drop state.

Version 3 (this one) keeps ``drops`` (:class:`~._drop_state.DropState`), ``scoring``
(:class:`~._scoring.Scorer`), ``accounting`` (the savings meter), ``progress`` (steps and
epochs) and ``ddp`` side by side. Versions 1 and 2 kept the same facts in one flat dict
(version 2 added the optimizer slots); :func:`load_state` reads them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ModelError
from ._accounting import Accounting
from ._drop_state import DropState
from ._scoring import Scorer
from ._units import Unit

__all__ = ["STATE_VERSION", "save_state", "load_state"]

#: 2: the optimizer slots (each parameter's group and position, by name) are saved;
#: 3: one section per part, and each optimizer group's learning rate since the last check
STATE_VERSION = 3


def save_state(units: Sequence[Unit], mode: str, drops: DropState, scorer: Scorer,
               accounting: Accounting, progress: dict[str, Any],
               ddp: dict[str, Any] | None) -> dict[str, Any]:
    """The state of every part (plain types and tensors, loadable with
    ``torch.load(weights_only=True)``)."""
    return {"version": STATE_VERSION, "units": [u.name for u in units], "mode": mode,
            "drops": drops.state_dict(), "scoring": scorer.state_dict(),
            "accounting": accounting.state_dict(), "progress": dict(progress), "ddp": ddp}


def load_state(state: dict[str, Any], unit_names: list[str]) -> dict[str, Any]:
    """The sections of a saved state of any version, checked against the model's units."""
    if list(state.get("units", [])) != unit_names:
        raise ModelError("the saved Learn&Drop state belongs to a model with other units; "
                         "resume with the same model and unit settings")
    if int(state.get("version", 1)) >= 3:
        return state
    lr_n = int(state.get("lr_n", 0))
    return {
        "drops": {"dropped": state["dropped"], "pinned": state["pinned"],
                  "optimizer_slots": state.get("optimizer_slots")},
        "scoring": {"scores": state["scores"], "snapshots": state["snapshots"],
                    "gradients": state.get("gradients"),
                    # the first group's rate only: a multi-group optimizer starts anew
                    "lr_sums": [float(state.get("lr_sum", 0.0))] if lr_n else [],
                    "lr_steps": lr_n, "check_count": state["check_count"]},
        "accounting": state.get("meter"),
        "progress": {"step_count": state["step_count"], "epoch": state["epoch"],
                     "epoch_start_step": state["epoch_start_step"],
                     "steps_per_epoch": state.get("steps_per_epoch")},
        "ddp": state.get("ddp"),
    }
