"""Compose the ultrasound job in one place: model + backend, source, pipeline, sinks -> run -> report.

Used by ``dvt-edge us run``, ``dvt-edge demo``, the UI and the benchmarks, so they all run the same thing.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.backends.select import Choice, open_backend
from edge.sinks.base import ResultSink, RunSummary, SinkGroup
from edge.sinks.console import ProgressPrinter
from edge.sinks.curve import write_curve_png
from edge.sinks.recorder import Mp4Recorder
from edge.sinks.report import JsonReportSink
from edge.sources import open_source
from edge.spec import load_spec
from edge.us.pipeline import UltrasoundPipeline, UsConfig
from edge.us.session import SessionResult, run_session


@dataclass(frozen=True)
class JobOutputs:
    report: dict | None
    video: Path | None
    curve: Path | None
    json: Path | None
    session: SessionResult
    backend: Choice


def run_us_job(
    source_spec: str,
    model: Path,
    *,
    backend: str = "auto",
    out_dir: Path | None = None,
    json_path: Path | None = None,
    stem: str = "us",
    config: UsConfig | None = None,
    pace: bool = False,
    threads: int | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    video: bool = True,
    video_format: str = "mp4",
    log: Callable[[str], None] = print,
) -> JobOutputs:
    """Run the ultrasound job on ``source_spec`` and write the requested outputs.

    out_dir: writes ``<stem>.mp4`` (overlay; ``video_format="webm"`` for VP8 WebM, which browsers play),
    ``<stem>_curve.png`` and ``<stem>.json``; json_path overrides where the JSON goes. Raises DvtEdgeError
    subclasses for bad input.
    """
    config = config or UsConfig()
    spec = load_spec(model)  # fail on a bad model before opening a camera
    be, choice = open_backend(model, backend, threads=threads)
    log(f"backend: {choice.name} ({choice.reason})")
    pipeline = UltrasoundPipeline(be, spec, config)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = json_path or out_dir / f"{stem}.json"
    with ExitStack() as stack:
        source = stack.enter_context(open_source(source_spec, pace=pace))
        sinks: list[ResultSink] = []
        report_sink = JsonReportSink(json_path) if json_path else None
        if report_sink:
            sinks.append(report_sink)
        recorder = None
        if out_dir is not None and video:
            recorder = Mp4Recorder(out_dir / f"{stem}.{video_format}", source.fps or 30.0)
            sinks.append(recorder)
        if progress:
            sinks.append(ProgressPrinter(total=source.frame_count, live=source.live))
        group = stack.enter_context(SinkGroup(sinks))
        session = run_session(source, pipeline, [group.write], pace=pace, max_frames=max_frames)
        group.finish(RunSummary(
            verdict=session.verdict, source=source.name, backend=be.name, model=spec.name,
            dropped_frames=session.dropped, config={"us": config.to_json(), "backend_requested": backend,
                                                    "backend_choice": choice.reason, "pace": pace,
                                                    "live": bool(source.live)},
            model_spec=spec.to_json(),
        ))
    be.close()
    if recorder is not None and recorder.codec_note:
        log(f"video: {recorder.codec_note}")  # e.g. H.264 unavailable in this OpenCV build -> mp4v
    report = report_sink.report if report_sink else None
    curve = None
    if out_dir is not None and report is not None:
        curve = write_curve_png(out_dir / f"{stem}_curve.png", report["t_s"], report["vein_area_px"],
                                report["baseline_vein_area_px"], report["min_vein_area_px"],
                                report["verdict"], report["compressibility"])
    return JobOutputs(report, recorder.path if recorder else None, curve, json_path, session, choice)
