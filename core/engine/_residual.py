"""Whether a block is residual: ``block(x) == x + f(x)``, possibly through one activation.

A residual block whose output has its input's shape may be bypassed by its shortcut in
``skip`` mode, so the test must never say yes to a block that is not. It watches the aten
operations of one eval-mode call (a :class:`TorchDispatchMode`, below autograd, so an in-place
sum on a view -- timm GhostNet's ``x += self.shortcut(shortcut)`` on a slice of a
concatenation -- looks like the sum it is) and walks back from the output: at most one
activation, then additions, one of whose operands is the block's input itself, unchanged.
A ``learndrop_residual`` attribute on the module decides instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["is_residual"]

_ACTIVATIONS = frozenset({"relu", "hardtanh", "gelu", "silu", "hardswish", "leaky_relu",
                          "elu", "mish", "sigmoid", "tanh", "relu6"})
_ADDS = frozenset({"add"})

# a tensor as the operations see it: where its values start, how it is laid out
_Key = tuple[int, tuple[int, ...], tuple[int, ...]]


def _key(t: torch.Tensor) -> _Key:
    return t.data_ptr(), tuple(t.shape), tuple(t.stride())


@dataclass
class _Op:
    name: str  # the operation without its trailing underscore: "add" for add and add_
    inplace: bool
    operands: tuple[torch.Tensor, ...]
    written: tuple[_Key, ...]  # the tensors whose values it set


class _Recorder(TorchDispatchMode):
    """Records every operation that writes a tensor (views only alias one; they are left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[_Op] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            packet = func.overloadpacket.__name__
            inplace = packet.endswith("_") and not packet.startswith("_")
            operands = tuple(a for a in args if torch.is_tensor(a))
            results = out if isinstance(out, (tuple, list)) else (out,)
            written = [_key(t) for t in results if torch.is_tensor(t)]
            if inplace and operands:
                written.append(_key(operands[0]))
            self.ops.append(_Op(packet.removesuffix("_") if inplace else packet, inplace,
                                operands, tuple(written)))
        return out


def _writer(ops: list[_Op], key: _Key, before: int) -> int | None:
    """The last operation before ``before`` that set the tensor ``key``."""
    for i in range(before - 1, -1, -1):
        if key in ops[i].written:
            return i
    return None


def _sums_input(ops: list[_Op], i: int | None, inp: _Key) -> bool:
    """Whether operation ``i`` is an addition (of additions...) with the unchanged input as an
    operand."""
    if i is None or ops[i].name not in _ADDS:
        return False
    for t in ops[i].operands[:2]:
        k = _key(t)
        if k == inp and _writer(ops, inp, i) is None:
            return True
        if _sums_input(ops, _writer(ops, k, i), inp):
            return True
    return False


def is_residual(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module(x)`` is ``x + f(x)``, possibly through one trailing activation (one
    eval-mode call on a copy of ``x``; weights, buffers and modes are the caller's to keep)."""
    flag = getattr(module, "learndrop_residual", None)
    if flag is not None:
        return bool(flag)
    inp = x[:1].detach().clone()
    recorder = _Recorder()
    try:
        with torch.no_grad(), recorder:
            out = module.eval()(inp)
    except Exception:  # noqa: BLE001 - a block that cannot run alone is not skippable
        return False
    if not torch.is_tensor(out):
        return False
    ops = recorder.ops
    i = _writer(ops, _key(out), len(ops))
    if i is not None and ops[i].name in _ACTIVATIONS and ops[i].operands:
        i = _writer(ops, _key(ops[i].operands[0]), i)
    return _sums_input(ops, i, _key(inp))
