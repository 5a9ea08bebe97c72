"""Saving and restoring a :class:`LearnDrop`'s drop state, so a resumed run repeats it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModelError
from ._optim import OptimizerSlots

if TYPE_CHECKING:
    from ._strategy import LearnDrop

__all__ = ["STATE_VERSION", "strategy_state", "load_strategy_state"]

#: 2: the optimizer slots (each parameter's group and position, by name) are saved
STATE_VERSION = 2


def strategy_state(ld: LearnDrop) -> dict[str, Any]:
    """Everything needed to repeat the same drop state on resume (plain types and tensors,
    loadable with ``torch.load(weights_only=True)``)."""
    return {
        "version": STATE_VERSION,
        "units": [u.name for u in ld.units],
        "mode": ld.policy.mode,
        "dropped": [[d["unit"], d["step"], d["epoch"], d["reason"]] for d in ld.drop_log()],
        "pinned": [u.name for u in ld.units if ld.is_pinned(u.name)],
        "scores": {u.index: ld._scores[u.index].state_dict() for u in ld.units},
        "snapshots": ld._snaps.state_dict(),
        "gradients": ld._grads.state_dict() if ld._grads is not None else None,
        "step_count": ld.step_count,
        "epoch": ld.epoch,
        "epoch_start_step": ld._epoch_start_step,
        "lr_sum": ld._lr_sum,
        "lr_n": ld._lr_n,
        "check_count": ld.check_count,
        "meter": ld.meter.state_dict() if ld.meter else None,
        "steps_per_epoch": ld.steps_per_epoch,
        "optimizer_slots": ld._slots.state_dict(),
        "ddp": ld._ddp.state_dict() if ld._ddp is not None else None,
    }


def load_strategy_state(ld: LearnDrop, state: dict[str, Any]) -> None:
    """Restore a state written by :func:`strategy_state` into ``ld`` (same model, same
    units, an optimizer built the same way); drops are re-applied, so the optimizer's groups
    lose the dropped parameters and match the saved optimizer's again."""
    names = [u.name for u in ld.units]
    if list(state.get("units", [])) != names:
        raise ModelError("the saved Learn&Drop state belongs to a model with other units; "
                         "resume with the same model and unit settings")
    for name in reversed(list(ld.dropped)):  # back to the complete layout first
        ld.restore(name)
    saved = state.get("optimizer_slots")  # none before version 2, empty without an optimizer
    if saved:
        slots = OptimizerSlots.from_state(saved)
        if ld.optimizer is not None and slots.slots != ld._slots.slots:
            problem = slots.check(ld.optimizer, ld._named) or (
                "its parameters sit in other groups or in another order")
            raise ModelError(f"the optimizer does not match the saved run's ({problem}): "
                             f"build it the same way before resuming")
        ld._slots = slots
    for name in state["pinned"]:
        ld._state[ld.unit(name).index].pinned = True
    for name, step, epoch, reason in state["dropped"]:
        u = ld.unit(name)
        ld._apply_drop(u, reason)
        st = ld._state[u.index]
        st.drop_step, st.drop_epoch = step, epoch
    for idx, s in state["scores"].items():
        ld._scores[int(idx)].load_state_dict(s)
        restored = ld._scores[int(idx)].score
        if restored is not None:
            ld.scores[ld.units[int(idx)].name] = float(restored)
    device = next((p.device for p in ld.base_model.parameters()), torch.device("cpu"))
    ld._snaps.load_state_dict(state["snapshots"], device)
    if ld._grads is not None and state.get("gradients"):
        ld._grads.load_state_dict(state["gradients"])
    ld.step_count = int(state["step_count"])
    ld.epoch = int(state["epoch"])
    ld._epoch_start_step = int(state["epoch_start_step"])
    ld._lr_sum = float(state["lr_sum"])
    ld._lr_n = int(state["lr_n"])
    ld.check_count = int(state["check_count"])
    ld.steps_per_epoch = state.get("steps_per_epoch") or ld.steps_per_epoch
    if ld._ddp is not None and state.get("ddp"):
        ld._ddp.load_state_dict(state["ddp"])
    ld._pending_meter = state.get("meter")
    if ld.meter is not None and ld._pending_meter:
        ld.meter.load_state_dict(ld._pending_meter)
