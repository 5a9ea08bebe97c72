"""How a setting is declared once: type, default, bounds, help and presentation, in one field.

A setting is a dataclass field whose metadata, made by :func:`doc`, holds its help text
(shown in ``--help`` and as the app's tooltip), its bounds (``min``/``max``, inclusive) and
how front ends present it: the app form's label, its short command-line flag, the group of
the form's main settings it shows in (and where), and, for a folder, what an empty value
means. Its type annotation gives its kind (bool, int, float, text, a list of names, or a
fixed choice as ``Literal``).

:data:`TYPE_CHECKS` is the one table of what each kind accepts. :func:`typed_value` takes a
value through it, either as held (the run config's and the drop policy's checks, through
:func:`value_problem`) or as read from a file, a flag or a form (``parse=True``: text such as
``"5"``, ``"yes"`` or ``"a, b"`` is converted), so a value is refused with the same one-line
message wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

__all__ = ["doc", "value_problem", "choices_of", "typed_value", "ValueRefused", "TYPE_CHECKS",
           "label_of", "short_repr", "is_utf8"]


def doc(text: str, *, label: str = "", flag: str = "", group: str = "", place: int = 0,
        folder: str = "", **bounds: Any) -> dict[str, Any]:
    """Field metadata: a one-line explanation, optional ``min``/``max`` bounds and how the
    setting is presented.

    ``label``: its name in the app's form (default: the field's name, capitalised);
    ``flag``: its short command-line flag without the dashes (``lr`` for ``--lr``), for the
    settings people change most; ``group`` and ``place``: the group of the form's main
    settings it shows in, and its position there (groups show in the order of their lowest
    place; a setting without a group is under "Advanced"); ``folder``: the setting is a
    folder, and this says what leaving it empty means.
    """
    shown = {"label": label, "flag": flag, "group": group, "place": place, "folder": folder}
    return {"doc": text, **{k: v for k, v in shown.items() if v}, **bounds}


def label_of(f: dataclasses.Field[Any]) -> str:
    """The form's label of a setting (its declared ``label``, else ``batch_size`` -> "Batch
    size")."""
    return str(f.metadata.get("label") or f.name.replace("_", " ").capitalize())


def choices_of(hint: Any) -> tuple[str, ...]:
    """The fixed choices of a ``Literal`` type, else ``()``."""
    return tuple(get_args(hint)) if get_origin(hint) is Literal else ()


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: an error line never echoes a huge value; true, false and
    null as a config file spells them (TOML, JSON), not Python's True, False, None."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = "null" if value is None else repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def is_utf8(text: str) -> bool:
    """False when ``text`` holds bytes that were not UTF-8 (they arrive as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ValueRefused(ValueError):
    """A value a setting cannot take; the message says what it must be ("must be an integer,
    got 'two'"), without the setting's name."""


# ---- the one table of type checks ---------------------------------------------------------
# Each check takes (value, parse) and returns the value the setting holds, or raises
# ValueRefused. parse=False: the value must already be of the setting's kind (an integer is
# a number too); parse=True: what a file, a flag or a form gives is converted as well.
TypeCheck = Callable[[Any, bool], Any]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _bool(value: Any, parse: bool) -> bool:
    if isinstance(value, bool):
        return value
    if parse and isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ValueRefused(f"must be true or false, got {short_repr(value)}")


def _int(value: Any, parse: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if parse and isinstance(value, float) and value.is_integer():
        return int(value)
    if parse and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueRefused(f"must be an integer, got {short_repr(value)}")


def _float(value: Any, parse: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
            isinstance(value, str) and not parse):
        raise ValueRefused(f"must be a number, got {short_repr(value)}")
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ValueRefused(f"must be a number, got {short_repr(value)}") from None
    elif parse:
        try:
            out = float(value)
        except OverflowError:
            raise ValueRefused("must be a finite number, got one too large for a "
                               "float") from None
    else:
        out = value
    if isinstance(out, float) and not math.isfinite(out):
        raise ValueRefused(f"must be a finite number, got {short_repr(value)}")
    return out


def _text(value: Any, parse: bool) -> str:
    if not isinstance(value, str):
        raise ValueRefused(f"must be text, got {short_repr(value)}")
    if "\0" in value or not is_utf8(value):
        raise ValueRefused(f"must be plain text: it holds a NUL byte or bytes that are not "
                           f"UTF-8 ({short_repr(value)})")
    return value


def _names(value: Any, parse: bool) -> list[str]:
    if parse and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if (isinstance(value, list) or (parse and isinstance(value, tuple))) and all(
            isinstance(v, str) for v in value):
        return list(value)
    raise ValueRefused(f"must be a list of names, got {short_repr(value)}")


#: what each kind of setting accepts, by its type (``list`` stands for ``list[str]``); a
#: fixed choice (``Literal``) accepts one of its choices (``parse``: in any case)
TYPE_CHECKS: dict[Any, TypeCheck] = {bool: _bool, int: _int, float: _float, str: _text,
                                     list: _names}


def _choice(value: Any, choices: tuple[str, ...], parse: bool) -> str:
    if isinstance(value, str):
        taken = value.lower() if parse else value
        if taken in choices:
            return taken
    raise ValueRefused(f"must be one of {', '.join(choices)}, got {short_repr(value)}")


def typed_value(hint: Any, value: Any, *, parse: bool = False) -> Any:
    """``value`` as a setting of type ``hint`` holds it, through :data:`TYPE_CHECKS`; raises
    :class:`ValueRefused` when it does not fit (bounds are not checked here) and
    ``TypeError`` for a type no setting may have."""
    choices = choices_of(hint)
    if choices:
        return _choice(value, choices, parse)
    kind = list if get_origin(hint) in (list, typing.List) else hint  # noqa: UP006
    check = TYPE_CHECKS.get(kind) if isinstance(kind, type) else None
    if check is None:
        raise TypeError(f"unsupported setting type {hint!r}")
    return check(value, parse)


def value_problem(path: str, value: Any, f: dataclasses.Field[Any], hint: Any) -> str | None:
    """A one-line message when ``value`` does not fit the setting declared by field ``f``
    (of type ``hint``) at dotted ``path``; ``None`` when it fits."""
    try:
        typed_value(hint, value)
    except ValueRefused as exc:
        return f"{path} {exc}"
    except TypeError:
        raise TypeError(f"unsupported setting type {hint!r} for {path}") from None
    if hint in (int, float):
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo:
            return f"{path} must be at least {lo}, got {value}"
        if hi is not None and value > hi:
            return f"{path} must be at most {hi}, got {value}"
    return None
