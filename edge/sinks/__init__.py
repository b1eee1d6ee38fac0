"""Sinks of the ultrasound frame loop: overlay rendering, MP4 recording, JSON report, curve plot, progress.

Public API (see each module for the contract)::

    ResultSink, RunSummary, SinkGroup, OutputError      edge.sinks.base
    render_overlay, CurveHistory                        edge.sinks.overlay
    VideoRecorder                                         edge.sinks.recorder
    JsonReportSink, build_report, FrameLog              edge.sinks.report
    write_curve_png, render_curve                       edge.sinks.curve
    ProgressPrinter                                     edge.sinks.console
    percentiles, summarize                              edge.stats (re-exported)
"""

from edge.sinks.base import OutputError, ResultSink, RunSummary, SinkBase, SinkGroup
from edge.sinks.console import ProgressPrinter
from edge.sinks.curve import render_curve, write_curve_png
from edge.sinks.history import CurveHistory
from edge.sinks.overlay import render_overlay
from edge.sinks.recorder import VideoRecorder
from edge.sinks.report import FrameLog, JsonReportSink, build_report
from edge.stats import percentiles, summarize

__all__ = [
    "OutputError", "ResultSink", "RunSummary", "SinkBase", "SinkGroup", "ProgressPrinter", "render_curve",
    "write_curve_png", "CurveHistory", "render_overlay", "VideoRecorder", "FrameLog", "JsonReportSink",
    "build_report", "percentiles", "summarize",
]
