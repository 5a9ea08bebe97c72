"""PDF reports drawn with Qt: the HTML report laid out by QTextDocument, printed by QPdfWriter.

No browser is involved. QTextDocument cannot draw SVG, so each of the report's SVG plots is
rendered to an image with QSvgRenderer and handed to the document as a resource. Works without
a display: when no Qt application exists yet, a private offscreen one is created.
"""

from __future__ import annotations

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
    QTextDocument,
)
from PySide6.QtSvg import QSvgRenderer

from learndrop.core.files import atomic_write_bytes
from learndrop.core.report import Plot, Report, plots, render_html

__all__ = ["write_pdf", "pdf_bytes", "plot_image"]

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


def pdf_bytes(report: Report) -> bytes:
    """The report as a PDF document (A4)."""
    _ensure_app()
    doc = QTextDocument()
    doc.setDefaultFont(QFont("DejaVu Sans", 9))
    sizes: dict[str, tuple[int, int]] = {}
    for plot in plots(report):
        image = plot_image(plot)
        url = f"plot:{plot.key}.png"
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(url), image)
        sizes[plot.key] = (PLOT_WIDTH, round(PLOT_WIDTH * image.height() / image.width()))

    def img(plot: Plot) -> str:
        w, h = sizes[plot.key]
        return f'<img src="plot:{plot.key}.png" width="{w}" height="{h}">'

    doc.setHtml(render_html(report, image=img))
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setTitle(report.title)
    writer.setCreator("Learn&Drop")
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait,
                                     QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter))
    writer.setResolution(144)
    page = writer.pageLayout().paintRectPixels(writer.resolution())
    doc.setPageSize(QSizeF(page.width() * 96 / writer.resolution(),
                           page.height() * 96 / writer.resolution()))
    doc.print_(writer)
    del writer  # finishes the PDF
    buffer.close()
    return bytes(buffer.data().data())


def write_pdf(report: Report, path: str | Path) -> Path:
    """Write the report as a PDF, atomically."""
    return atomic_write_bytes(path, pdf_bytes(report))
