"""The Qt bridge (pytest-qt, offscreen): every engine hook, fired in a training thread,
reaches the live panel and then the window's status line in the GUI thread, through one
signal; a hook name that is not one of the engine's fails loudly."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from learndrop.app.services import BridgeSignals, QtBridge
from learndrop.core.events import HOOKS, Callback

pytestmark = pytest.mark.gui


def test_the_bridge_forwards_exactly_the_engine_hooks() -> None:
    hooks = [name for name in dir(QtBridge) if name.startswith("on_")]
    assert sorted(hooks) == sorted(HOOKS)
    assert all(getattr(QtBridge, h) is not getattr(Callback, h) for h in HOOKS)


def test_every_hook_reaches_the_live_panel_from_the_training_thread(
        qtbot: Any, make_window: Any) -> None:
    window = make_window()
    seen: list[tuple[str, str, object, bool]] = []
    for target, who in ((window.live, "live"), (window, "window")):
        for hook in HOOKS:  # a recorder in place of each hook, on this instance only
            setattr(target, hook, lambda payload, h=hook, w=who: seen.append(
                (w, h, payload, threading.current_thread() is threading.main_thread())))
    bridge = QtBridge(window.signals)
    payloads = {hook: object() for hook in HOOKS}

    def train() -> None:
        for hook in HOOKS:
            getattr(bridge, hook)(payloads[hook])

    worker = threading.Thread(target=train, name="fake-training")
    worker.start()
    worker.join()
    assert seen == []  # queued: nothing ran in the training thread
    qtbot.waitUntil(lambda: len(seen) == 2 * len(HOOKS), timeout=5000)
    assert seen == [(who, hook, payloads[hook], True)
                    for hook in HOOKS for who in ("live", "window")]


def test_an_unknown_hook_fails_loudly(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    with qtbot.captureExceptions() as raised:
        window.signals.hook.emit("on_batch", None)  # not a hook
    assert len(raised) == 1
    kind, error, _tb = raised[0]
    assert kind is AttributeError and "'on_batch' is not a callback hook" in str(error)


def test_signals_are_one_signal() -> None:
    signals = [name for name, value in vars(BridgeSignals).items()
               if type(value).__name__ == "Signal"]
    assert signals == ["hook"]
