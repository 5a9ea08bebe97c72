"""The setup form's field editors, one per config field, generated from the field's metadata.

:func:`make_editor` picks the widget from the field's type and metadata: spin boxes with the
field's bounds, combo boxes for fixed choices and for the catalogues (models, data sets,
devices), check boxes for switches, a folder chooser for folders and a comma-separated line
for lists of names. Each editor carries the field's one-line explanation as its tooltip and
can be marked invalid at the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal, SignalInstance
from PySide6.QtGui import QPalette, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QStyle,
    QToolButton,
    QWidget,
)

from learndrop.core.config import (
    field_choices,
    field_doc,
    field_folder,
    field_info,
    field_label,
    field_type,
    setting_of,
)

from ..dialogs.standard import ask_folder
from ..services import dataset_names, device_choices, model_names

__all__ = ["FieldEditor", "FloatSpinBox", "IntSpinBox", "FolderEdit", "NoWheelUnlessFocused",
           "doc_label", "label_for", "form_words", "make_editor",
           "notify"]

INT_MAX = 2**31 - 1

INVALID_STYLE = "border: 2px solid #d9363e; border-radius: 3px;"

Getter = Callable[[], Any]
Setter = Callable[[Any], None]


def label_for(path: str) -> str:
    """The form's label of a field (``train.batch_size`` -> "Batch size"), as the field
    declares it."""
    return field_label(path)


def _quoted(path: str) -> str:
    return f"\u201c{label_for(path).replace('&&', '&')}\u201d"


def form_words(message: str) -> str:
    """A message of the engine's checks in the form's words: settings by their labels
    ("Data folder", not data.root), flags as what to do in the form ("tick Download", not
    --data.download true)."""

    def flag(m: re.Match[str]) -> str:
        path = setting_of(m.group(1))
        if path is None:
            return m.group(0)
        value = m.group(2) or ""
        if value in ("true", "false"):
            return f"{'tick' if value == 'true' else 'untick'} {_quoted(path)}"
        return _quoted(path) + (f" {value}" if value else "")

    def setting(m: re.Match[str]) -> str:
        path = setting_of(m.group(1))
        if path is None:
            return m.group(0)
        return _quoted(path) + (f" {m.group(2)}" if m.group(2) else "")

    text = message.replace("'learndrop models' lists", "the Model list offers")
    text = re.sub(r"point --([a-z][a-z_.-]*) at (a folder holding it|it)",
                  lambda m: (f"choose the {_quoted(p)} that holds it"
                             if (p := setting_of(m.group(1))) else m.group(0)), text)
    text = re.sub(r"(?:pass |use )?--([a-z][a-z_.-]*)"
                  r"(?: (true|false|[\w./~-]*[\d/~._][\w./~-]*))?", flag, text)
    return re.sub(r"\b([a-z]+(?:[._][a-z]+)+|[a-z_]+(?==))(?:=([\w.-]+))?", setting, text)


@dataclass
class FieldEditor:
    """A config field's widget: ``get()`` reads the value, ``set(v)`` shows one."""

    path: str
    widget: QWidget
    get: Getter
    set: Setter
    doc: str
    target: QWidget | None = None  # what gets the red border (default: ``widget``)

    def mark(self, message: str | None) -> None:
        """Show ``message`` at the field (red border + tooltip), or clear the mark."""
        target = self.target or self.widget
        target.setStyleSheet(INVALID_STYLE if message else "")
        for w in {self.widget, target}:
            w.setToolTip(message or self.doc)
            w.setProperty("invalid", bool(message))


class NoWheelUnlessFocused(QObject):
    """Event filter: scrolling the form must not change the spin box or combo under the
    mouse."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()
            return True
        return False


def _range_state(box: QSpinBox | QDoubleSpinBox, value: float, text: str,
                 pos: int) -> tuple[QValidator.State, str, int]:
    """A number typed into ``box``: acceptable inside its range, otherwise intermediate (kept
    while typing; ``fixup`` then reports it)."""
    inside = box.minimum() <= value <= box.maximum()
    return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate,
            text, pos)


class _ValueBeforeTyping:
    """The value a number field had before the user began typing into it, and what an
    entry the field cannot take (or an emptied field) returns it to: the field takes each
    prefix of a number that fits while it is typed (the 1 of 1e9), and that prefix must not
    stay as the value."""

    def __init__(self, box: QSpinBox | QDoubleSpinBox) -> None:
        self.box = box
        self.value: float = box.value()
        self.typing = False
        box.lineEdit().textEdited.connect(self._typed)
        box.valueChanged.connect(self._changed)
        box.editingFinished.connect(self._done)

    def _typed(self, *_: Any) -> None:
        self.typing = True

    def _changed(self, value: float) -> None:
        if not self.typing:  # set by the program, a step or the wheel: the new value
            self.value = value

    def _done(self) -> None:
        self.typing = False
        self.value = self.box.value()

    def stepping(self) -> None:
        self.typing = False

    def restore(self, rejected: SignalInstance, text: str) -> str:
        """An entry the field cannot take: back to the value before the typing, then say
        so (``rejected(text)``, not for an emptied field); the text to show."""
        self.box.setValue(self.value)  # type: ignore[arg-type]  # an int box holds ints
        if text.strip():
            rejected.emit(text.strip())
        return self.box.textFromValue(self.value)  # type: ignore[arg-type]


class IntSpinBox(QSpinBox):
    """A whole-number field that lets any number be typed and, when one outside its range is
    entered, says so (``rejected(text)``) before showing its value again, instead of
    refusing the keystrokes or reverting without a word."""

    rejected = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._before = _ValueBeforeTyping(self)

    def stepBy(self, steps: int) -> None:
        self._before.stepping()
        super().stepBy(steps)

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        t = text.strip()
        if t in ("", "-", "+"):
            return QValidator.State.Intermediate, text, pos
        try:
            value = int(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        return _range_state(self, value, text, pos)

    def fixup(self, text: str) -> str:
        return self._before.restore(self.rejected, text)


class FloatSpinBox(QDoubleSpinBox):
    """A number field that shows ``0.05`` or ``1e-05`` instead of fixed decimals; a value
    outside its range is reported (``rejected(text)``), as :class:`IntSpinBox` does."""

    rejected = Signal(str)

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        self.setDecimals(12)
        self.setRange(lo, hi)
        if lo > 0:  # log-scale settings such as the learning rate
            self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        else:
            self.setSingleStep(0.01 if hi <= 1 else 0.1 if hi <= 100 else 1.0)
        self._before = _ValueBeforeTyping(self)

    def stepBy(self, steps: int) -> None:
        self._before.stepping()
        super().stepBy(steps)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        t = text.strip()
        try:
            value = float(t)
        except ValueError:
            ok = t != "" and all(c in "0123456789.eE+-" for c in t)
            state = QValidator.State.Intermediate if ok or t == "" else QValidator.State.Invalid
            return state, text, pos
        return _range_state(self, value, text, pos)

    def fixup(self, text: str) -> str:
        return self._before.restore(self.rejected, text)


class FolderEdit(QWidget):
    """A folder path: a line to type it in and a button that opens a folder chooser."""

    def __init__(self, what: str, placeholder: str) -> None:
        super().__init__()
        self._what = what
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(True)
        pick = QToolButton()
        pick.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        pick.setToolTip("Choose a folder")
        pick.setAccessibleName(f"Choose {what}")
        pick.clicked.connect(self._choose)
        row.addWidget(self.edit, 1)
        row.addWidget(pick)
        self.setFocusProxy(self.edit)

    def _choose(self) -> None:
        chosen = ask_folder(self, f"Choose {self._what}", self.edit.text())
        if chosen:
            self.edit.setText(chosen)

    def text(self) -> str:
        return self.edit.text().strip()

    def set_text(self, value: object) -> None:
        self.edit.setText(str(value))


def _combo(choices: Iterable[str], editable_values: bool) -> tuple[QComboBox, Getter, Setter]:
    box = QComboBox()
    box.addItems(list(choices))
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)

    def set_value(value: Any) -> None:
        text = str(value)
        if box.findText(text) < 0 and editable_values:
            box.addItem(text)
        box.setCurrentIndex(max(box.findText(text), 0))

    return box, box.currentText, set_value


def _names_line() -> tuple[QLineEdit, Getter, Setter]:
    line = QLineEdit()
    line.setPlaceholderText("comma-separated names (empty: none)")

    def get() -> list[str]:
        return [p.strip() for p in line.text().split(",") if p.strip()]

    def put(v: list[str]) -> None:
        line.setText(", ".join(v))

    return line, get, put


def _widget_for(path: str) -> tuple[QWidget, Getter, Setter]:
    """The editing widget for ``path`` with its value's getter and setter."""
    hint = field_type(path)
    meta = field_info(path).metadata
    choices = field_choices(path)
    if path == "model.name":
        return _combo(model_names(), True)
    if path == "data.dataset":
        return _combo(dataset_names(), True)
    if path == "train.device":
        return _combo(device_choices(), True)
    if field_folder(path):
        folder = FolderEdit(label_for(path).lower(), field_folder(path))
        return folder, folder.text, folder.set_text
    if choices:
        return _combo(choices, False)
    if hint is bool:
        box = QCheckBox()
        return box, box.isChecked, lambda v: box.setChecked(bool(v))
    if hint is int:
        spin = IntSpinBox()
        spin.setRange(int(meta.get("min", 0)), int(min(meta.get("max", INT_MAX), INT_MAX)))
        spin.setGroupSeparatorShown(False)
        return spin, spin.value, lambda v: spin.setValue(int(v))
    if hint is float:
        fspin = FloatSpinBox(float(meta.get("min", 0.0)), float(meta.get("max", 1e12)))
        return fspin, fspin.value, lambda v: fspin.setValue(float(v))
    if hint is str:
        line = QLineEdit()
        return line, lambda: line.text().strip(), lambda v: line.setText(str(v))
    return _names_line()  # lists of names


def make_editor(path: str) -> FieldEditor:
    """The editor for one config field, chosen from its type and metadata."""
    widget, get, put = _widget_for(path)
    doc = field_doc(path)
    widget.setToolTip(doc)
    widget.setAccessibleName(label_for(path))
    widget.setAccessibleDescription(doc)
    widget.setObjectName(path)
    if isinstance(widget, (QAbstractSpinBox, QComboBox)):
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    target = widget.edit if isinstance(widget, FolderEdit) else None
    return FieldEditor(path, widget, get, put, doc, target)


def notify(editor: FieldEditor, callback: Callable[..., None]) -> None:
    """Call ``callback`` whenever the editor's value changes."""
    w = editor.widget
    if isinstance(w, QComboBox):
        w.currentTextChanged.connect(callback)
    elif isinstance(w, QCheckBox):
        w.toggled.connect(callback)
    elif isinstance(w, QSpinBox):
        w.valueChanged.connect(callback)
    elif isinstance(w, QDoubleSpinBox):
        w.valueChanged.connect(callback)
    elif isinstance(w, QLineEdit):
        w.textChanged.connect(callback)
    elif isinstance(w, FolderEdit):
        w.edit.textChanged.connect(callback)
    else:
        raise TypeError(f"no change signal known for a {type(w).__name__} ({editor.path})")


def doc_label(text: str) -> QLabel:
    """A field's explanation in small, muted type under it."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("role", "hint")
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.88)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label
