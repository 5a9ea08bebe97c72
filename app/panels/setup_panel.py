"""The run setup form, bound to :class:`~learndrop.core.config.RunConfig`.

Every setting gets an editor generated from the config's field metadata
(:mod:`.setup_fields`) and its one-line explanation as tooltip. The common settings are shown
in three groups; the rest live in a collapsible "Advanced" section. Invalid values (the
config's own checks, and a device this machine lacks) are marked at their field and reported
through :attr:`SetupPanel.validity_changed` so Start can be disabled with the reason.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.config import (
    RunConfig,
    field_doc,
    field_folder,
    field_paths,
    form_groups,
    load_config,
    save_config,
)
from learndrop.core.errors import ConfigError, LearnDropError

from ..dialogs.standard import ask_open_config, ask_save_config, show_error
from ..services import describe, download_note, run_problems
from .setup_fields import (
    FieldEditor,
    FloatSpinBox,
    IntSpinBox,
    NoWheelUnlessFocused,
    doc_label,
    form_words,
    label_for,
    make_editor,
    notify,
)

__all__ = ["SetupPanel", "MAIN_GROUPS"]

#: the form's main groups (title, setting paths), as the settings declare them
MAIN_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = form_groups()
BASELINE_FIELD = "drop.enabled"
SECTION_TITLES = {"data": "Data", "model": "Model", "optim": "Optimizer",
                  "drop": "Learn&&Drop", "train": "Training", "output": "Output"}


class SetupPanel(QWidget):
    """The form for a run's settings. :meth:`config` reads it, :meth:`set_config` fills it."""

    changed = Signal()
    validity_changed = Signal(bool, str)  # ok, reason (first problem) when not ok
    notice = Signal(str)  # one line for the status bar: a value the form did not take

    def __init__(self, config: RunConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = copy.deepcopy(config or RunConfig())
        self._editors: dict[str, FieldEditor] = {}
        self._loading = False
        self._problems: list[tuple[str, str]] = []
        self._wheel_guard = NoWheelUnlessFocused(self)
        self._build()
        self.set_config(self._base)

    # ---- building -------------------------------------------------------------------------
    def _build(self) -> None:
        self._lockable: list[QWidget] = []
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.addLayout(self._file_buttons())
        outer.addWidget(self._scrolling_form(), 1)
        self._footer = QVBoxLayout()
        self._reason = QLabel()
        self._reason.setWordWrap(True)
        self._reason.setObjectName("start-blocked-reason")
        self._reason.setStyleSheet("color: #d9363e;")
        self._reason.hide()
        # the typed values the form did not take, one line per field, each until that field
        # is edited again
        self._rejections: dict[str, str] = {}
        self._kept_values: dict[str, float] = {}  # the value each refused field stays at
        self._rejected = QLabel()
        self._rejected.setWordWrap(True)
        self._rejected.setObjectName("rejected-value")
        self._rejected.setStyleSheet("color: #d9363e;")
        self._rejected.hide()
        outer.addWidget(self._rejected)
        outer.addLayout(self._footer)
        outer.addWidget(self._reason)

    def _file_buttons(self) -> QHBoxLayout:
        files = QHBoxLayout()
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
        return files

    def _scrolling_form(self) -> QScrollArea:
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 4, 0)
        shown = {p for _, paths in MAIN_GROUPS for p in paths} | {BASELINE_FIELD}
        for title, paths in MAIN_GROUPS:
            column.addWidget(self._main_group(title, paths))
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
        self._lockable.append(body)
        return scroll

    def _main_group(self, title: str, paths: tuple[str, ...]) -> QGroupBox:
        box = QGroupBox(title.replace("&", "&&"))  # "&" alone would make a shortcut
        form = self._form(box)
        if paths[0].startswith("drop."):
            self._add_baseline_switch(form)
        for path in paths:
            self._add_row(form, path, with_doc=path.startswith("drop."))
        if title.startswith("Model"):
            self._hints = {p: doc_label("") for p in ("model.name", "data.dataset")}
            form.insertRow(1, "", self._hints["model.name"])
            form.insertRow(3, "", self._hints["data.dataset"])
        return box

    @staticmethod
    def _form(parent: QWidget) -> QFormLayout:
        form = QFormLayout(parent)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        return form

    def _add_row(self, form: QFormLayout, path: str, with_doc: bool = False) -> None:
        editor = make_editor(path)
        self._editors[path] = editor
        notify(editor, self._on_edit)
        notify(editor, lambda *_a, p=path: self._forget_rejection(p))
        if isinstance(editor.widget, (IntSpinBox, FloatSpinBox)):
            editor.widget.rejected.connect(
                lambda text, p=path: self._on_rejected(p, text))
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
        stack.addWidget(doc_label(editor.doc))
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
        self._rejections.clear()
        self._kept_values.clear()
        self._show_rejections()
        self._on_edit()

    def problems(self) -> list[tuple[str, str]]:
        """Invalid settings as (field path, message), including a device that is absent."""
        return run_problems(self.config())

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
    @property
    def rejected_text(self) -> str:
        """The values the form did not take, in words, the latest first, one line each (a
        field's line goes when that field is edited)."""
        return self._rejected.text() if self._rejected.isVisible() else ""

    def _on_rejected(self, path: str, text: str) -> None:
        widget = self._editors[path].widget
        assert isinstance(widget, (IntSpinBox, FloatSpinBox))
        def num(v: float) -> str:
            return f"{v:.6g}"

        lo, hi = widget.minimum(), widget.maximum()
        shown = num(widget.value())
        try:
            number = float(text)
            why = (f"below the smallest allowed, {num(lo)}" if number < lo
                   else f"above the largest allowed, {num(hi)}")
        except ValueError:
            why = "not a number"
        message = (f"\u201c{label_for(path)}\u201d: {text} is {why}; it stays {shown}")
        self._rejections.pop(path, None)
        self._rejections = {path: message, **self._rejections}  # the latest first
        self._kept_values[path] = widget.value()
        self._show_rejections()
        self.notice.emit(message)

    def _forget_rejection(self, path: str) -> None:
        """The field was edited: its line goes, unless the field only says again the value
        it stayed at (Enter on a refused number sends it once more)."""
        if path in self._kept_values and self._editors[path].get() == self._kept_values[path]:
            return
        self._kept_values.pop(path, None)
        if self._rejections.pop(path, None) is not None:
            self._show_rejections()

    def _show_rejections(self) -> None:
        self._rejected.setText("\n".join(self._rejections.values()))
        self._rejected.setVisible(bool(self._rejections))

    def _on_edit(self, *_: Any) -> None:
        if self._loading:
            return
        self._follow_choices()
        self._check()
        self.changed.emit()

    def _follow_choices(self) -> None:
        """Fields that depend on others: the policy under the baseline switch, the data
        folder's hint, the model and data set descriptions."""
        baseline = self._baseline.isChecked()
        for path, editor in self._editors.items():
            if path.startswith("drop.") and path in self._policy_paths():
                editor.widget.setEnabled(not baseline)
        root = self._editors["data.root"].target
        if isinstance(root, QLineEdit):
            root.setPlaceholderText(
                "required: one sub-folder of images per class"
                if self._editors["data.dataset"].get() == "imagefolder"
                else field_folder("data.root"))
        for path, hint in self._hints.items():
            hint.setText(describe(path, self._editors[path].get()))
            hint.setVisible(bool(hint.text()))
        note = download_note(self.config())
        if note:  # said before Start: the run fetches data first
            data = self._hints["data.dataset"]
            data.setText(f"{data.text()} \u00b7 {note}" if data.text() else note)
            data.setVisible(True)

    def _check(self) -> None:
        """Mark the invalid fields, show the first problem and tell whether Start may go."""
        try:
            problems = self.problems()
        except ConfigError as exc:  # a value the config refuses outright
            problems = [(exc.field or "", exc.message)]
        except LearnDropError as exc:
            problems = [("", exc.message)]
        # in the form's words: its labels, what to tick, not command-line flags
        self._problems = [(path, form_words(message)) for path, message in problems]
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

    @staticmethod
    def _policy_paths() -> tuple[str, ...]:
        return tuple(p for _, paths in MAIN_GROUPS for p in paths if p.startswith("drop."))

    def reset_defaults(self) -> None:
        self.set_config(RunConfig())

    def open_config_dialog(self) -> bool:
        path = ask_open_config(self)
        return self.load_file(path) if path else False

    def load_file(self, path: str | Path) -> bool:
        """Load settings from a file; a bad file is reported in one line, nothing changes."""
        try:
            cfg = load_config(path)
        except LearnDropError as exc:
            show_error(self, "Cannot open the configuration", exc.message)
            return False
        self.set_config(cfg)
        return True

    def save_config_dialog(self) -> bool:
        if self._problems:
            show_error(self, "Cannot save the configuration",
                       f"fix the marked setting first: {self.reason}")
            return False
        path = ask_save_config(self)
        return self.save_file(path) if path else False

    def save_file(self, path: str | Path) -> bool:
        try:
            save_config(self.config(), path)
        except LearnDropError as exc:
            show_error(self, "Cannot save the configuration", exc.message)
            return False
        return True
