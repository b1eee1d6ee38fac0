"""One ultrasound frame -> preprocess -> infer -> postprocess -> track -> measure -> verdict.

:class:`UltrasoundPipeline` is the per-stream state (tracker, curve arrays) around a backend that was
created before the stream started. Curve arrays are bounded (``window_s``) so a long live session keeps
constant memory and per-frame cost; the verdict covers that window.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from edge.backends.base import Backend
from edge.errors import ModelError
from edge.sources.base import Frame
from edge.spec import ModelSpec
from edge.us.measure import measure
from edge.us.postprocess import labels_from_logits
from edge.us.preprocess import Preprocessor, Region
from edge.us.tracker import TrackerConfig, VesselTracker
from edge.us.types import FrameResult, Verdict
from edge.us.verdict import VerdictConfig, decide


@dataclass(frozen=True)
class UsConfig:
    """Effective configuration of the ultrasound job (recorded in every report)."""

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)
    window_s: float = 30.0  # the verdict covers at most this much of the stream
    crop: Region | None = None  # image region on the screen; None = detect on the first frame

    def to_json(self) -> dict:
        return asdict(self)


class UltrasoundPipeline:
    def __init__(self, backend: Backend, spec: ModelSpec, config: UsConfig | None = None):
        if spec.task != "us-segmentation":
            raise ModelError(f"model '{spec.name}' is for task '{spec.task}', not us-segmentation")
        if tuple(spec.labels[:3]) != ("background", "artery", "vein"):
            raise ModelError(f"model '{spec.name}' labels {spec.labels} are not (background, artery, vein)")
        self.backend, self.spec = backend, spec
        self.cfg = config or UsConfig()
        self.pre = Preprocessor(spec, region=self.cfg.crop)
        self.input_name = spec.input.name
        self.output_name = spec.outputs[0].name
        self.tracker: VesselTracker | None = None
        maxlen = int(self.cfg.window_s * 120) + 1  # enough for 120 fps over the window
        self.t: deque[float] = deque(maxlen=maxlen)
        self.vein: deque[float] = deque(maxlen=maxlen)
        self.artery_ratio: deque[float] = deque(maxlen=maxlen)
        self.t0: float | None = None

    def process(self, frame: Frame) -> FrameResult:
        """Run every stage on ``frame``; returns its result (arrays owned by the result)."""
        marks = [time.perf_counter()]
        x, _ = self.pre(frame.image)
        marks.append(time.perf_counter())
        logits = self.backend.infer({self.input_name: x})[self.output_name]
        marks.append(time.perf_counter())
        labels = labels_from_logits(logits)
        marks.append(time.perf_counter())
        if self.tracker is None:
            _, _, rw, rh = self.pre.region
            gh, gw = self.pre.size_hw
            self.tracker = VesselTracker(self.pre.size_hw, self.pre.model_px_area(), self.cfg.tracker,
                                         anisotropy=(rh / gh) / (rw / gw))
        t = frame.t_media if frame.t_media is not None else frame.t_capture
        if self.t0 is None:
            self.t0 = t
        track = self.tracker.update(labels, t)
        marks.append(time.perf_counter())
        self.t.append(t - self.t0)
        self.vein.append(np.nan if track.vein_area_px is None else track.vein_area_px)
        self.artery_ratio.append(np.nan if track.artery_aspect is None else track.artery_aspect)
        verdict = self.current_verdict(final=False)
        marks.append(time.perf_counter())
        stages = ("preprocess", "infer", "postprocess", "track", "measure")
        stage_ms = {s: (marks[i + 1] - marks[i]) * 1e3 for i, s in enumerate(stages)}
        return FrameResult(
            index=frame.index, t_capture=frame.t_capture, t_media=frame.t_media, frame=frame.image,
            labels=labels, region=self.pre.region, track=track, verdict=verdict, stage_ms=stage_ms,
            t_done=time.monotonic(),
        )

    def current_verdict(self, final: bool) -> Verdict:
        m = measure(np.fromiter(self.t, float), np.fromiter(self.vein, float),
                    np.fromiter(self.artery_ratio, float),
                    adequate_flattening=self.cfg.verdict.adequate_flattening)
        return decide(m, self.cfg.verdict, final=final)
