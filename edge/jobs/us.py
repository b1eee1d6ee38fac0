"""The ultrasound job, composed in one place: model + backend, source, frame loop, sinks -> report.

Used by ``dvt-edge us run``, ``dvt-edge demo``, the UI and the benchmarks, so they all run the same thing.

:func:`run_frame_loop` is the loop: source -> capture thread -> pipeline -> sinks -> final verdict. The
backend and pipeline are built BEFORE the capture starts (engine/session creation never happens inside the
frame loop). Files are processed losslessly unless paced; live sources go through the newest-frame slot, so
a slow model drops frames instead of building a backlog.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from edge.backends.select import Choice, open_backend
from edge.capture.thread import CaptureThread
from edge.errors import ConfigError, DvtEdgeError, OutputError
from edge.sinks.background import DROP_POLICY, WAIT_POLICY, BackgroundRecorder
from edge.sinks.base import ResultSink, RunSummary, SinkGroup
from edge.sinks.console import ProgressPrinter
from edge.sinks.curve import write_curve_png
from edge.sinks.recorder import VideoRecorder
from edge.sinks.report import JsonReportSink
from edge.sources import open_source
from edge.sources.base import FrameSource
from edge.spec import load_spec
from edge.us.int8_frames import calibration_inputs
from edge.us.pipeline import UltrasoundPipeline, UsConfig
from edge.us.types import FrameResult, Verdict


@dataclass(frozen=True)
class LoopResult:
    """What the frame loop did: the final verdict and the frame counts."""

    verdict: Verdict  # final
    frames: int  # processed
    captured: int
    dropped: int


def run_frame_loop(
    source: FrameSource,
    pipeline: UltrasoundPipeline,
    on_result: Iterable[Callable[[FrameResult], None]] = (),
    *,
    pace: bool | None = None,
    max_frames: int | None = None,
) -> LoopResult:
    """Process ``source`` until it ends (or ``max_frames``); call each ``on_result`` per frame in order.

    The capture thread is stopped and joined before this returns or raises (a stage that raises, or Ctrl-C,
    included), so the caller may close the source right after: the thread never reads a closed source."""
    callbacks = list(on_result)
    capture = CaptureThread(source, pace=pace)
    n = 0
    frames = capture.frames()
    try:
        for frame in frames:
            result = pipeline.process(frame)
            for cb in callbacks:
                cb(result)
            n += 1
            if max_frames is not None and n >= max_frames:
                break
    finally:
        frames.close()  # the generator's own finally stops and joins the capture thread
    stats = capture.capture_stats()
    return LoopResult(pipeline.current_verdict(final=True), n, stats.frames_captured, stats.dropped)


def check_outputs(out_dir: Path | None, json_path: Path | None) -> None:
    """OutputError, before any work, for an ``--out`` that is an existing file or a ``--json`` whose folder
    does not exist (or that names a folder)."""
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise OutputError(f"--out {out_dir}: is an existing file, not a folder; name a folder for the outputs")
    if json_path is not None:
        json_path = Path(json_path)
        if json_path.is_dir():
            raise OutputError(f"--json {json_path}: is a folder; name the report file, e.g. {json_path / 'us.json'}")
        parent = json_path.parent
        if not parent.is_dir() and not (out_dir is not None and parent == Path(out_dir)):
            raise OutputError(f"--json {json_path}: folder {parent} does not exist; create it or pick another path")


def frame_size(source) -> tuple[int, int] | None:
    """(width, height) of the source's frames when known at open."""
    for w, h in (("width", "height"), ("columns", "rows")):
        wv, hv = getattr(source, w, None), getattr(source, h, None)
        if wv and hv:
            return int(wv), int(hv)
    first = getattr(source, "_first", None)
    if first is not None:
        return int(first.shape[1]), int(first.shape[0])
    return None


def check_crop(crop, size: tuple[int, int] | None, name: str) -> None:
    """ConfigError when ``--crop X,Y,W,H`` does not lie inside a WxH frame."""
    if crop is None or size is None:
        return
    x, y, w, h = crop
    fw, fh = size
    if x + w > fw or y + h > fh:
        raise ConfigError(f"--crop {x},{y},{w},{h}: reaches outside the {fw}x{fh} frames of '{name}' "
                          f"(x + width must be <= {fw}, y + height <= {fh})")


def input_facts(source, loop: LoopResult, max_frames: int | None) -> dict:
    """The report's ``input`` block (see :class:`edge.sinks.base.RunSummary`)."""
    facts_of = getattr(source, "input_facts", None)
    facts = dict(facts_of()) if facts_of else {
        "frames_expected": getattr(source, "frame_count", None), "frames_read": loop.captured + loop.dropped,
        "ended_early": False, "ended_early_reason": None}
    facts["stopped_by"] = "max_frames" if max_frames is not None and loop.frames >= max_frames else None
    return facts


def input_warnings(facts: dict) -> list[str]:
    out = []
    if facts.get("ended_early"):
        out.append(f"input ended early: {facts.get('ended_early_reason')}")
    for r in facts.get("reconnects") or []:
        out.append(f"stream gap: no frames for {r['gap_s']:.1f} s after frame {r['after_frame']} "
                   f"(reconnected at attempt {r['attempts']}); the curve has a hole there")
    return out


@dataclass(frozen=True)
class JobOutputs:
    report: dict | None
    video: Path | None
    curve: Path | None
    json: Path | None
    loop: LoopResult
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
    video_height: int | None = None,
    video_queue: int = 8,
    mm_per_px=None,
    log: Callable[[str], None] = print,
) -> JobOutputs:
    """Run the ultrasound job on ``source_spec`` and write the requested outputs.

    out_dir: writes ``<stem>.mp4`` (overlay; ``video_format="webm"`` for VP8 WebM, which browsers play),
    ``<stem>_curve.png`` and ``<stem>.json``; json_path overrides where the JSON goes. Raises DvtEdgeError
    subclasses for bad input.

    The video is rendered and encoded on its own thread (:class:`BackgroundRecorder`, ``video_queue``
    frames of queue). Live and paced sources use the ``drop-new-when-full`` policy: the frame loop never
    waits for the video, and frames left out of it are counted in the report's ``video`` block and
    printed. Files read losslessly use ``wait-when-full``: the video is complete, and drawing/encoding
    overlap the model instead of adding to it. ``video_height`` reduces the
    video (the overlay is then drawn at that size); None keeps the source's size.
    """
    config = config or UsConfig()
    check_outputs(out_dir, json_path)  # every output argument before any work
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames {max_frames}: must be >= 1")
    spec = load_spec(model)  # fail on a bad model before opening a camera
    with ExitStack() as stack:
        be, choice = open_backend(model, backend, threads=threads, calibration=calibration_inputs)
        # closed on every way out (an error, Ctrl-C): device buffers and a CUDA stream under TensorRT; the
        # stack closes the sinks, then the source, then the backend
        stack.callback(be.close)
        log(f"backend: {choice.name} ({choice.reason})")
        pipeline = UltrasoundPipeline(be, spec, config)
        if out_dir is not None:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"--out {out_dir}: cannot create the folder: {exc.strerror or exc}") from exc
            json_path = json_path or out_dir / f"{stem}.json"
        source = stack.enter_context(open_source(source_spec, pace=pace))
        check_crop(config.crop, frame_size(source), source.name)
        # this run's outputs replace the previous run's: none of them may survive to look like this run's
        stale = [json_path] if json_path else []
        if out_dir is not None:
            stale += [out_dir / f"{stem}.{ext}" for ext in ("mp4", "webm")] + [out_dir / f"{stem}_curve.png"]
        for old in stale:
            old.unlink(missing_ok=True)
        sinks: list[ResultSink] = []
        report_sink = JsonReportSink(json_path) if json_path else None
        if report_sink:
            sinks.append(report_sink)
        recorder = video_sink = None
        if out_dir is not None and video:
            recorder = VideoRecorder(out_dir / f"{stem}.{video_format}", source.fps or 30.0, height=video_height)
            # live/paced: the verdict never waits for the video (drop); files read losslessly: a complete video
            policy = DROP_POLICY if (pace or source.live) else WAIT_POLICY
            video_sink = BackgroundRecorder(recorder, queue_frames=video_queue, policy=policy)
            sinks.append(video_sink)
        if progress:
            sinks.append(ProgressPrinter(total=source.frame_count, live=source.live))
        group = stack.enter_context(SinkGroup(sinks))
        try:
            loop = run_frame_loop(source, pipeline, [group.write], pace=pace, max_frames=max_frames)
        except BaseException as exc:  # the report written on the way out says why the run stopped
            if report_sink is not None:
                report_sink.error = (str(exc) if isinstance(exc, DvtEdgeError)
                                     else (str(exc) or "interrupted (Ctrl-C)") if isinstance(exc, KeyboardInterrupt)
                                     else f"{type(exc).__name__}: {exc}")
            raise
        facts = input_facts(source, loop, max_frames)
        calibration = mm_per_px or getattr(source, "calibration", None)  # edge.sources.calibration: reporting only
        if calibration is not None:
            facts["calibration"] = calibration.to_json()
        warnings = input_warnings(facts)
        for w in warnings:
            log(f"warning: {w}")
        video_stats = None
        if video_sink is not None:
            video_sink.drain()  # the loop is over: let the encoder catch up, so the counts are final
            video_stats = video_sink.stats()
            if video_stats["frames_dropped"]:
                log(f"video: {video_stats['frames_dropped']} of {video_stats['frames_offered']} frames left out "
                    f"of the video (encoder behind, queue of {video_sink.queue_frames} full; every frame was "
                    "still measured)")
        group.finish(RunSummary(
            verdict=loop.verdict, source=source.name, backend=be.name, model=spec.name,
            dropped_frames=loop.dropped, config={"us": config.to_json(), "backend_requested": backend,
                                                 "backend_choice": choice.reason, "pace": pace,
                                                 "live": bool(source.live)},
            model_spec=spec.to_json(), input=facts, warnings=tuple(warnings), video=video_stats,
        ))
    if recorder is not None and recorder.codec_note:
        log(f"video: {recorder.codec_note}")  # e.g. H.264 unavailable in this OpenCV build -> mp4v
    report = report_sink.report if report_sink else None
    curve = None
    if out_dir is not None and report is not None:
        curve = write_curve_png(out_dir / f"{stem}_curve.png", report["t_s"], report["vein_area_px"],
                                report["baseline_vein_area_px"], report["min_vein_area_px"],
                                report["verdict"], report["compressibility"])
    return JobOutputs(report, recorder.path if recorder else None, curve, json_path, loop, choice)
