"""The views: widgets that draw a run and read nothing but a
:class:`~learndrop.core.monitor.RunHistory` (the live views) or a stored run's report data
(:mod:`.compare_plots`). Each view is one file; :mod:`.live_view` says what the live panel
asks of them."""

from .compare_plots import ComparePlots, run_colors
from .event_log import EventLog
from .gauges import GaugesPanel, format_count, format_duration, format_percent, format_rate
from .heatmap_view import HeatmapView
from .live_view import LiveView
from .metrics_plot import MetricsPlot
from .network_strip import NetworkStrip, block_widths
from .score_plot import ScorePlot
from .unit_details import UnitDetails

__all__ = ["ComparePlots", "EventLog", "GaugesPanel", "HeatmapView", "LiveView", "MetricsPlot",
           "NetworkStrip", "ScorePlot", "UnitDetails", "block_widths", "format_count",
           "format_duration", "format_percent", "format_rate", "run_colors"]
