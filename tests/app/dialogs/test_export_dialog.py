"""Exporting a stored run's report (pytest-qt, offscreen): every format, one-line problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from learndrop.app.dialogs import ExportDialog
from learndrop.app.services import RunLibrary
from learndrop.core.report import load_run
from learndrop.core.store import RunStore

pytestmark = pytest.mark.gui


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text


def test_export_writes_every_format(qtbot: Any, library: RunLibrary, recorded: Any,
                                    tmp_path: Path) -> None:
    dialog = ExportDialog(library, recorded.ld, compare=[recorded.base], title="ld vs base")
    qtbot.addWidget(dialog)
    written = {}
    for fmt in ("html", "csv", "json", "pdf"):
        dialog.set_format(fmt)
        dialog.set_path(tmp_path / f"report.{fmt}")
        path = dialog.export_now()
        assert path == tmp_path / f"report.{fmt}" and dialog.last_error == ""
        assert str(path) in dialog.result_label.text()
        written[fmt] = path
    with RunStore(recorded.store) as store:
        name = load_run(store, recorded.ld).name
        base_name = load_run(store, recorded.base).name
    html = written["html"].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and name in html
    lines = written["csv"].read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("run,check,step") and len(lines) > 3
    report = json.loads(written["json"].read_text(encoding="utf-8"))
    assert report["format"] == "learndrop-report" and report["run"]["run"]["name"] == name
    assert report["baseline"] == base_name
    assert written["pdf"].read_bytes()[:5] == b"%PDF-"

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    dialog.set_format("html")
    dialog.set_path(blocker / "report.html")  # its "folder" is a file
    assert dialog.export_now() is None
    assert one_line(dialog.last_error) and "cannot write" in dialog.last_error
    assert "Not exported" in dialog.result_label.text()


def test_export_follows_the_format_in_the_file_name(qtbot: Any, library: RunLibrary,
                                                    recorded: Any, tmp_path: Path) -> None:
    dialog = ExportDialog(library, recorded.ld, title="my run", folder=tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.path_edit.text() == str(tmp_path / "my-run-report.html")
    dialog.set_format("json")
    assert dialog.path_edit.text() == str(tmp_path / "my-run-report.json")
