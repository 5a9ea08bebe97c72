"""The dialogs: Qt's standard ones as one-line helpers (:mod:`.standard`), the report export
(:mod:`.export_dialog`) and the comparison of two runs (:mod:`.compare_dialog`)."""

from . import standard
from .compare_dialog import CompareDialog
from .export_dialog import FORMAT_LABELS, ExportDialog, available_formats

__all__ = ["standard", "CompareDialog", "ExportDialog", "FORMAT_LABELS", "available_formats"]
