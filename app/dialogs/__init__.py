"""The dialogs: Qt's standard ones as one-line helpers (:mod:`.standard`), the report export
(:mod:`.export_dialog`), the comparison of two runs (:mod:`.compare_dialog`) and the what-if
explorer (:mod:`.whatif_dialog`)."""

from . import standard
from .compare_dialog import CompareDialog
from .export_dialog import FORMAT_LABELS, ExportDialog, available_formats
from .runs_dialog import RunsDialog
from .sweep_dialog import SweepDialog
from .whatif_dialog import WhatIfDialog

__all__ = ["standard", "CompareDialog", "ExportDialog", "FORMAT_LABELS", "available_formats",
           "WhatIfDialog", "RunsDialog",
           "SweepDialog"]
