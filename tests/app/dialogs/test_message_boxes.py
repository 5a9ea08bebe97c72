"""The standard message boxes, and the test guard that keeps an unasked one from hanging the
test run: an error box is answered at once and named; a question that no one answers and that
nothing closes is rejected after its limit and named too."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from learndrop.app.dialogs.standard import confirm, show_error


class Ending(QObject):
    ended = Signal()


def test_an_unasked_error_box_is_answered_at_once_and_named(message_boxes: Any) -> None:
    show_error(None, "Training failed", "the disk is full: free some space")
    assert message_boxes.texts == [
        "critical box 'Training failed': the disk is full: free some space"]
    message_boxes.texts.clear()  # asked for here: the guard must not fail this test


def test_a_question_nobody_answers_is_rejected_after_its_limit(qtbot: Any,
                                                               message_boxes: Any) -> None:
    message_boxes.limit_ms = 50
    assert not confirm(None, "Cancel the run?", "Cancel this run and discard its files?",
                       until=Ending().ended)
    assert message_boxes.texts == [
        "message box left open: Cancel this run and discard its files?"]
    message_boxes.texts.clear()


def test_a_question_closes_when_its_subject_ends(qtbot: Any, message_boxes: Any) -> None:
    run = Ending()
    QTimer.singleShot(30, run.ended.emit)
    assert not confirm(None, "Stop training and quit?", "A run is in progress.",
                       until=run.ended)
    assert message_boxes.texts == []
