"""Notices the engine gives while training: to a plain loop and to callbacks alike."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from ..events import Callback, call_hook

__all__ = ["LearnDropWarning", "notify"]


class LearnDropWarning(UserWarning):
    """Something the engine changed on its own while training (cache mode fell back to
    freeze, say). Filter it with ``warnings.filterwarnings`` like any other warning."""


def notify(callbacks: Iterable[Callback], message: str) -> None:
    """Tell everyone: a Python warning (what a plain training loop sees) and the callbacks'
    ``on_warning`` (what the command line and the app show)."""
    warnings.warn(message, LearnDropWarning, stacklevel=3)
    call_hook(callbacks, "on_warning", message)
