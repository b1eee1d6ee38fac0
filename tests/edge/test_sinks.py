"""Behaviour of the frame-loop sinks (edge/sinks/) on synthetic, real-looking frame results.

Synthetic scene: a 640x480 screen with a dark ultrasound region; on a 128x128 model grid an artery
(label 1, round) sits left of a vein (label 2, oval). Text is white and the scene is dark grey, so
"white pixels" are text pixels; templates of the expected strings are matched to find specific words.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sinks import (CurveHistory, JsonReportSink, Mp4Recorder, OutputError, ProgressPrinter, RunSummary,
                        SinkGroup, build_report, percentiles, render_curve, render_overlay, write_curve_png)
from edge.sinks.curve import CURVE, SIZE
from edge.sinks.report import FrameLog
from edge.sinks.stats import summarize
from edge.us.types import Blob, FrameResult, TrackState, Verdict

GRID = (128, 128)
SCREEN = (480, 640)  # h, w
REGION = (80, 40, 480, 400)  # x, y, w, h of the image area on the screen
ARTERY = ((40, 64), (12, 12))  # centre (x, y), half-axes (a, b) on the model grid
VEIN = ((84, 66), (18, 12))
REQUIRED_KEYS = {
    "verdict", "reason", "compressibility", "baseline_vein_area_px", "min_vein_area_px", "artery_flattening",
    "pressure_adequate", "vein_area_px", "frame_indices", "t_media", "frames", "dropped_frames", "backend",
    "model", "latency_ms", "stage_ms", "source", "config", "versions", "disclaimer", "created_utc",
}


# -- builders -----------------------------------------------------------------------------------------


def ellipse_mask(centre, axes, grid=GRID) -> np.ndarray:
    m = np.zeros(grid, np.uint8)
    cv2.ellipse(m, centre, axes, 0, 0, 360, 1, -1)
    return m.astype(bool)


def make_blob(mask: np.ndarray, label: int) -> Blob:
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, ys]).astype(float)) if xs.size > 2 else np.eye(2)
    ev = np.sort(np.linalg.eigvalsh(cov))
    ratio = float(math.sqrt(max(ev[0], 0.0) / ev[1])) if ev[1] > 0 else 1.0
    x0, y0 = int(xs.min()), int(ys.min())
    return Blob(label=label, area=float(mask.sum()), centroid=(float(xs.mean()), float(ys.mean())),
                bbox=(x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1), axis_ratio=ratio, mask=mask)


def make_verdict(verdict="indeterminate", final=False, **kw) -> Verdict:
    base = dict(reason="Baseline being measured: hold the probe still.", compressibility=None,
                baseline_vein_area_px=None, min_vein_area_px=None, artery_flattening=None,
                pressure_adequate=None)
    base.update(kw)
    return Verdict(verdict=verdict, final=final, **base)


def make_result(index=0, *, status="tracked", artery=True, vein_axes=VEIN[1], verdict=None, grey=True,
                t_media=None, latency_s=0.02, frame_value=50, stage_ms=None) -> FrameResult:
    labels = np.zeros(GRID, np.uint8)
    a_blob = v_blob = None
    if artery:
        am = ellipse_mask(*ARTERY)
        labels[am] = 1
        a_blob = make_blob(am, 1)
    area_px = None
    if status in ("tracked", "collapsed") and vein_axes is not None and min(vein_axes) > 0:
        vm = ellipse_mask(VEIN[0], vein_axes)
        labels[vm] = 2
        v_blob = make_blob(vm, 2)
    sx, sy = REGION[2] / GRID[1], REGION[3] / GRID[0]
    if status == "tracked":
        area_px = v_blob.area * sx * sy
    elif status == "collapsed":
        area_px = 0.0
    frame = np.full(SCREEN, frame_value, np.uint8)
    if not grey:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    t_capture = 100.0 + index / 30.0
    return FrameResult(
        index=index, t_capture=t_capture, t_media=t_media, frame=frame, labels=labels, region=REGION,
        track=TrackState(vein_status=status, vein=v_blob, artery=a_blob, vein_area_px=area_px),
        verdict=verdict or make_verdict(),
        stage_ms=stage_ms or {"preprocess": 1.0, "infer": 5.0, "postprocess": 0.5, "track": 0.1, "measure": 0.1},
        t_done=t_capture + latency_s)


def compression_sequence(n=60, lost=range(25, 30)) -> list[FrameResult]:
    """A vein squeezed flat and released; frames in ``lost`` have no vein; frames 35-39 collapsed."""
    out = []
    for i in range(n):
        squeeze = 0.5 - 0.5 * math.cos(2 * math.pi * i / n)  # 0 -> 1 -> 0
        b = int(round(12 * (1 - squeeze)))
        status = "lost" if i in lost else ("collapsed" if b <= 1 else "tracked")
        v = make_verdict("compressible" if i > 40 else "indeterminate", compressibility=0.86 if i > 40 else None,
                         baseline_vein_area_px=9000.0, min_vein_area_px=1260.0 if i > 40 else None)
        out.append(make_result(i, status=status, vein_axes=(18, max(b, 1)), verdict=v, t_media=i / 30.0,
                               latency_s=0.010 + 0.001 * (i % 7)))
    return out


def to_screen(x, y):
    sx, sy = REGION[2] / GRID[1], REGION[3] / GRID[0]
    return REGION[0] + (x + 0.5) * sx - 0.5, REGION[1] + (y + 0.5) * sy - 0.5


def white(img: np.ndarray) -> np.ndarray:
    return np.all(img >= 230, axis=2)


def best_text_match(img: np.ndarray, text: str, box) -> float:
    """Best normalised correlation of ``text`` (any common font size) with white pixels inside ``box``."""
    x0, y0, x1, y1 = box
    hay = white(img[y0:y1, x0:x1]).astype(np.float32)
    best = 0.0
    for scale in np.arange(0.35, 1.01, 0.05):
        for th in (1, 2):
            (tw, tht), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, th)
            tpl = np.zeros((tht + base + 4, tw + 4), np.uint8)
            cv2.putText(tpl, text, (2, tht + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, th, cv2.LINE_AA)
            tpl = (tpl >= 230).astype(np.float32)
            if tpl.shape[0] > hay.shape[0] or tpl.shape[1] > hay.shape[1]:
                continue
            best = max(best, float(cv2.matchTemplate(hay, tpl, cv2.TM_CCORR_NORMED).max()))
    return best


# -- overlay ------------------------------------------------------------------------------------------


def test_overlay_is_new_bgr_image_and_frame_untouched():
    r = make_result()
    before = r.frame.copy()
    img = render_overlay(r, None)
    assert img.shape == (*SCREEN, 3) and img.dtype == np.uint8
    assert np.array_equal(r.frame, before)
    assert not np.shares_memory(img, r.frame)
    bgr = make_result(grey=False)
    assert np.array_equal(render_overlay(bgr, None), img)  # grey and BGR frames render alike


def test_overlay_outlines_and_fills_the_vessels():
    img = render_overlay(make_result(), None).astype(int)
    # points on each ellipse's outline are drawn in the vessel colour: artery red, vein blue
    for (c, (a, b)), red in ((ARTERY, True), (VEIN, False)):
        hits = 0
        for ang in np.linspace(0, 2 * np.pi, 24, endpoint=False):
            x, y = to_screen(c[0] + a * np.cos(ang), c[1] + b * np.sin(ang))
            patch = img[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].reshape(-1, 3)
            diff = patch[:, 2] - patch[:, 0] if red else patch[:, 0] - patch[:, 2]
            hits += diff.max() > 100
        assert hits >= 22, f"{'artery' if red else 'vein'} outline found at {hits}/24 points"
        cx, cy = (int(v) for v in to_screen(*c))
        b_, g_, r_ = img[cy, cx]
        assert (r_ - b_ if red else b_ - r_) > 20, "semi-transparent fill inside the vessel"
        assert 40 < g_ < 120, "the fill is translucent: the frame still shows through"
    # far from everything the frame is unchanged
    assert np.all(img[300, 330] == 50)


def test_overlay_labels_A_and_V_next_to_their_vessels():
    img = render_overlay(make_result(), None)
    ax, ay = to_screen(*ARTERY[0])
    vx, vy = to_screen(*VEIN[0])
    a_half = ARTERY[1][0] * REGION[2] / GRID[1]
    v_half = VEIN[1][0] * REGION[2] / GRID[1]
    # the artery is left of the vein, so "A" goes on its left and "V" on the vein's right
    a_box = (int(ax - a_half - 45), int(ay - 30), int(ax - a_half), int(ay + 30))
    v_box = (int(vx + v_half), int(vy - 30), int(vx + v_half + 45), int(vy + 30))
    assert white(img[a_box[1]:a_box[3], a_box[0]:a_box[2]]).sum() > 30
    assert white(img[v_box[1]:v_box[3], v_box[0]:v_box[2]]).sum() > 30
    assert best_text_match(img, "A", a_box) > 0.8
    assert best_text_match(img, "V", v_box) > 0.8
    assert best_text_match(img, "A", v_box) < best_text_match(img, "V", v_box)
    # control: no artery -> no "A" text there
    no_artery = render_overlay(make_result(artery=False), None)
    assert white(no_artery[a_box[1]:a_box[3], a_box[0]:a_box[2]]).sum() == 0


def test_overlay_banner_status_footer_text():
    v = make_verdict("non_compressible", final=True, reason="Vein stayed open while the artery flattened.",
                     compressibility=0.12, baseline_vein_area_px=9000.0, min_vein_area_px=7920.0)
    img = render_overlay(make_result(7, verdict=v), None)
    top = img[:40, :].reshape(-1, 3).astype(int)
    reddish = (top[:, 2] - top[:, 1] > 60).mean()
    assert reddish > 0.5, "non-compressible banner is red"
    assert best_text_match(img, "NON-COMPRESSIBLE", (0, 0, 640, 50)) > 0.8
    assert best_text_match(img, "final", (0, 0, 640, 50)) > 0.8
    assert best_text_match(img, "compressibility: 12%", (0, 40, 320, 160)) > 0.8
    assert best_text_match(img, "Not for diagnostic use", (300, 440, 640, 480)) > 0.8
    assert best_text_match(img, "frame 7  latency 20.0 ms", (0, 440, 340, 480)) > 0.8


def test_overlay_collapsed_vein_shows_status_text_and_line():
    history = CurveHistory()
    open_ = make_result(0)
    history.append(open_)
    collapsed = make_result(1, status="collapsed", vein_axes=None)
    assert collapsed.track.vein is None and collapsed.track.vein_area_px == 0.0
    history.append(collapsed)
    img = render_overlay(collapsed, history)
    assert best_text_match(img, "vein: COLLAPSED", (0, 40, 320, 160)) > 0.8
    assert best_text_match(img, "vein: COLLAPSED", (0, 40, 320, 160)) > best_text_match(
        render_overlay(open_, history), "vein: COLLAPSED", (0, 40, 320, 160))
    vx, vy = (int(v) for v in history.last_vein_xy)
    row = img[vy - 2:vy + 3, vx - 40:vx + 40].reshape(-1, 3).astype(int)
    assert (row[:, 0] - row[:, 2] > 100).sum() > 100, "a blue line marks where the vein collapsed"
    assert best_text_match(img, "V collapsed", (vx, vy - 30, 640, vy + 30)) > 0.8


def test_overlay_collapsed_sliver_is_a_line_not_an_outline():
    r = make_result(status="collapsed", vein_axes=(18, 1))
    assert r.track.vein is not None
    img = render_overlay(r, None)
    vx, vy = (int(round(v)) for v in to_screen(*r.track.vein.centroid))
    blue = lambda a: (a[..., 0].astype(int) - a[..., 2] > 100)  # noqa: E731
    assert blue(img[vy - 2:vy + 3, vx - 40:vx + 40]).sum() > 100
    assert blue(img[vy - 25:vy - 8, vx - 60:vx + 60]).sum() == 0, "no vein outline around a collapsed vein"
    assert best_text_match(img, "V collapsed", (vx, vy - 30, 640, vy + 30)) > 0.8


def test_overlay_lost_vein_says_so():
    img = render_overlay(make_result(status="lost"), None)
    assert best_text_match(img, "vein: LOST", (0, 40, 320, 160)) > 0.8
    assert best_text_match(img, "vein area: --", (0, 40, 320, 160)) > 0.8


def test_overlay_sparkline_draws_history_with_gaps():
    history = CurveHistory(capacity=100)
    seq = compression_sequence()
    for r in seq:
        history.append(r)
    t, a = history.points()
    assert len(t) == 60 and np.isnan(a[25:30]).all() and np.isfinite(a[:25]).all()
    img = render_overlay(seq[-1], history)
    plain = render_overlay(seq[-1], None)
    corner = np.any(img[300:460, 420:640] != plain[300:460, 420:640], axis=2)
    assert corner.sum() > 500, "sparkline panel drawn in the bottom-right corner"


def test_curve_history_is_a_bounded_ring():
    h = CurveHistory(capacity=10)
    for r in compression_sequence(n=25, lost=()):
        h.append(r)
    t, _ = h.points()
    assert len(h) == 10 and np.allclose(t, np.arange(15, 25) / 30.0)


def test_overlay_rejects_bad_frames_and_reuses_out_buffer():
    r = make_result()
    buf = np.empty((*SCREEN, 3), np.uint8)
    assert render_overlay(r, None, out=buf) is buf
    assert np.array_equal(buf, render_overlay(r, None))
    with pytest.raises(ValueError):
        render_overlay(r, None, out=np.empty((10, 10, 3), np.uint8))


def test_overlay_small_and_odd_frames_do_not_crash():
    r = make_result()
    for shape in ((121, 161), (240, 320), (1080, 1920)):
        small = FrameResult(**{**r.__dict__, "frame": np.full(shape, 40, np.uint8),
                               "region": (0, 0, shape[1], shape[0])})
        h = CurveHistory()
        h.append(small)
        assert render_overlay(small, h).shape == (*shape, 3)


def test_render_overlay_speed_printed():
    """Not a hard threshold (benchmarks own those): prints the per-frame cost on this machine."""
    seq = compression_sequence(n=60)
    history = CurveHistory()
    buf = np.empty((*SCREEN, 3), np.uint8)
    for r in seq[:10]:
        history.append(r)
        render_overlay(r, history)
    wall, cpu = [], []
    for k in range(300):
        r = seq[k % len(seq)]
        history.append(r)
        t0, c0 = time.perf_counter(), time.thread_time()
        render_overlay(r, history, out=buf)
        cpu.append((time.thread_time() - c0) * 1e3)  # this thread's CPU: immune to a busy machine
        wall.append((time.perf_counter() - t0) * 1e3)
    fmt = lambda p: " ".join(f"{k} {v:.2f}" for k, v in p.items())  # noqa: E731
    print(f"\nrender_overlay 640x480 (cv2 threads={cv2.getNumThreads()}): "
          f"cpu ms {fmt(percentiles(cpu))} | wall ms {fmt(percentiles(wall))}")
    assert percentiles(cpu)["p50"] > 0


# -- recorder -----------------------------------------------------------------------------------------


def test_recorder_writes_readable_mp4(tmp_path):
    path = tmp_path / "overlay.mp4"
    seq = compression_sequence(n=15)
    with Mp4Recorder(path, fps=30) as rec:
        for r in seq:
            rec.write(r)
    assert rec.codec in ("avc1", "mp4v")
    assert (rec.codec_note == "") == (rec.codec == "avc1")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 15
    assert frames[0].shape == (*SCREEN, 3)
    # it recorded the overlay, not the bare frame: the banner is there
    assert np.abs(frames[0][:40].astype(int) - 50).mean() > 20


def test_recorder_pads_odd_sizes(tmp_path):
    r = make_result()
    odd = FrameResult(**{**r.__dict__, "frame": np.full((241, 321), 50, np.uint8), "region": (0, 0, 321, 241)})
    with Mp4Recorder(tmp_path / "odd.mp4", fps=10) as rec:
        for _ in range(3):
            rec.write(odd)
    assert rec.size == (322, 242)
    cap = cv2.VideoCapture(str(tmp_path / "odd.mp4"))
    ok, f = cap.read()
    assert ok and f.shape == (242, 322, 3)


def test_recorder_error_names_the_path(tmp_path):
    bad = tmp_path / "no_such_dir" / "x.mp4"
    rec = Mp4Recorder(bad, fps=30)
    with pytest.raises(OutputError, match="no_such_dir"):
        rec.write(make_result())
    rec.close()


# -- report -------------------------------------------------------------------------------------------


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
