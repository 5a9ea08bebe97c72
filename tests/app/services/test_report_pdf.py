"""PDF reports laid out by Qt: tables stay whole on a page, with their headings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSizeF
from PySide6.QtGui import QTextDocument

from factories import make_events, record
from learndrop.app.services.report_pdf import (
    keep_tables_whole,
    orphan_headings,
    pdf_bytes,
    report_document,
    split_tables,
)
from learndrop.core.report import build_report
from learndrop.core.store import RunStore

pytestmark = pytest.mark.gui


def _rows(n: int) -> str:
    return "".join(f"<tr><td>row {k}</td><td>{k * k}</td></tr>" for k in range(n))


def _document(fillers: int) -> QTextDocument:
    doc = QTextDocument()
    doc.setPageSize(QSizeF(500, 700))
    doc.setHtml("<p>first page</p>" + "<p>filler</p>" * fillers + "<h2>Units</h2>"
                "<p>what the table shows</p><table border='1'>" + _rows(12) + "</table>"
                "<p>after</p><table border='1'>" + _rows(200) + "</table>")
    return doc


def test_a_table_that_would_straddle_a_page_starts_the_next_one(qapp: Any) -> None:
    # as many lines before it as put the short table across the first page break
    doc = next(d for n in range(5, 80) if split_tables(d := _document(n)))
    assert len(split_tables(doc)) == 1  # the long one is longer than a page: it may split
    assert keep_tables_whole(doc) == 1 and split_tables(doc) == []
    heading = next(b for b in _blocks(doc) if b.text() == "Units")
    assert heading.blockFormat().pageBreakPolicy()  # the heading moved with its table
    page = doc.pageSize().height()
    top = doc.documentLayout().blockBoundingRect(heading).top()
    assert top % page < 30  # at the top of a page


def test_a_heading_is_not_left_alone_at_the_bottom_of_a_page(qapp: Any) -> None:
    # as many lines before it as leave the heading on one page and its table on the next
    doc = next((d for n in range(5, 120)
                if orphan_headings(d := _document(n)) and not split_tables(d)), None)
    assert doc is not None, "no filler count leaves the heading alone"
    assert keep_tables_whole(doc) == 1 and orphan_headings(doc) == []
    heading = next(b for b in _blocks(doc) if b.text() == "Units")
    page = doc.pageSize().height()
    top = doc.documentLayout().blockBoundingRect(heading).top()
    assert top % page < 30  # at the top of the page of its table


def _blocks(doc: QTextDocument) -> list[Any]:
    out, block = [], doc.begin()
    while block.isValid():
        out.append(block)
        block = block.next()
    return out


def test_a_report_with_long_tables_splits_none(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20-epoch run's report: laid out as it is, one of its tables would run over a page
    break; the PDF starts it on a new page."""
    from learndrop.app.services import report_pdf

    path = tmp_path / "store.sqlite"
    record(path, make_events("long-run", epochs=20, steps_per_epoch=10))
    with RunStore(path) as store:
        report = build_report(store, "long-run")
    doc = report_document(report)
    assert doc.pageCount() >= 3 and split_tables(doc) == []
    assert pdf_bytes(report)[:5] == b"%PDF-"
    monkeypatch.setattr(report_pdf, "keep_tables_whole", lambda d: 0)
    assert split_tables(report_document(report)), "the case this test is about is gone"
