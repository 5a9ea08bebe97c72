"""The run setup form, bound to :class:`~learndrop.core.config.RunConfig`.

Every setting gets an editor generated from the config's field metadata (spin boxes with the
field's bounds, combo boxes for fixed choices, check boxes for switches) and its one-line
explanation as tooltip. The common settings are shown in three groups; the rest live in a
collapsible "Advanced" section. Invalid values are marked at their field and reported through
:attr:`SetupPanel.validity_changed` so Start can be disabled with the reason.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QPalette, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.config import (
    RunConfig,
    field_choices,
    field_doc,
    field_info,
    field_paths,
    field_type,
    load_config,
    save_config,
)
from learndrop.core.errors import LearnDropError
from learndrop.core.training import available_devices

from . import dialogs

__all__ = ["SetupPanel", "FieldEditor", "make_editor", "MAIN_GROUPS"]

log = logging.getLogger(__name__)

INT_MAX = 2**31 - 1

MAIN_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Model and data", ("model.name", "data.dataset", "data.root")),
    ("Training", ("train.epochs", "train.batch_size", "optim.optimizer", "optim.lr",
                  "optim.schedule", "train.device", "train.amp")),
    ("Learn&&Drop policy", ("drop.threshold", "drop.patience", "drop.warmup_epochs",
                            "drop.check_every", "drop.order", "drop.mode", "drop.keep_last")),
)
BASELINE_FIELD = "drop.enabled"
SECTION_TITLES = {"data": "Data", "model": "Model", "optim": "Optimizer",
                  "drop": "Learn&&Drop", "train": "Training", "output": "Output"}
LABELS = {
    "model.name": "Model", "data.dataset": "Data set", "data.root": "Data folder",
    "train.epochs": "Epochs", "train.batch_size": "Batch size", "optim.optimizer": "Optimizer",
    "optim.lr": "Learning rate", "optim.schedule": "LR schedule", "train.device": "Device",
    "train.amp": "Mixed precision", "drop.threshold": "Settled below",
    "drop.patience": "Patience (checks)", "drop.warmup_epochs": "Warm-up (epochs)",
    "drop.check_every": "Check every (steps)", "drop.order": "Drop order",
    "drop.mode": "Drop mode", "drop.keep_last": "Always train last",
    "output.dir": "Output folder", "output.name": "Run name",
    "output.checkpoint_every": "Checkpoint every (epochs)", "train.channels_last": "channels_last",
    "train.log_every": "Report every (batches)", "data.image_size": "Image size (px)",
    "data.val_fraction": "Validation share", "data.limit": "Sample limit",
    "data.num_workers": "Loader workers", "data.bad_files": "Unreadable images",
    "model.width": "Width multiplier", "optim.step_every": "Step every (epochs)",
    "optim.gamma": "Step decay", "optim.warmup_epochs": "LR warm-up (epochs)",
    "drop.lr_normalize": "Normalize by LR", "drop.ema": "Score smoothing (EMA)",
    "drop.window": "Trend window (checks)", "drop.units": "Units",
    "drop.pinned": "Pinned units", "drop.cache_budget_mb": "Cache budget (MiB)",
}
FOLDER_FIELDS = {"data.root": "default: the user data folder",
                 "output.dir": "default: the run store"}
INVALID_STYLE = "border: 2px solid #d9363e; border-radius: 3px;"


def label_for(path: str) -> str:
    name = path.split(".", 1)[1]
    return LABELS.get(path, name.replace("_", " ").capitalize())


@dataclass
class FieldEditor:
    """A config field's widget: ``get()`` reads the value, ``set(v)`` shows one."""

    path: str
    widget: QWidget
    get: Callable[[], Any]
    set: Callable[[Any], None]
    doc: str
    target: QWidget | None = None  # what gets the red border (default: ``widget``)

    def mark(self, message: str | None) -> None:
        """Show ``message`` at the field (red border + tooltip), or clear the mark."""
        target = self.target or self.widget
        target.setStyleSheet(INVALID_STYLE if message else "")
        for w in {self.widget, target}:
            w.setToolTip(message or self.doc)
            w.setProperty("invalid", bool(message))


class _NoWheelUnlessFocused(QObject):
    """Scrolling the form must not change the spin box or combo under the mouse."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()
            return True
        return False


class FloatSpinBox(QDoubleSpinBox):
    """A number field that shows ``0.05`` or ``1e-05`` instead of fixed decimals."""

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        self.setDecimals(12)
        self.setRange(lo, hi)
        if lo > 0:  # log-scale settings such as the learning rate
            self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        else:
            self.setSingleStep(0.01 if hi <= 1 else 0.1 if hi <= 100 else 1.0)

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
        inside = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate,
                text, pos)


def _registry_names(loader: Callable[[], Iterable[Any]], what: str) -> list[str]:
    try:
        items = list(loader())
    except Exception as exc:  # noqa: BLE001 - a broken registry must not break the form
        log.warning("could not list %s: %s", what, exc)
        return []
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            names.append(str(item.get("name", item)))
        else:
            names.append(str(getattr(item, "name", item)))
    return names


def _model_names() -> list[str]:
    try:
        from learndrop.core.models import list_models
    except ImportError:
        return []
    return _registry_names(list_models, "models")


def _dataset_names() -> list[str]:
    try:
        from learndrop.core.data import list_datasets
    except ImportError:
        return []
    return _registry_names(list_datasets, "data sets")


def describe(path: str, name: str) -> str:
    """One line about a model or data set from its registry (empty when unknown)."""
    try:
        if path == "model.name":
            from learndrop.core.models import model_info

            return " ".join(model_info(name).description.split())
        if path == "data.dataset":
            from learndrop.core.data import dataset_info

            return " ".join(dataset_info(name).description.split())
    except Exception:  # noqa: BLE001 - unknown or not installed: no description
        return ""
    return ""


def _combo(choices: Iterable[str], editable_values: bool) -> tuple[QComboBox, Callable, Callable]:
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


def _folder_editor(path: str, placeholder: str) -> tuple[QWidget, Callable, Callable]:
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setClearButtonEnabled(True)
    pick = QToolButton()
    pick.setIcon(holder.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
    pick.setToolTip("Choose a folder")
    pick.setAccessibleName(f"Choose {label_for(path).lower()}")

    def choose() -> None:
        chosen = dialogs.ask_folder(holder, f"Choose {label_for(path).lower()}", edit.text())
        if chosen:
            edit.setText(chosen)

    pick.clicked.connect(choose)
    row.addWidget(edit, 1)
    row.addWidget(pick)
    holder.setFocusProxy(edit)
    holder.edit = edit  # type: ignore[attr-defined]  # for change notifications
    return holder, lambda: edit.text().strip(), lambda v: edit.setText(str(v))


def make_editor(path: str) -> FieldEditor:
    """The editor for one config field, chosen from its type and metadata."""
    hint = field_type(path)
    meta = field_info(path).metadata
    choices = field_choices(path)
    widget: QWidget
    if path == "model.name":
        widget, get, put = _combo(_model_names(), True)
    elif path == "data.dataset":
        widget, get, put = _combo(_dataset_names(), True)
    elif path == "train.device":
        widget, get, put = _combo(["auto", *available_devices()], True)
    elif path in FOLDER_FIELDS:
        widget, get, put = _folder_editor(path, FOLDER_FIELDS[path])
    elif choices:
        widget, get, put = _combo(choices, False)
    elif hint is bool:
        box = QCheckBox()
        widget, get, put = box, box.isChecked, lambda v: box.setChecked(bool(v))
    elif hint is int:
        spin = QSpinBox()
        spin.setRange(int(meta.get("min", 0)), int(min(meta.get("max", INT_MAX), INT_MAX)))
        spin.setGroupSeparatorShown(False)
        widget, get, put = spin, spin.value, lambda v: spin.setValue(int(v))
    elif hint is float:
        fspin = FloatSpinBox(float(meta.get("min", 0.0)), float(meta.get("max", 1e12)))
        widget, get, put = fspin, fspin.value, lambda v: fspin.setValue(float(v))
    elif hint is str:
        line = QLineEdit()
        widget, get, put = line, lambda: line.text().strip(), lambda v: line.setText(str(v))
    else:  # lists of names
        line = QLineEdit()
        line.setPlaceholderText("comma-separated names (empty: none)")
        widget = line

        def get() -> list[str]:
            return [p.strip() for p in line.text().split(",") if p.strip()]

        def put(v: list[str]) -> None:
            line.setText(", ".join(v))
    doc = field_doc(path)
    target = getattr(widget, "edit", None)
    widget.setToolTip(doc)
    widget.setAccessibleName(label_for(path))
    widget.setAccessibleDescription(doc)
    widget.setObjectName(path)
    if isinstance(widget, (QAbstractSpinBox, QComboBox)):
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return FieldEditor(path, widget, get, put, doc, target)


def _notify(editor: FieldEditor, callback: Callable[[], None]) -> None:
    w = editor.widget
    if isinstance(w, QComboBox):
        w.currentTextChanged.connect(callback)
    elif isinstance(w, QCheckBox):
        w.toggled.connect(callback)
    elif isinstance(w, QAbstractSpinBox):
        w.valueChanged.connect(callback)  # type: ignore[attr-defined]
    elif isinstance(w, QLineEdit):
        w.textChanged.connect(callback)
    else:
        w.edit.textChanged.connect(callback)  # type: ignore[attr-defined]


def _doc_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setProperty("role", "hint")
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.88)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class SetupPanel(QWidget):
    """The form for a run's settings. :meth:`config` reads it, :meth:`set_config` fills it."""

    changed = Signal()
    validity_changed = Signal(bool, str)  # ok, reason (first problem) when not ok

    def __init__(self, config: RunConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = copy.deepcopy(config or RunConfig())
        self._editors: dict[str, FieldEditor] = {}
        self._loading = False
        self._problems: list[tuple[str, str]] = []
        self._wheel_guard = _NoWheelUnlessFocused(self)
        self._build()
        self.set_config(self._base)

    # ---- building -------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        files = QHBoxLayout()
        self._lockable: list[QWidget] = []
        for text, tip, slot in (
                ("Open…", "Load settings from a TOML or JSON file", self.open_config_dialog),
                ("Save…", "Save these settings to a TOML or JSON file",
                 self.save_config_dialog),
                ("Defaults", "Reset every setting to its default", self.reset_defaults)):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            files.addWidget(button)
            if text != "Save…":  # saving the settings of a running run stays possible
                self._lockable.append(button)
        files.addStretch(1)
        outer.addLayout(files)

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 4, 0)
        shown = {p for _, paths in MAIN_GROUPS for p in paths} | {BASELINE_FIELD}
        for title, paths in MAIN_GROUPS:
            box = QGroupBox(title)
            form = self._form(box)
            if paths[0].startswith("drop."):
                self._add_baseline_switch(form)
            for path in paths:
                self._add_row(form, path, with_doc=path.startswith("drop."))
            if title.startswith("Model"):
                self._hints = {p: _doc_label("") for p in ("model.name", "data.dataset")}
                form.insertRow(1, "", self._hints["model.name"])
                form.insertRow(3, "", self._hints["data.dataset"])
            column.addWidget(box)
        column.addWidget(self._advanced([p for p in field_paths() if p not in shown]))
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        # never narrower than the form: a squeezed dock would cut the fields off
        bar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(body.minimumSizeHint().width() + bar + 2)
        outer.addWidget(scroll, 1)
        self._lockable.append(body)

        self._footer = QVBoxLayout()
        self._reason = QLabel()
        self._reason.setWordWrap(True)
        self._reason.setObjectName("start-blocked-reason")
        self._reason.setStyleSheet("color: #d9363e;")
        self._reason.hide()
        outer.addLayout(self._footer)
        outer.addWidget(self._reason)

    @staticmethod
    def _form(parent: QWidget) -> QFormLayout:
        form = QFormLayout(parent)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        return form

    def _add_row(self, form: QFormLayout, path: str, with_doc: bool = False) -> None:
        editor = make_editor(path)
        self._editors[path] = editor
        _notify(editor, self._on_edit)
        for w in [editor.widget, *editor.widget.findChildren(QWidget)]:
            if isinstance(w, (QAbstractSpinBox, QComboBox)):
                w.installEventFilter(self._wheel_guard)
        editor.widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        label = QLabel(label_for(path))
        label.setToolTip(editor.doc)
        label.setBuddy(editor.widget)
        if not with_doc:
            form.addRow(label, editor.widget)
            return
        cell = QWidget()
        stack = QVBoxLayout(cell)
        stack.setContentsMargins(0, 0, 0, 4)
        stack.setSpacing(1)
        stack.addWidget(editor.widget)
        stack.addWidget(_doc_label(editor.doc))
        form.addRow(label, cell)

    def _add_baseline_switch(self, form: QFormLayout) -> None:
        self._baseline = QCheckBox("Full baseline (no dropping)")
        self._baseline.setObjectName("baseline")
        doc = ("Train the whole network every step, for comparison. "
               + field_doc(BASELINE_FIELD))
        self._baseline.setToolTip(doc)
        self._baseline.toggled.connect(self._on_edit)
        form.addRow(self._baseline)

    def _advanced(self, paths: list[str]) -> QWidget:
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        self._advanced_toggle = QToolButton()
        self._advanced_toggle.setText("Advanced settings")
        self._advanced_toggle.setCheckable(True)
        self._advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self._advanced_toggle.setAutoRaise(True)
        self._advanced_body = QWidget()
        body = QVBoxLayout(self._advanced_body)
        body.setContentsMargins(0, 0, 0, 0)
        for section in dict.fromkeys(p.split(".")[0] for p in paths):
            box = QGroupBox(SECTION_TITLES.get(section, section))
            form = self._form(box)
            for path in (p for p in paths if p.startswith(section + ".")):
                self._add_row(form, path)
            body.addWidget(box)
        self._advanced_body.hide()
        self._advanced_toggle.toggled.connect(self.show_advanced)
        layout.addWidget(self._advanced_toggle)
        layout.addWidget(self._advanced_body)
        return holder

    def show_advanced(self, visible: bool = True) -> None:
        self._advanced_toggle.setChecked(visible)
        self._advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if visible
                                           else Qt.ArrowType.RightArrow)
        self._advanced_body.setVisible(visible)

    def add_start_button(self, action: QAction) -> QToolButton:
        """Show ``action`` as the panel's big start button, above the blocked-start reason."""
        button = QToolButton()
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        button.setMinimumHeight(button.sizeHint().height() + 8)
        self._footer.addWidget(button)
        return button

    # ---- binding --------------------------------------------------------------------------
    def editor(self, path: str) -> FieldEditor:
        return self._editors[path]

    def config(self) -> RunConfig:
        """The settings as shown (not checked; see :meth:`problems`)."""
        cfg = copy.deepcopy(self._base)
        for path, editor in self._editors.items():
            cfg.set(path, editor.get(), source="form")
        cfg.drop.enabled = not self._baseline.isChecked()
        return cfg

    def set_config(self, cfg: RunConfig) -> None:
        """Show ``cfg`` in the form."""
        self._loading = True
        try:
            self._base = copy.deepcopy(cfg)
            for path, editor in self._editors.items():
                editor.set(cfg.get(path))
            self._baseline.setChecked(not cfg.drop.enabled)
        finally:
            self._loading = False
        self._on_edit()

    def problems(self) -> list[tuple[str, str]]:
        """Invalid settings as (field path, message), including a device that is absent."""
        cfg = self.config()
        out = list(cfg.problems())
        present = available_devices()
        if cfg.train.device != "auto" and cfg.train.device not in present:
            out.append(("train.device", (
                f"train.device={cfg.train.device} is not available on this machine "
                f"(available: {', '.join(present)}): pick auto")))
        return out

    @property
    def valid(self) -> bool:
        return not self._problems

    @property
    def reason(self) -> str:
        """Why Start is disabled (empty when the settings are valid)."""
        if not self._problems:
            return ""
        more = len(self._problems) - 1
        return self._problems[0][1] + (f" (and {more} more)" if more else "")

    def set_locked(self, locked: bool) -> None:
        """Disable editing while a run uses these settings."""
        for widget in self._lockable:
            widget.setEnabled(not locked)

    # ---- reacting -------------------------------------------------------------------------
    def _on_edit(self, *_: Any) -> None:
        if self._loading:
            return
        baseline = self._baseline.isChecked()
        for path, editor in self._editors.items():
            if path.startswith("drop.") and path in self._policy_paths():
                editor.widget.setEnabled(not baseline)
        root = self._editors["data.root"].target
        if isinstance(root, QLineEdit):
            root.setPlaceholderText(
                "required: one sub-folder of images per class"
                if self._editors["data.dataset"].get() == "imagefolder"
                else FOLDER_FIELDS["data.root"])
        for path, hint in self._hints.items():
            hint.setText(describe(path, self._editors[path].get()))
            hint.setVisible(bool(hint.text()))
        try:
            self._problems = self.problems()
        except LearnDropError as exc:  # a value the config refuses outright
            self._problems = [(getattr(exc, "field", "") or "", exc.message)]
        marks: dict[str, str] = {}
        for path, message in self._problems:
            marks.setdefault(path, message)
        for path, editor in self._editors.items():
            editor.mark(marks.get(path))
        for path in marks:
            if path in self._editors and not self._editors[path].widget.isVisibleTo(self):
                self.show_advanced(True)
        self._reason.setText(f"Cannot start: {self.reason}" if self._problems else "")
        self._reason.setVisible(bool(self._problems))
        self.validity_changed.emit(self.valid, self.reason)
        self.changed.emit()

    @staticmethod
    def _policy_paths() -> tuple[str, ...]:
        return MAIN_GROUPS[2][1]

    def reset_defaults(self) -> None:
        self.set_config(RunConfig())

    def open_config_dialog(self) -> bool:
        path = dialogs.ask_open_config(self)
        return self.load_file(path) if path else False

    def load_file(self, path: str | Path) -> bool:
        """Load settings from a file; a bad file is reported in one line, nothing changes."""
        try:
            cfg = load_config(path)
        except LearnDropError as exc:
            dialogs.show_error(self, "Cannot open the configuration", exc.message)
            return False
        self.set_config(cfg)
        return True

    def save_config_dialog(self) -> bool:
        if self._problems:
            dialogs.show_error(self, "Cannot save the configuration",
                               f"fix the marked setting first: {self.reason}")
            return False
        path = dialogs.ask_save_config(self)
        return self.save_file(path) if path else False

    def save_file(self, path: str | Path) -> bool:
        try:
            save_config(self.config(), path)
        except LearnDropError as exc:
            dialogs.show_error(self, "Cannot save the configuration", exc.message)
            return False
        return True
