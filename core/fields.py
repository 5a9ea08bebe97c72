"""How a setting is declared once: type, default, bounds and a one-line help, in one field.

A setting is a dataclass field whose metadata, made by :func:`doc`, holds its help text
(shown in ``--help`` and as the app's tooltip) and its bounds (``min``/``max``, inclusive);
its type annotation gives its kind (bool, int, float, text, a list of names, or a fixed
choice as ``Literal``). :func:`value_problem` is the one check of a value against such a
declaration; the run config and the engine's drop policy both use it, so a value is refused
with the same one-line message wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, get_args, get_origin

__all__ = ["doc", "value_problem", "choices_of"]


def doc(text: str, **bounds: Any) -> dict[str, Any]:
    """Field metadata: a one-line explanation and optional ``min``/``max`` bounds."""
    return {"doc": text, **bounds}


def choices_of(hint: Any) -> tuple[str, ...]:
    """The fixed choices of a ``Literal`` type, else ``()``."""
    return tuple(get_args(hint)) if get_origin(hint) is Literal else ()


def value_problem(path: str, value: Any, f: dataclasses.Field[Any], hint: Any) -> str | None:
    """A one-line message when ``value`` does not fit the setting declared by field ``f``
    (of type ``hint``) at dotted ``path``; ``None`` when it fits."""
    choices = choices_of(hint)
    if choices:
        if value not in choices:
            return f"{path} must be one of {', '.join(choices)}, got {value!r}"
        return None
    if hint is bool:
        return None if isinstance(value, bool) else f"{path} must be true or false, got {value!r}"
    if get_origin(hint) in (list, typing.List):  # noqa: UP006
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return None
        return f"{path} must be a list of names, got {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"{path} must be text, got {value!r}"
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "an integer" if hint is int else "a number"
            return f"{path} must be {kind}, got {value!r}"
        if hint is int and not isinstance(value, int):
            return f"{path} must be an integer, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{path} must be a finite number, got {value}"
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo:
            return f"{path} must be at least {lo}, got {value}"
        if hi is not None and value > hi:
            return f"{path} must be at most {hi}, got {value}"
        return None
    raise TypeError(f"unsupported setting type {hint!r} for {path}")
