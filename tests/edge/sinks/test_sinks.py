"""Behaviour of the frame-loop sinks (edge/sinks/) on synthetic, real-looking frame results.

Synthetic scene: a 640x480 screen with a dark ultrasound region; on a 128x128 model grid an artery
(label 1, round) sits left of a vein (label 2, oval). Text is white and the scene is dark grey, so
"white pixels" are text pixels; templates of the expected strings are matched to find specific words.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.sinks import CurveHistory, OutputError, VideoRecorder, percentiles, render_overlay
from edge.sinks.testing import ARTERY, GRID, REGION, SCREEN, VEIN, compression_sequence, make_result, make_verdict
from edge.us.types import FrameResult

# -- helpers -----------------------------------------------------------------------------------------


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
    assert best_text_match(img, "frame 7  processing 6.7 ms", (0, 440, 340, 480)) > 0.8


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
    with VideoRecorder(path, fps=30) as rec:
        for r in seq:
            rec.write(r)
    assert rec.codec in ("avc1", "mp4v")
    assert (rec.codec_note == "") == (rec.codec == "avc1")
    from edge.sources.testing import video_frames

    frames = video_frames(path)
    assert len(frames) == 15
    assert frames[0].shape == (*SCREEN, 3)
    # it recorded the overlay, not the bare frame: the banner is there
    assert np.abs(frames[0][:40].astype(int) - 50).mean() > 20


def test_recorder_writes_webm_for_browsers(tmp_path):
    path = tmp_path / "overlay.webm"
    with VideoRecorder(path, fps=30) as rec:
        for r in compression_sequence(n=8):
            rec.write(r)
    assert rec.codec == "VP80"
    cap = cv2.VideoCapture(str(path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert fourcc == "VP80" and n == 8


def test_recorder_refuses_unknown_suffix(tmp_path):
    with pytest.raises(OutputError, match=r"x\.avi.*\.mp4 or \.webm"):
        VideoRecorder(tmp_path / "x.avi", fps=30)


def test_recorder_pads_odd_sizes(tmp_path):
    r = make_result()
    odd = FrameResult(**{**r.__dict__, "frame": np.full((241, 321), 50, np.uint8), "region": (0, 0, 321, 241)})
    with VideoRecorder(tmp_path / "odd.mp4", fps=10) as rec:
        for _ in range(3):
            rec.write(odd)
    assert rec.size == (322, 242)
    cap = cv2.VideoCapture(str(tmp_path / "odd.mp4"))
    ok, f = cap.read()
    assert ok and f.shape == (242, 322, 3)


def test_recorder_error_names_the_path(tmp_path):
    bad = tmp_path / "no_such_dir" / "x.mp4"
    rec = VideoRecorder(bad, fps=30)
    with pytest.raises(OutputError, match="no_such_dir"):
        rec.write(make_result())
    rec.close()


# -- report -------------------------------------------------------------------------------------------
