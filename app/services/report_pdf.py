"""PDF reports drawn with Qt: the HTML report laid out by QTextDocument, printed by QPdfWriter.

No browser is involved. QTextDocument cannot draw SVG, so each of the report's SVG plots is
rendered to an image with QSvgRenderer and handed to the document as a resource. Works without
a display: when no Qt application exists yet, a private offscreen one is created. A table that
fits on a page is never split across two, nor parted from its heading: it starts a new page,
with the heading above it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QRectF, QSizeF, Qt, QUrl
from PySide6.QtGui import (
    QFont,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextBlock,
    QTextBlockFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextTable,
)
from PySide6.QtSvg import QSvgRenderer

from learndrop.core.files import atomic_write_bytes
from learndrop.core.report import (
    Plot,
    Report,
    SweepReport,
    plots,
    render_html,
    render_sweep_html,
    sweep_plots,
)

__all__ = ["write_pdf", "pdf_bytes", "plot_image", "report_document", "keep_tables_whole",
           "split_tables", "orphan_headings", "write_sweep_pdf", "sweep_pdf_bytes"]

#: width of a plot on the page, in the document's pixels (A4 text width is about 680)
PLOT_WIDTH = 660
#: plots are rendered at this multiple of their size, for sharp print
OVERSAMPLE = 3

_APP: QGuiApplication | None = None


def _ensure_app() -> None:
    """Fonts and painting need a Qt application; make an offscreen one if there is none."""
    global _APP
    if QGuiApplication.instance() is None:
        _APP = QGuiApplication(["learndrop-report", "-platform", "offscreen"])


def plot_image(plot: Plot, width: int = PLOT_WIDTH * OVERSAMPLE) -> QImage:
    """The plot's SVG drawn into an image ``width`` pixels wide."""
    renderer = QSvgRenderer(QByteArray(plot.svg.encode("utf-8")))
    size = renderer.defaultSize()
    height = max(1, round(width * size.height() / max(1, size.width())))
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.white)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    renderer.render(painter, QRectF(0, 0, width, height))
    painter.end()
    return image


def _tables(doc: QTextDocument) -> list[QTextTable]:
    return [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]


def split_tables(doc: QTextDocument) -> list[QTextTable]:
    """The tables that run over a page break although they would fit on one page."""
    page = doc.pageSize().height()
    layout = doc.documentLayout()
    out = []
    for table in _tables(doc):
        rect = layout.frameBoundingRect(table)
        if rect.height() < page and int(rect.top() // page) != int((rect.bottom() - 1) // page):
            out.append(table)
    return out


def _heading_of(doc: QTextDocument, table: QTextTable) -> QTextBlock | None:
    """The heading just above a table (the line of explanation between them allowed)."""
    above = doc.findBlock(table.firstPosition() - 1)
    return next((b for b in (above, above.previous())
                 if b.isValid() and b.blockFormat().headingLevel()), None)


def orphan_headings(doc: QTextDocument) -> list[QTextTable]:
    """The tables whose heading is left at the bottom of the page before them."""
    page = doc.pageSize().height()
    layout = doc.documentLayout()
    out = []
    for table in _tables(doc):
        heading = _heading_of(doc, table)
        if heading is None:
            continue
        top = layout.frameBoundingRect(table).top()
        if int(layout.blockBoundingRect(heading).top() // page) != int(top // page):
            out.append(table)
    return out


def keep_tables_whole(doc: QTextDocument) -> int:
    """Start each table that would be split across pages, or whose heading would be left
    alone at the bottom of the page before it, on a new page with its heading; returns how
    many were moved. Tables longer than a page are left to split."""
    moved = 0
    for _ in range(2 * len(_tables(doc))):  # each move can push later tables about
        split = split_tables(doc) or orphan_headings(doc)
        if not split:
            break
        table = split[0]
        # its heading goes along, and the line of explanation between them
        heading = _heading_of(doc, table)
        if heading is not None:
            fmt_ = QTextBlockFormat(heading.blockFormat())
            fmt_.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore)
            QTextCursor(heading).setBlockFormat(fmt_)
        else:
            fmt = table.format()
            fmt.setPageBreakPolicy(QTextFormat.PageBreakFlag.PageBreak_AlwaysBefore)
            table.setFormat(fmt)
        moved += 1
    return moved


def report_document(report: Report) -> QTextDocument:
    """The report laid out on A4 pages (as :func:`pdf_bytes` prints it)."""
    return _document(plots(report), lambda img: render_html(report, image=img))


def _document(charts: list[Plot], render: Callable[[Callable[[Plot], str]], str]
              ) -> QTextDocument:
    """A page with ``charts`` drawn as images: ``render(image)`` gives its HTML."""
    _ensure_app()
    doc = QTextDocument()
    doc.setDefaultFont(QFont("DejaVu Sans", 9))
    sizes: dict[str, tuple[int, int]] = {}
    for plot in charts:
        image = plot_image(plot)
        url = f"plot:{plot.key}.png"
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(url), image)
        sizes[plot.key] = (PLOT_WIDTH, round(PLOT_WIDTH * image.height() / image.width()))

    def img(plot: Plot) -> str:
        w, h = sizes[plot.key]
        return f'<img src="plot:{plot.key}.png" width="{w}" height="{h}">'

    doc.setHtml(render(img))
    page = _page_layout().paintRectPixels(_RESOLUTION)
    doc.setPageSize(QSizeF(page.width() * 96 / _RESOLUTION, page.height() * 96 / _RESOLUTION))
    keep_tables_whole(doc)
    return doc


_RESOLUTION = 144


def _page_layout() -> QPageLayout:
    return QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                       QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)


def pdf_bytes(report: Report) -> bytes:
    """The report as a PDF document (A4)."""
    return _print(report_document(report), report.title)


def sweep_pdf_bytes(report: SweepReport) -> bytes:
    """A sweep's report as a PDF document (A4)."""
    doc = _document(sweep_plots(report), lambda img: render_sweep_html(report, image=img))
    return _print(doc, report.title)


def write_sweep_pdf(report: SweepReport, path: str | Path) -> Path:
    """Write a sweep's report as a PDF, atomically."""
    return atomic_write_bytes(path, sweep_pdf_bytes(report))


def _print(doc: QTextDocument, title: str) -> bytes:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setTitle(title)
    writer.setCreator("Learn&Drop")
    writer.setPageLayout(_page_layout())
    writer.setResolution(_RESOLUTION)
    doc.print_(writer)
    del writer  # finishes the PDF
    buffer.close()
    return bytes(buffer.data().data())


def write_pdf(report: Report | SweepReport, path: str | Path) -> Path:
    """Write the report (a run's, or a sweep's) as a PDF, atomically."""
    if isinstance(report, SweepReport):
        return write_sweep_pdf(report, path)
    return atomic_write_bytes(path, pdf_bytes(report))
