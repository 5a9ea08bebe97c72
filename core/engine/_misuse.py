"""Ways to hold a :class:`~._learndrop.LearnDrop` wrong that would otherwise pass silently, each
caught with a message that says what to do instead."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..events import HOOKS, Callback

__all__ = ["checked_callback", "check_optimizer", "claim_model", "guard_optimizer_loading",
           "NOTHING_MOVED"]

#: said once when a check finds that no unit's parameters moved at all
NOTHING_MOVED = ("no unit's parameters moved since the last score check: call ld.step() "
                 "after optimizer.step(), and give LearnDrop the optimizer that trains the "
                 "model")

# each model's LearnDrop, while both live: a second one must not take the first one's drops
# for parameters the user froze
_OWNERS: weakref.WeakKeyDictionary[nn.Module, weakref.ref[Any]] = weakref.WeakKeyDictionary()


def checked_callback(callback: Any) -> Callback:
    """``callback`` if it has every hook (a :class:`Callback` subclass has them all), else a
    ``TypeError`` naming the hooks it lacks."""
    missing = [hook for hook in HOOKS if not callable(getattr(callback, hook, None))]
    if missing:
        raise TypeError(f"callback {type(callback).__name__} has no {', '.join(missing)}: "
                        f"subclass learndrop.core.Callback, whose hooks do nothing until "
                        f"you override them")
    return callback  # type: ignore[no-any-return]


def check_optimizer(optimizer: torch.optim.Optimizer | None, model: nn.Module) -> None:
    """An optimizer that trains none of ``model``'s parameters is the wrong one."""
    if optimizer is None:
        return
    mine = {id(p) for p in model.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if held and not any(id(p) in mine for p in held):
        raise ConfigError("the optimizer holds none of this model's parameters: give "
                          "LearnDrop the optimizer that trains this model")


def claim_model(model: nn.Module, owner: Any) -> None:
    """Make ``owner`` the model's LearnDrop; refused while another one has units of it
    dropped, which this one would take for units the user froze."""
    earlier = _OWNERS.get(model)
    other = earlier() if earlier is not None else None
    if other is not None and other is not owner:
        names = list(other.dropped)
        if names:
            raise ConfigError(f"another LearnDrop has units of this model dropped "
                              f"({', '.join(names)}): restore them with that one first "
                              f"(ld.restore), or give this one a fresh copy of the model")
    _OWNERS[model] = weakref.ref(owner)


def guard_optimizer_loading(optimizer: torch.optim.Optimizer | None) -> None:
    """An optimizer state whose groups do not match the optimizer's, loaded before the drop
    state that takes the dropped parameters out: say which order works, instead of PyTorch's
    generic group-size error."""
    if optimizer is None or not hasattr(optimizer, "register_load_state_dict_pre_hook"):
        return

    def before_loading(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        saved = [len(g.get("params", ())) for g in state.get("param_groups", [])]
        now = [len(g["params"]) for g in opt.param_groups]
        if len(saved) == len(now) and sum(saved) < sum(now):  # what drops take out
            raise ValueError(
                f"the saved optimizer state has {sum(saved)} parameters in its groups and "
                f"this optimizer {sum(now)}: with Learn&Drop, load the drop state first "
                f"(ld.load_state_dict(...)), then optimizer.load_state_dict(...), so that "
                f"the dropped units' parameters are out of the optimizer as they were saved")

    optimizer.register_load_state_dict_pre_hook(before_loading)
