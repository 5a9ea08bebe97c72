"""Checks of settings that field bounds cannot say: a run name that can name a folder, an
output folder a file system takes, a time budget written as people write durations."""

from __future__ import annotations

import re
from pathlib import Path

from .fields import is_utf8, short_repr

__all__ = ["MAX_NAME_CHARS", "duration_seconds", "time_budget_problem", "output_problems"]

#: the longest run name: folders and names stay well inside every file system's limit
MAX_NAME_CHARS = 200


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run folder, or ``None``."""
    if name in (".", ".."):
        return "is not a folder name"
    if any(c in name for c in "/\\"):
        return "holds a slash"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character (a newline, a tab, ...)"
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8", "replace")) > 240:
        return f"is longer than {MAX_NAME_CHARS} characters"
    return None



def output_problems(name: str, folder: str) -> list[tuple[str, str]]:
    """The problems of ``output.name`` and ``output.dir``, as (field path, message)."""
    out: list[tuple[str, str]] = []
    if name and is_utf8(name):
        why = _name_problem(name)
        if why:
            out.append(("output.name", f"output.name {short_repr(name)} {why}: use letters, "
                        f"digits, dots, dashes or underscores, at most {MAX_NAME_CHARS} "
                        f"characters"))
    if folder and is_utf8(folder):
        if any(ord(c) < 32 for c in folder):
            out.append(("output.dir", f"output.dir {short_repr(folder)} holds a control "
                        f"character (a newline, a tab, ...): give a plain path"))
        elif any(len(part.encode("utf-8")) > 255 for part in Path(folder).parts):
            out.append(("output.dir", f"output.dir {short_repr(folder)} has a folder name "
                        f"longer than 255 bytes, more than file systems allow"))
    return out


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m(?:in)?)?(?:(\d+(?:\.\d*)?)s?)?")


def duration_seconds(text: str) -> float | None:
    """A duration as people write it, in seconds: ``90s``, ``90``, ``10m``, ``10min``,
    ``1h30m``, ``1.5h``; None for an empty text. ``ValueError`` for anything else."""
    text = "".join(str(text).split()).lower()
    if not text:
        return None
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()):
        raise ValueError(f"{short_repr(text)} is not a duration: write it like 90s, 10m or "
                         f"1h30m")
    h, m, sec = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + sec


def time_budget_problem(budget_text: object, nproc: object) -> str | None:
    """What is wrong with ``train.time_budget`` (given ``train.nproc``), or None."""
    try:
        budget = duration_seconds(budget_text) if isinstance(budget_text, str) else None
    except ValueError as exc:
        return f"train.time_budget {exc}"
    if budget is not None and budget <= 0:
        return "train.time_budget must be more than 0 seconds (empty: no budget)"
    if budget is not None and isinstance(nproc, int) and nproc > 1:
        return ("train.time_budget: a time-budgeted run trains in one process: drop "
                "train.nproc or the budget")
    return None
