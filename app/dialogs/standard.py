"""Qt's standard dialogs as one-line helpers: confirmations, errors, file choosers, the quick
guide, the keyboard shortcuts and About."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, SignalInstance
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

import learndrop

__all__ = ["confirm", "show_error", "ask_open_config", "ask_save_config", "ask_folder",
           "show_about", "show_guide", "show_shortcuts", "GUIDE"]

#: the Help menu's quick guide
GUIDE = """<h3>Learn&amp;Drop Studio in five steps</h3>
<ol>
<li><b>Choose</b> a model and a data set under <i>Run setup</i> (digits and synthetic need no
download; the others say so before Start). Every setting explains itself when you hover it.</li>
<li><b>Start training</b> (Ctrl+Return). The strip on top shows the network, input on the left,
one block per unit, as wide as its share of the work.</li>
<li><b>Watch the scores</b>: 1 means a unit learns as fast as ever, near 0 that it has settled.
Settled units turn orange, then grey when they are dropped: from then on training skips their
work. Hover a curve to name its unit; <i>Smooth</i> and <i>Log scale</i> help with many units.</li>
<li><b>Step in</b> when you like: right-click a unit to pin it (never dropped) or drop it now;
Pause, Stop (keeps a checkpoint) or Cancel (discards the run). What you do is recorded with
the run.</li>
<li><b>Look back</b> in <i>Run history</i>: open a run to see it again, follow one that trains
in a terminal, resume a stopped one, load its settings, compare two runs or export a report
(HTML, PDF, CSV, JSON).</li>
</ol>
<p>Without the app: <code>learndrop train --config FILE</code>; <code>learndrop runs</code>
lists the same run history.</p>"""

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


def _info_box(parent: QWidget | None, title: str, html: str) -> QMessageBox:
    """A non-blocking box with rich text (it deletes itself when closed)."""
    box = QMessageBox(QMessageBox.Icon.NoIcon, title, "", QMessageBox.StandardButton.Close,
                      parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(html)
    box.setModal(False)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box


def show_guide(parent: QWidget | None) -> QMessageBox:
    """The quick guide: what to do, step by step."""
    return _info_box(parent, "Quick guide", GUIDE)


def show_shortcuts(parent: QWidget | None, shortcuts: list[tuple[str, str]]) -> QMessageBox:
    """The keyboard shortcuts, as (what it does, keys) pairs."""
    rows = "".join(f"<tr><td>{escape(what)}</td><td>&nbsp;&nbsp;<b>{escape(keys)}</b></td>"
                   f"</tr>" for what, keys in shortcuts)
    return _info_box(parent, "Keyboard shortcuts",
                     f"<h3>Keyboard shortcuts</h3><table>{rows}</table>")


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
