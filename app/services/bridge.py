"""The one adapter between the engine's callbacks and Qt.

:class:`QtBridge` is an engine :class:`~learndrop.core.events.Callback` whose every hook (each
name in :data:`~learndrop.core.events.HOOKS`, so none is listed here again) only emits
:attr:`BridgeSignals.hook` with the hook's name and its one argument. The hooks run in the
training thread, the receivers (widgets) live in the GUI thread, so Qt queues every emission
and the widgets are never touched from the training thread. A receiver hands the pair to its
callbacks with :func:`~learndrop.core.events.call_hook`, as a replay does, so an unknown hook
name fails loudly there. Payloads are the engine's frozen event dataclasses (an epoch index,
a warning's text, a wall-clock time for the hooks that take a plain value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from learndrop.core.events import HOOKS, Callback

__all__ = ["BridgeSignals", "QtBridge"]


class BridgeSignals(QObject):
    """The engine's hooks as one signal. Create it in the GUI thread."""

    hook = Signal(str, object)  # hook name (one of HOOKS), its argument


class QtBridge(Callback):
    """Engine callback that turns every hook into an emission of ``signals.hook`` (and
    nothing else)."""

    def __init__(self, signals: BridgeSignals) -> None:
        self.signals = signals


def _forward(hook: str) -> Callable[[QtBridge, Any], None]:
    def forward(self: QtBridge, payload: Any) -> None:
        self.signals.hook.emit(hook, payload)

    forward.__name__ = forward.__qualname__ = hook
    forward.__doc__ = f"Emit ``signals.hook({hook!r}, payload)``."
    return forward


for _hook in HOOKS:
    setattr(QtBridge, _hook, _forward(_hook))
del _hook
