"""Qt's standard dialogs as one-line helpers: confirmations, errors, file choosers and About."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

import learndrop

__all__ = ["confirm", "show_error", "ask_open_config", "ask_save_config", "ask_folder",
           "show_about"]

CONFIG_FILTER = "Run configuration (*.toml *.json);;All files (*)"


def confirm(parent: QWidget | None, title: str, text: str, yes: str = "Yes",
            until: SignalInstance | None = None) -> bool:
    """Ask a yes/no question; True when the user said yes. ``until``: a signal that makes
    the question moot (the run it asks about ended, say): the box then closes by itself and
    the answer is no."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    if until is None:
        answer = QMessageBox.question(parent, title, text, buttons,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
    box = QMessageBox(QMessageBox.Icon.Question, title, text, buttons, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    button = box.button(QMessageBox.StandardButton.Yes)
    if button is not None and yes != "Yes":
        button.setText(yes)
    until.connect(box.reject)
    try:
        said = box.exec()
    finally:
        until.disconnect(box.reject)
        box.deleteLater()
    return bool(said == QMessageBox.StandardButton.Yes.value)


def show_error(parent: QWidget | None, title: str, message: str) -> None:
    """Show a one-line error to the user."""
    QMessageBox.critical(parent, title, message)


def ask_open_config(parent: QWidget | None, start: str = "") -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open run configuration", start,
                                          CONFIG_FILTER)
    return Path(path) if path else None


def ask_save_config(parent: QWidget | None, start: str = "") -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Save run configuration",
                                                 start or "learndrop-run.toml", CONFIG_FILTER)
    if not path:
        return None
    p = Path(path)
    if p.suffix.lower() not in (".toml", ".json"):
        p = p.with_suffix(".toml")
    return p


def ask_folder(parent: QWidget | None, title: str, start: str = "") -> str | None:
    path = QFileDialog.getExistingDirectory(parent, title, start)
    return path or None


def show_about(parent: QWidget | None) -> None:
    QMessageBox.about(
        parent, "About Learn&Drop Studio",
        f"<h3>Learn&amp;Drop Studio {learndrop.__version__}</h3>"
        "<p>Trains convolutional networks and drops the layers that have stopped learning, "
        "so the rest of training does less work. Watch each layer's learning score, the "
        "drops and the savings live.</p>"
        "<p>Method: Cruciata et al., <i>Learn&amp;Drop: Fast Learning of CNNs based on "
        "Layer Dropping</i>, Neural Computing and Applications 36 (2024).</p>"
        "<p>Headless runs: <code>learndrop train --config FILE</code></p>")
