"""Run one ultrasound stream end to end: source -> capture thread -> pipeline -> sinks -> final verdict.

The backend and pipeline are built BEFORE the capture starts (engine/session creation never happens
inside the frame loop). Files are processed losslessly unless paced; live sources go through the
newest-frame slot, so a slow model drops frames instead of building a backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from edge.sources.base import FrameSource
from edge.stream.capture import CaptureThread
from edge.us.pipeline import UltrasoundPipeline
from edge.us.types import FrameResult, Verdict


@dataclass(frozen=True)
class SessionResult:
    verdict: Verdict  # final
    frames: int  # processed
    captured: int
    dropped: int


def run_session(
    source: FrameSource,
    pipeline: UltrasoundPipeline,
    on_result: Iterable[Callable[[FrameResult], None]] = (),
    *,
    pace: bool | None = None,
    max_frames: int | None = None,
) -> SessionResult:
    """Process ``source`` until it ends (or ``max_frames``); call each ``on_result`` per frame in order."""
    callbacks = list(on_result)
    capture = CaptureThread(source, pace=pace)
    n = 0
    for frame in capture.frames():
        result = pipeline.process(frame)
        for cb in callbacks:
            cb(result)
        n += 1
        if max_frames is not None and n >= max_frames:
            break
    stats = capture.capture_stats()
    return SessionResult(pipeline.current_verdict(final=True), n, stats.frames_captured, stats.dropped)
