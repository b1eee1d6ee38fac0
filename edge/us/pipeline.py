"""One ultrasound frame -> preprocess -> infer -> postprocess -> identity -> track -> measure -> verdict.

:class:`UltrasoundPipeline` is the per-stream state (identity judge, tracker, curve arrays) around a
backend that was created before the stream started. Curve arrays are bounded (``window_s``) so a long
live session keeps constant memory and per-frame cost; the verdict covers that window.

Identity (``edge.us.identity``): for the first ~1 s the frames are tracked on the model's own labels
(provisional) while the judge collects evidence; once it decides, the tracker and curves restart and the
buffered window frames are replayed with the decided identities, then every later frame is relabelled the
same way. The replay buffer is bounded (``identity.evidence_s`` at up to 120 fps).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np

from edge.backends.base import Backend
from edge.errors import ModelError
from edge.sources.base import Frame
from edge.spec import ModelSpec
from edge.us.episodes import EpisodeConfig, episode_ended
from edge.us.identity import IdentityConfig, IdentityJudge
from edge.us.measure import Measurements, measure
from edge.us.postprocess import labels_from_logits
from edge.us.preprocess import Preprocessor
from edge.us.tracker import TrackerConfig, VesselTracker
from edge.us.types import FrameResult, Region, Verdict, VerdictKind
from edge.us.verdict import VerdictConfig, decide


@dataclass(frozen=True)
class UsConfig:
    """Effective configuration of the ultrasound job (recorded in every report)."""

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    verdict: VerdictConfig = field(default_factory=VerdictConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    window_s: float = 30.0  # an episode (press and release) covers at most this much of the stream
    crop: Region | None = None  # image region on the screen; None = detect on the first frame

    def to_json(self) -> dict:
        return asdict(self)


class VerdictObserver(Protocol):
    """Sees every verdict the pipeline decides, with the measurements behind it (validation probes, logs)."""

    def __call__(self, m: Measurements, v: Verdict) -> None: ...


class UltrasoundPipeline:
    def __init__(self, backend: Backend, spec: ModelSpec, config: UsConfig | None = None,
                 observer: VerdictObserver | None = None):
        if spec.task != "us-segmentation":
            raise ModelError(f"model '{spec.name}' is for task '{spec.task}', not us-segmentation")
        if tuple(spec.labels[:3]) != ("background", "artery", "vein"):
            raise ModelError(f"model '{spec.name}' labels {spec.labels} are not (background, artery, vein)")
        self.backend, self.spec = backend, spec
        self.cfg = config or UsConfig()
        self.observer = observer
        self.pre = Preprocessor(spec, region=self.cfg.crop)
        self.input_name = spec.input.name
        self.output_name = spec.outputs[0].name
        self.tracker: VesselTracker | None = None
        self.judge: IdentityJudge | None = None
        self._pending: deque[tuple[np.ndarray, np.ndarray, float]] = deque(
            maxlen=int(self.cfg.identity.evidence_s * 120) + 2)  # (labels, logits, t) until identity is decided
        self._maxlen = int(self.cfg.window_s * 240) + 1  # a memory bound only; the window is trimmed by time
        self._curves_version = 0  # bumped on every change of the curves; the measurements are cached per version
        self._measured_version = -1
        self._reset_curves()
        self.t0: float | None = None
        self.episodes: deque[Verdict] = deque(maxlen=self.cfg.episodes.max_history)  # completed presses

    def _reset_curves(self) -> None:
        m = self._maxlen
        self._curves_version += 1
        self.t: deque[float] = deque(maxlen=m)
        self.vein: deque[float] = deque(maxlen=m)
        self.artery_ratio: deque[float] = deque(maxlen=m)
        self.artery_area: deque[float] = deque(maxlen=m)
        self.vein_confidence: deque[float] = deque(maxlen=m)

    def _new_tracker(self) -> VesselTracker:
        _, _, rw, rh = self.pre.region
        gh, gw = self.pre.size_hw
        return VesselTracker(self.pre.size_hw, self.pre.model_px_area(), self.cfg.tracker,
                             anisotropy=(rh / gh) / (rw / gw))

    def _track(self, labels: np.ndarray, logits: np.ndarray, t: float):
        track = self.tracker.update(labels, t)
        self.t.append(t - self.t0)
        self.vein.append(np.nan if track.vein_area_px is None else track.vein_area_px)
        self.artery_ratio.append(np.nan if track.artery_aspect is None else track.artery_aspect)
        self.artery_area.append(np.nan if track.artery is None else track.artery.area * self.tracker.px)
        self.vein_confidence.append(np.nan if track.vein is None else vessel_confidence(logits, track.vein.mask))
        self._curves_version += 1
        while self.t[-1] - self.t[0] > self.cfg.window_s:  # the window is in seconds, whatever the frame rate
            for curve in (self.t, self.vein, self.artery_ratio, self.artery_area, self.vein_confidence):
                curve.popleft()
        return track

    def _measure(self):
        """The measurements of the curves as they stand; computed once per state of the curves (the episode
        check and the verdict of a frame share one computation)."""
        if self._measured_version != self._curves_version:
            self._measured, self._measured_version = self._compute_measure(), self._curves_version
        return self._measured

    def _compute_measure(self):
        return measure(np.fromiter(self.t, float), np.fromiter(self.vein, float),
                       np.fromiter(self.artery_ratio, float),
                       adequate_flattening=self.cfg.verdict.adequate_flattening,
                       artery_area=np.fromiter(self.artery_area, float),
                       vein_confidence=np.fromiter(self.vein_confidence, float))

    def _close_episode(self) -> None:
        """When the current press has been released (``edge.us.episodes``), keep its verdict in the history
        and start the next episode from the rest frames that followed it."""
        if self.identity is None or len(self.t) < 3:
            return
        m = self._measure()
        t = np.fromiter(self.t, float)
        if not episode_ended(t, np.fromiter(self.vein, float), np.fromiter(self.artery_ratio, float), m,
                             compressible_min=self.cfg.verdict.compressible_min,
                             adequate_flattening=self.cfg.verdict.adequate_flattening, cfg=self.cfg.episodes):
            return
        self.episodes.append(self._decide(m, final=True))
        keep = int(np.sum(t >= t[-1] - self.cfg.episodes.keep_s))
        for curve in (self.t, self.vein, self.artery_ratio, self.artery_area, self.vein_confidence):
            for _ in range(len(curve) - keep):
                curve.popleft()
        self._curves_version += 1

    @property
    def identity(self):
        """The decided :class:`edge.us.identity.Identity`, or None while the evidence window runs."""
        return None if self.judge is None else self.judge.identity

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
            self.tracker = self._new_tracker()
            self.judge = IdentityJudge(self.pre.size_hw, self.tracker.anisotropy, self.cfg.identity)
        t = frame.t_media if frame.t_media is not None else frame.t_capture
        if self.t0 is None:
            self.t0 = t
        if self.judge.identity is None:
            self.judge.observe(labels, t)
            self._pending.append((labels, logits, t))
            if self.judge.ready():
                self.judge.decide()
                self.tracker = self._new_tracker()
                self._reset_curves()
                for lab, lg, tp in self._pending:  # replay the window with the decided identities
                    labels = self.judge.relabel(lab)
                    track = self._track(labels, lg, tp)
                self._pending.clear()
            else:
                track = self._track(labels, logits, t)
        else:
            labels = self.judge.relabel(labels)
            track = self._track(labels, logits, t)
        self._close_episode()
        marks.append(time.perf_counter())
        verdict = self.current_verdict(final=False)
        marks.append(time.perf_counter())
        stages = ("preprocess", "infer", "postprocess", "track", "measure")
        stage_ms = {s: (marks[i + 1] - marks[i]) * 1e3 for i, s in enumerate(stages)}
        return FrameResult(
            index=frame.index, t_capture=frame.t_capture, t_media=frame.t_media, frame=frame.image,
            labels=labels, region=self.pre.region, track=track, verdict=verdict, stage_ms=stage_ms,
            t_done=time.monotonic(),
        )

    def _decide(self, m: Measurements, final: bool) -> Verdict:
        v = decide(m, self.cfg.verdict, final=final, identity=self.identity)
        if self.observer is not None:
            self.observer(m, v)
        return v

    def current_verdict(self, final: bool) -> Verdict:
        """The verdict of the press in progress; while the probe rests after a completed press (too short,
        or no pressure yet), the verdict of the last completed press."""
        v = self._decide(self._measure(), final=final)
        if self.episodes and v.verdict == VerdictKind.INDETERMINATE and v.reason.startswith(RESTING):
            return replace(self.episodes[-1], final=final)
        return v


RESTING = ("too short", "too little pressure")  # reasons of an episode that has not started yet


def vessel_confidence(logits: np.ndarray, mask: np.ndarray) -> float:
    """Mean softmax p(artery) + p(vein) over the pixels of ``mask``: how sure the model is that the
    tracked region is a vessel at all (its type is the identity judge's business)."""
    lg = (logits[0] if logits.ndim == 4 else logits)[:, mask].astype(np.float32)
    if lg.size == 0:
        return float("nan")
    lg = lg - lg.max(0, keepdims=True)
    e = np.exp(lg)
    return float(((e[1] + e[2]) / e.sum(0)).mean())
