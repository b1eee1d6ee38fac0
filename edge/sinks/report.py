"""The per-run JSON report: verdict, per-frame vein areas, latency percentiles, config and versions.

Schema ``dvt-edge/us-report@1`` (built by :func:`build_report`; units in the key names)::

    schema, created_utc (ISO 8601, UTC), disclaimer,
    complete                False when the run ended without finish (error, Ctrl-C, SIGTERM) or its input
                            ended early (a truncated file: fewer frames than the container's count)
    warnings                one line each: input ended early, stream reconnects and the time they missed
    input                   {frames_expected (container's count|null), frames_read, ended_early,
                            ended_early_reason, stopped_by, reconnects, gap_s}; {} when the run did not finish
    error                   why an incomplete run stopped (only when it stopped on an error)
    source                  display name of the source (never a full path)
    verdict, reason, final, compressibility (0-1|null), baseline_vein_area_px, min_vein_area_px,
    artery_flattening, pressure_adequate          -- the final Verdict (see edge.us.types)
    frames                  processed frame count;   dropped_frames: frames the newest-frame slot discarded
    video                   the overlay video: {path, codec, size, policy, queue_frames, frames_offered,
                            frames_written, frames_dropped (left out of the VIDEO only: every frame was still
                            processed and measured), complete}; null when none was recorded
    backend, model, model_spec
    latency_ms              {p50, p90, p99, mean, max, n} of t_done - t_capture (end to end, per frame)
    stage_ms                {stage: {p50, p90, p99, mean, max, n}} of FrameResult.stage_ms (frames reporting it)
    frame_indices, t_media (s|null), t_s (t_media, else seconds since the first capture),
    vein_area_px (screen px|null when lost), vein_status, artery_aspect (height/width, screen units|null)
                            -- per-frame arrays, one entry per processed frame, in processing order
    samples                 {latency_ms: [...], stage_ms: {stage: [...]}}: the raw per-frame samples, aligned
                            with frame_indices (a stage a frame did not report is null)
    config                  the effective config;  versions: python, numpy, opencv, onnxruntime...
    calibration             {mm_per_px: [x, y], source, region, note} or null (edge.sources.calibration);
    baseline_vein_area_mm2, min_vein_area_mm2, vein_area_mm2 (per frame)
                            -- the areas in mm² when the pixel size is known, else null (reporting only)
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
from array import array
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.atomic import write_json
from edge.errors import OutputError
from edge.notice import NOTICE
from edge.sinks.base import RunSummary, SinkBase
from edge.stats import summarize
from edge.us.types import FrameResult, VerdictKind

SCHEMA = "dvt-edge/us-report@1"
_OPTIONAL_DISTS = ("onnxruntime", "onnxruntime-gpu", "tensorrt", "dvt-edge")


class FrameLog:
    """Columnar per-frame measurements of one run (what the report needs, nothing of the images).

    Compact: numbers live in ``array('d')`` columns (8 bytes per value, NaN for "none"), so an hour at
    60 fps costs a few MB. Statuses are kept as the tracker's (interned) strings.
    """

    def __init__(self) -> None:
        self.index = array("q")
        self.t_media = array("d")
        self.t_capture = array("d")
        self.vein_area_px = array("d")
        self.artery_aspect = array("d")
        self.latency_ms = array("d")
        self.vein_status: list[str] = []
        self.stage_ms: dict[str, array] = {}
        self.last_verdict = None

    def __len__(self) -> int:
        return len(self.index)

    def add(self, r: FrameResult) -> None:
        nan = math.nan
        self.index.append(int(r.index))
        self.t_media.append(nan if r.t_media is None else float(r.t_media))
        self.t_capture.append(float(r.t_capture))
        self.vein_area_px.append(nan if r.track.vein_area_px is None else float(r.track.vein_area_px))
        aspect = r.track.artery_aspect
        self.artery_aspect.append(nan if aspect is None else float(aspect))
        self.latency_ms.append(1000.0 * (r.t_done - r.t_capture))
        self.vein_status.append(r.track.vein_status)
        n = len(self.index)
        for stage, ms in r.stage_ms.items():
            if stage not in self.stage_ms:  # a stage first seen now: earlier frames did not report it
                self.stage_ms[stage] = array("d", [nan] * (n - 1))
            self.stage_ms[stage].append(float(ms))
        for column in self.stage_ms.values():
            if len(column) < n:  # this frame did not report that stage
                column.append(nan)
        self.last_verdict = r.verdict


def _nullable(values, ndigits: int) -> list[float | None]:
    return [None if math.isnan(v) else round(v, ndigits) for v in values]


def _display_name(source: str) -> str:
    """Keep a source's display name free of folders (which may name a patient): base name for paths."""
    if "://" in source:
        return source
    return os.path.basename(source.rstrip("/\\")) or source


def versions() -> dict[str, str]:
    """Versions of the runtime pieces that shape a result (optional ones only when installed)."""
    out = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__}
    for dist in _OPTIONAL_DISTS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(log: FrameLog, summary: RunSummary | None, *, created_utc: str | None = None,
                 error: str | None = None) -> dict[str, Any]:
    """The report dict of one run. ``summary`` None means the run ended without ``finish`` (crash,
    interrupt): the report is marked incomplete and its verdict is indeterminate, whatever the last
    provisional verdict said (kept under ``last_provisional``), because a cut-short run decides nothing."""
    if summary is not None:
        verdict = summary.verdict.to_json()
    else:
        verdict = {"verdict": VerdictKind.INDETERMINATE, "reason": "The run ended before it finished; no verdict.",
                   "compressibility": None, "baseline_vein_area_px": None, "min_vein_area_px": None,
                   "artery_flattening": None, "pressure_adequate": None, "final": False}
    t_media = _nullable(log.t_media, 4)
    t0 = log.t_capture[0] if len(log) else 0.0
    t_s = [tm if tm is not None else round(tc - t0, 4) for tm, tc in zip(t_media, log.t_capture)]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created_utc": created_utc or utc_now(),
        "disclaimer": NOTICE,
        "complete": summary is not None and not (summary.input or {}).get("ended_early", False),
        "warnings": list(summary.warnings) if summary else [],
        "input": dict(summary.input) if summary else {},
        "source": _display_name(summary.source) if summary else "",
        **verdict,
        "frames": len(log),
        "dropped_frames": int(summary.dropped_frames) if summary else None,
        "video": summary.video if summary else None,
        "backend": summary.backend if summary else "",
        "model": summary.model if summary else "",
        "model_spec": summary.model_spec if summary else None,
        "latency_ms": summarize(log.latency_ms),
        "stage_ms": {stage: summarize(x for x in v if not math.isnan(x)) for stage, v in log.stage_ms.items()},
        "frame_indices": list(log.index),
        "t_media": t_media,
        "t_s": t_s,
        "vein_area_px": _nullable(log.vein_area_px, 1),
        "vein_status": list(log.vein_status),
        "artery_aspect": _nullable(log.artery_aspect, 4),
        "samples": {"latency_ms": [round(v, 3) for v in log.latency_ms],
                    "stage_ms": {k: _nullable(v, 3) for k, v in log.stage_ms.items()}},
        "config": summary.config if summary else {},
        "versions": versions(),
    }
    from edge.sources.calibration import add_physical_units

    add_physical_units(report)  # calibration, *_mm2 beside the *_px areas (null when the pixel size is unknown)
    if summary is None and log.last_verdict is not None:
        report["last_provisional"] = log.last_verdict.to_json()
    if summary is None and error:
        report["error"] = error
        report["warnings"].append(error)
    return report


def processing_ms(report: dict[str, Any]) -> float:
    """Median processing time per frame of a report: the sum of its stages' p50 (``stage_ms``). For a clip
    read faster than it plays this is the speed; frame age (``latency_ms``) there counts the queue wait."""
    return sum(v["p50"] for v in report.get("stage_ms", {}).values() if isinstance(v, dict) and "p50" in v)


class JsonReportSink(SinkBase):
    """Collects a :class:`FrameLog` and writes the report to ``path`` on ``close``.

    Life cycle: ``write`` per frame -> ``finish(RunSummary)`` -> ``close()`` writes the file (idempotent).
    Closed without ``finish``, it writes an incomplete report (``complete: false``, verdict indeterminate).
    After close, ``report`` holds the dict that was written. The folder is checked at construction so a
    bad path fails before the scan, not after it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise OutputError(f"{self.path}: cannot write the report: folder {self.path.parent} does not exist")
        self.log = FrameLog()
        self.summary: RunSummary | None = None
        self.error: str | None = None  # why the run stopped, when it stopped on an error (set by the job)
        self.report: dict[str, Any] | None = None
        self._closed = False

    def write(self, result: FrameResult) -> None:
        self.log.add(result)

    def finish(self, summary: RunSummary) -> None:
        self.summary = summary

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.report = build_report(self.log, self.summary, error=self.error)
        write_json(self.path, self.report)
