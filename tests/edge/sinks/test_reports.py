"""Behaviour of the report, statistics, curve and progress sinks (edge/sinks/) on synthetic frame results.

Synthetic scene: a 640x480 screen with a dark ultrasound region; on a 128x128 model grid an artery
(label 1, round) sits left of a vein (label 2, oval). Text is white and the scene is dark grey, so
"white pixels" are text pixels; templates of the expected strings are matched to find specific words.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sinks import (
    JsonReportSink,
    OutputError,
    ProgressPrinter,
    RunSummary,
    SinkGroup,
    build_report,
    percentiles,
    render_curve,
    write_curve_png,
)
from edge.sinks.curve import CURVE, SIZE
from edge.sinks.report import FrameLog
from edge.sinks.testing import compression_sequence, make_result, make_verdict
from edge.stats import summarize
from edge.us.types import FrameResult

REQUIRED_KEYS = {
    "verdict", "reason", "compressibility", "baseline_vein_area_px", "min_vein_area_px", "artery_flattening",
    "pressure_adequate", "vein_area_px", "frame_indices", "t_media", "frames", "dropped_frames", "backend",
    "model", "latency_ms", "stage_ms", "source", "config", "versions", "disclaimer", "created_utc",
}


def test_percentiles_known_values():
    p = percentiles(range(1, 101))
    assert p == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01})
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}
    assert percentiles([3.0], qs=(50, 99.9)) == {"p50": 3.0, "p99.9": 3.0}
    s = summarize([1, 2, 3, 4])
    assert s["mean"] == 2.5 and s["max"] == 4 and s["n"] == 4 and s["p50"] == 2.5


def _summary(**kw) -> RunSummary:
    v = make_verdict("compressible", final=True, reason="Vein collapsed fully under adequate pressure.",
                     compressibility=0.86, baseline_vein_area_px=9000.0, min_vein_area_px=1260.0,
                     artery_flattening=0.1, pressure_adequate=True)
    base = dict(verdict=v, source="/data/Patient Smith/scan.mp4", backend="onnxruntime:CPUExecutionProvider",
                model="resunet-lite", dropped_frames=3, config={"threshold": 0.5, "out": Path("/tmp/x")})
    base.update(kw)
    return RunSummary(**base)


def test_json_report_has_every_key_and_per_frame_arrays(tmp_path):
    seq = compression_sequence(n=40, lost=range(10, 14))
    path = tmp_path / "report.json"
    with JsonReportSink(path) as sink:
        for r in seq:
            sink.write(r)
        sink.finish(_summary())
    data = json.loads(path.read_text())
    assert REQUIRED_KEYS <= set(data)
    assert data["complete"] is True and data["frames"] == 40 and data["dropped_frames"] == 3
    assert data["verdict"] == "compressible" and data["compressibility"] == 0.86
    assert data["source"] == "scan.mp4", "only the display name: folders may name the patient"
    assert data["config"] == {"threshold": 0.5, "out": "/tmp/x"}
    for key in ("vein_area_px", "frame_indices", "t_media", "t_s", "vein_status", "artery_aspect"):
        assert len(data[key]) == 40, key
    assert all(data["vein_area_px"][i] is None for i in range(10, 14))
    assert all(isinstance(data["vein_area_px"][i], float) for i in range(0, 10))
    assert data["frame_indices"] == list(range(40))
    assert data["vein_status"][11] == "lost"
    lat = [1000 * (r.t_done - r.t_capture) for r in seq]
    assert data["latency_ms"]["p50"] == pytest.approx(np.percentile(lat, 50), abs=1e-3)
    assert data["latency_ms"]["p99"] == pytest.approx(np.percentile(lat, 99), abs=1e-3)
    assert data["latency_ms"]["max"] == pytest.approx(max(lat), abs=1e-3)
    assert set(data["stage_ms"]) == {"preprocess", "infer", "postprocess", "track", "measure"}
    assert data["stage_ms"]["infer"]["p90"] == 5.0
    assert {"python", "numpy", "opencv"} <= set(data["versions"])
    assert data["disclaimer"] == "Research software. Not for diagnostic use."
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["created_utc"])


def test_json_report_without_finish_is_incomplete_and_indeterminate(tmp_path):
    path = tmp_path / "r.json"
    sink = JsonReportSink(path)
    seq = compression_sequence(n=50)
    for r in seq:
        sink.write(r)
    sink.close()
    data = json.loads(path.read_text())
    assert data["complete"] is False and data["verdict"] == "indeterminate"
    assert data["last_provisional"]["verdict"] == "compressible"
    assert data["frames"] == 50


def test_build_report_empty_run_and_live_times():
    log = FrameLog()
    rep = build_report(log, _summary(), created_utc="2025-01-01T00:00:00Z")
    assert rep["frames"] == 0 and rep["latency_ms"]["p50"] is None and rep["vein_area_px"] == []
    json.dumps(rep, default=str, allow_nan=False)
    for r in compression_sequence(n=5):
        log.add(FrameResult(**{**r.__dict__, "t_media": None}))
    rep = build_report(log, _summary())
    assert rep["t_media"] == [None] * 5
    assert rep["t_s"] == pytest.approx([i / 30.0 for i in range(5)], abs=1e-4)


def test_stage_samples_stay_aligned_with_frames():
    log = FrameLog()
    log.add(make_result(0, stage_ms={"infer": 4.0}))
    log.add(make_result(1, stage_ms={"infer": 6.0, "warmup": 30.0}))
    log.add(make_result(2, stage_ms={"infer": 5.0}))
    rep = build_report(log, _summary())
    assert rep["samples"]["stage_ms"] == {"infer": [4.0, 6.0, 5.0], "warmup": [None, 30.0, None]}
    assert rep["stage_ms"]["warmup"]["n"] == 1 and rep["stage_ms"]["infer"]["p50"] == 5.0
    json.dumps(rep, default=str, allow_nan=False)


def test_report_sink_bad_folder_fails_early(tmp_path):
    with pytest.raises(OutputError, match="missing"):
        JsonReportSink(tmp_path / "missing" / "r.json")


def test_sink_group_closes_all_even_if_one_fails(tmp_path):
    class Broken:
        def write(self, r): ...
        def finish(self, s): ...
        def close(self): raise RuntimeError("boom")

    report = JsonReportSink(tmp_path / "r.json")
    group = SinkGroup([Broken(), report])
    group.write(make_result())
    group.finish(_summary())
    with pytest.raises(RuntimeError, match="boom"):
        group.close()
    assert (tmp_path / "r.json").is_file()


# -- curve --------------------------------------------------------------------------------------------


def test_curve_png(tmp_path):
    seq = compression_sequence(n=90, lost=range(20, 30))
    t = [r.t_media for r in seq]
    a = [r.track.vein_area_px for r in seq]
    path = write_curve_png(tmp_path / "curve.png", t, a, 9000.0, 1260.0, "compressible", 0.86)
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (SIZE[1], SIZE[0], 3) == (420, 900, 3)
    assert (img < 200).any(axis=2).mean() > 0.02, "not blank"
    curve = np.all(np.abs(img.astype(int) - CURVE) < 40, axis=2)
    assert curve.sum() > 400
    # lost frames are a gap: no curve pixels strictly inside the lost span
    direct = render_curve(t, a, 9000.0, 1260.0, "compressible", 0.86)
    assert np.array_equal(direct, img)
    cols = np.flatnonzero(curve.any(axis=0))
    t0, t1 = t[0], t[-1]
    x_of = lambda tv: 86 + (tv - t0) / (t1 - t0) * (900 - 40 - 86)  # noqa: E731 (plot margins)
    inside = cols[(cols > x_of(t[20]) + 3) & (cols < x_of(t[29]) - 3)]
    assert inside.size == 0


def test_curve_png_without_any_vein(tmp_path):
    img = render_curve([0.0, 0.1, 0.2], [None, None, None], None, None, "indeterminate", None)
    assert img.shape == (420, 900, 3) and (img < 200).any()


def test_curve_png_bad_path(tmp_path):
    with pytest.raises(OutputError, match="nope"):
        write_curve_png(tmp_path / "nope" / "c.png", [0, 1], [1, 2], None, None, "compressible", None)


# -- console ------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_file_non_tty_prints_every_10_percent():
    out, clock = io.StringIO(), FakeClock()
    p = ProgressPrinter(total=100, stream=out, tty=False, clock=clock)
    for i in range(100):
        clock.t = i / 50.0
        p.write(make_result(i))
    p.finish(_summary(dropped_frames=0))
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 12  # 0%, 10%, ... 100% and the summary
    assert re.fullmatch(r"frames 50/100 \( 50%\)\s+50\.0 fps  ETA 0:01", lines[5]), lines[5]
    assert lines[-2].startswith("frames 100/100 (100%)")
    assert lines[-1] == "processed 100 frames in 2.0 s (50.0 fps), 0 dropped"


def test_progress_file_tty_rewrites_one_line_rate_limited():
    out, clock = io.StringIO(), FakeClock()
    p = ProgressPrinter(total=300, stream=out, tty=True, clock=clock)
    for i in range(300):
        clock.t = i / 100.0  # 3 s at 100 fps
        p.write(make_result(i))
    p.close()
    text = out.getvalue()
    updates = text.count("\r")
    assert 10 <= updates <= 17, updates  # ~5/s over 3 s, plus the final state
    assert text.endswith("\n") and "frames 300/300 (100%)" in text


def test_progress_live_one_line_per_frame_rate_limited():
    out, clock = io.StringIO(), FakeClock()
    p = ProgressPrinter(live=True, stream=out, tty=True, clock=clock)
    seq = compression_sequence(n=60)
    for i, r in enumerate(seq):
        clock.t = i / 30.0  # 2 s at 30 fps -> ~10 lines/s
        p.write(r)
    p.close()
    lines = out.getvalue().splitlines()
    assert 19 <= len(lines) - 1 <= 21
    assert re.fullmatch(r"frame\s+0  vein\s+\d+ px  tracked\s+provisional: INDETERMINATE\s+latency\s+10\.0 ms",
                        lines[0]), lines[0]
    lost = [ln for ln in lines if " lost " in ln]
    assert lost and all("vein      -- px" in ln for ln in lost)
