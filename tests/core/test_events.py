"""call_hook fails loudly on wiring mistakes and visibly on a broken callback; the epoch
helpers follow the convention in events.py's docstring."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from learndrop.core.events import (
    Callback,
    call_hook,
    display_epoch,
    epoch_number,
    epoch_of_step,
)


class Seen(Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.warnings: list[str] = []

    def on_epoch_start(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)


class Broken(Callback):
    def on_epoch_start(self, epoch: int) -> None:
        raise ValueError(f"progress bar broke at {epoch}")


class BrokenWarnings(Callback):
    def on_warning(self, message: str) -> None:
        raise RuntimeError("cannot warn")


def test_an_unknown_hook_name_is_an_error() -> None:
    with pytest.raises(AttributeError, match="'on_epoch_begin' is not a callback hook"):
        call_hook([Seen()], "on_epoch_begin", 0)
    with pytest.raises(AttributeError):  # even with no callback to call it on
        call_hook([], "on_fitstart")


def test_a_callback_without_the_hook_is_an_error() -> None:
    class NotACallback:
        pass

    with pytest.raises(AttributeError):
        call_hook([NotACallback()], "on_epoch_start", 0)  # type: ignore[list-item]


def test_a_failing_callback_is_logged_reported_once_and_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    seen, broken = Seen(), Broken()
    with caplog.at_level(logging.DEBUG, logger="learndrop.core.events"):
        for epoch in range(3):
            call_hook([broken, seen], "on_epoch_start", epoch)
    assert seen.epochs == [0, 1, 2]
    assert seen.warnings == ["callback Broken.on_epoch_start failed (ValueError: progress bar "
                             "broke at 0); the run goes on"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert errors[0].getMessage() == "callback Broken.on_epoch_start failed; the run goes on"
    assert "Traceback" in caplog.text and "progress bar broke at 0" in caplog.text
    later = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(later) == 2 and "broke at 2" in later[-1].getMessage()


def test_each_failing_callback_is_reported_once() -> None:
    seen, first, second = Seen(), Broken(), Broken()
    call_hook([first, second, seen], "on_epoch_start", 0)
    call_hook([first, second, seen], "on_epoch_start", 1)
    assert len(seen.warnings) == 2  # one for each broken callback
    assert seen.epochs == [0, 1]


def test_a_failing_on_warning_does_not_loop(caplog: pytest.LogCaptureFixture) -> None:
    seen = Seen()
    with caplog.at_level(logging.ERROR, logger="learndrop.core.events"):
        call_hook([BrokenWarnings(), seen], "on_warning", "disk almost full")
    assert seen.warnings == ["disk almost full"]
    assert len(caplog.records) == 1


@pytest.mark.parametrize("fn, args, expected", [
    (display_epoch, (0,), 1), (display_epoch, (9,), 10),
    (epoch_of_step, (6, 4), 1.5), (epoch_of_step, (8, 4), 2.0), (epoch_of_step, (6, 0), 6.0),
    (epoch_number, (1, 4), 1), (epoch_number, (4, 4), 1), (epoch_number, (5, 4), 2),
    (epoch_number, (0, 4), 1), (epoch_number, (7, 0), 7),
])
def test_epoch_helpers(fn: Any, args: tuple[int, ...], expected: float) -> None:
    assert fn(*args) == expected


def test_each_event_payload_has_one_hook_read_from_the_callback() -> None:
    from learndrop.core.events import (
        HOOKS,
        CheckpointSaved,
        DropEvent,
        EpochEnd,
        FitEnd,
        FitStart,
        Progress,
        RestoreEvent,
        SavingsReport,
        ScoreCheck,
        UserAction,
        payload_hooks,
    )

    hooks = payload_hooks()
    assert hooks == {FitStart: "on_fit_start", Progress: "on_progress", ScoreCheck: "on_scores",
                     DropEvent: "on_drop", RestoreEvent: "on_restore", SavingsReport: "on_savings",
                     EpochEnd: "on_epoch_end",
                     CheckpointSaved: "on_checkpoint", UserAction: "on_user_action",
                     FitEnd: "on_fit_end"}
    assert set(hooks.values()) <= set(HOOKS)
