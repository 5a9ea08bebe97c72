"""A stored run as a report: the data model (:class:`RunData`, :class:`Report`), the tables
every front end shows (:mod:`.tables`), and the writers (HTML with inline SVG plots, CSV,
JSON, TensorBoard; PDF through the ``learndrop.exporters`` entry point)."""

from . import many, tables
from ._export import (
                      FORMATS,
                      Exporter,
                      export,
                      format_for,
                      report_dict,
                      write_csv,
                      write_html,
                      write_json,
                      write_tensorboard,
)
from ._html import Plot, plots, render_html
from ._model import (
                      Report,
                      ReportError,
                      RunAccuracy,
                      RunData,
                      UnitRow,
                      build_report,
                      json_safe,
                      load_run,
)
from ._svgplot import EMPTY_CELL
from ._sweep import (
    SweepReport,
    build_sweep_report,
    export_sweep,
    render_sweep_html,
    sweep_plots,
)

__all__ = ["Report", "ReportError", "RunData", "RunAccuracy", "UnitRow",
           "build_report", "load_run",
           "json_safe", "FORMATS", "Exporter", "export", "format_for", "report_dict",
           "write_csv", "write_html", "write_json", "write_tensorboard", "Plot", "plots",
           "render_html", "tables", "EMPTY_CELL", "many", "SweepReport",
           "build_sweep_report", "export_sweep", "render_sweep_html", "sweep_plots"]
