"""Exporting a stored run's report (or a comparison's) as HTML, PDF, CSV, JSON or TensorBoard.

The dialog has the run library build the report from the run store when the user presses
Export (:meth:`~learndrop.app.services.RunLibrary.write_report`), so it always shows the
store's latest state. A problem (a folder that cannot be written, say) is shown in the dialog
as one line saying what to fix; success shows the path written.
"""

from __future__ import annotations

import importlib.util
import logging
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QCursor, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.errors import LearnDropError

from ..services import RunLibrary

__all__ = ["ExportDialog", "available_formats", "FORMAT_LABELS"]

log = logging.getLogger(__name__)

FORMAT_LABELS = {
    "html": "HTML page (one file, plots included)",
    "pdf": "PDF document",
    "csv": "CSV of the score history",
    "json": "JSON with everything",
    "tensorboard": "TensorBoard event files (a folder)",
}
_FILTERS = {"html": "HTML (*.html *.htm)", "pdf": "PDF (*.pdf)", "csv": "CSV (*.csv)",
            "json": "JSON (*.json)"}


def available_formats() -> list[str]:
    """The formats this installation can write (TensorBoard only with its package)."""
    formats = ["html", "pdf", "csv", "json"]
    if importlib.util.find_spec("tensorboard") is not None:
        formats.append("tensorboard")
    return formats


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.strip())
    return keep.strip("-.") or "run"


class ExportDialog(QDialog):
    """Choose a format and a file, then write the report. ``exported(path)`` on success."""

    exported = Signal(str)

    def __init__(self, library: RunLibrary, run: str | int,
                 compare: list[str | int] | None = None, title: str = "",
                 folder: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.run_ref = run
        self.compare = compare
        self.last_path: Path | None = None
        self.last_error = ""
        self._folder = Path(folder) if folder else Path.home()
        self._stem = _safe_name(title or str(run)) + "-report"
        self.setWindowTitle("Export report")

        what = QLabel(f"Report of <b>{title or run}</b>" if title else "Report")
        what.setWordWrap(True)
        self.format_box = QComboBox()
        for fmt in available_formats():
            self.format_box.addItem(FORMAT_LABELS[fmt], fmt)
        self.path_edit = QLineEdit()
        self.path_edit.setMinimumWidth(self.fontMetrics().averageCharWidth() * 56)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Format", self.format_box)
        form.addRow("Save to", path_row)

        self.result_label = QLabel("")
        self.result_label.setObjectName("export-result")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setOpenExternalLinks(False)
        self.result_label.linkActivated.connect(
            lambda url: QDesktopServices.openUrl(QUrl(url)))

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton(
            "Export", QDialogButtonBox.ButtonRole.ApplyRole)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export_now)
        self.buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(what)
        lay.addLayout(form)
        lay.addWidget(self.result_label)
        lay.addWidget(self.buttons)
        self.format_box.currentIndexChanged.connect(self._on_format)
        self._on_format()

    # ---- choices -----------------------------------------------------------------------------
    @property
    def fmt(self) -> str:
        return str(self.format_box.currentData())

    def set_format(self, fmt: str) -> None:
        index = self.format_box.findData(fmt)
        if index < 0:
            raise ValueError(f"format {fmt!r} is not available here")
        self.format_box.setCurrentIndex(index)

    def set_path(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))

    def default_path(self, fmt: str) -> Path:
        return self._folder / (self._stem if fmt == "tensorboard" else f"{self._stem}.{fmt}")

    @Slot()
    def _on_format(self) -> None:
        """Follow the format in the file name's suffix (or its folder, for TensorBoard)."""
        fmt = self.fmt
        text = self.path_edit.text().strip()
        if not text:
            self.path_edit.setText(str(self.default_path(fmt)))
            return
        path = Path(text)
        if path.suffix.lower().lstrip(".") in _FILTERS or path.suffix.lower() == ".htm":
            path = path.with_suffix("")
        self.path_edit.setText(str(path if fmt == "tensorboard" else
                                   path.with_suffix(f".{fmt}")))

    @Slot()
    def browse(self) -> None:
        start = self.path_edit.text().strip() or str(self.default_path(self.fmt))
        if self.fmt == "tensorboard":
            chosen = QFileDialog.getExistingDirectory(self, "Folder for the TensorBoard files",
                                                      str(Path(start).parent))
        else:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save report as", start,
                                                    f"{_FILTERS[self.fmt]};;All files (*)")
        if chosen:
            self.path_edit.setText(chosen)

    # ---- exporting ---------------------------------------------------------------------------
    @Slot()
    def export_now(self) -> Path | None:
        """Build the report and write it; returns the path written (``None`` on a problem,
        which the dialog then shows in one line)."""
        text = self.path_edit.text().strip()
        if not text:
            self._show_error("choose a file to save the report to")
            return None
        path = Path(text).expanduser()
        if path.is_dir() and self.fmt != "tensorboard":
            self._show_error(f"{path} is a folder: add a file name, such as "
                             f"{self.default_path(self.fmt).name}")
            return None
        QGuiApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
        try:
            written = self.library.write_report(self.run_ref, self.compare, self.fmt, path)
        except LearnDropError as exc:
            self._show_error(exc.message)
            return None
        except OSError as exc:
            self._show_error(f"cannot write {path}: {exc.strerror or exc} (choose a "
                             f"folder you can write to)")
            return None
        except Exception as exc:  # noqa: BLE001 - a report bug must not take the app down
            log.exception("report export failed")
            self._show_error(f"cannot export the report: {type(exc).__name__}: {exc}")
            return None
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.last_path, self.last_error = written, ""
        self._folder = written.parent if written.suffix else written
        url = QUrl.fromLocalFile(str(written.parent if written.suffix else written)).toString()
        self.result_label.setStyleSheet("")
        self.result_label.setText(f"Saved: {escape(str(written))} &nbsp; "
                                  f"<a href=\"{url}\">Open folder</a>")
        self.adjustSize()
        self.exported.emit(str(written))
        return written

    def _show_error(self, message: str) -> None:
        """Show a one-line problem in the dialog."""
        self.last_error = " ".join(message.split())
        self.last_path = None
        self.result_label.setStyleSheet("color: #c62828;")
        self.result_label.setText(escape(f"Not exported: {self.last_error}"))
        self.adjustSize()
