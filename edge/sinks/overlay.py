"""The bedside overlay: what the clinician sees on top of the ultrasound frame while pressing.

:func:`render_overlay` is a pure function of one :class:`FrameResult` (plus an optional
:class:`CurveHistory` for the sparkline and the last vein position); the recorder and any live display
call it. Every colour-coded item also carries text ("A", "V", "COMPRESSIBLE", "collapsed"), because
colour alone fails colour-blind readers; text is white on a dark outline so it reads on any speckle.

Layout (sizes scale with the frame's shorter side, reference 480 px)::

    +---------------------------------------------------------+
    | VERDICT (provisional)          banner, verdict colour   |
    | reason                                                  |
    +---------------------------------------------------------+
    | vein: tracked       |                                   |
    | area 1423 px        |     A (outline, fill)  V          |
    | compressibility 86% |                                   |
    | pressure: adequate  |                      [sparkline]  |
    | frame 123  processing 14.2 ms      Not for diagnostic use|
    +---------------------------------------------------------+

Cost: ~1 ms for a 640x480 frame on one core (see tests/edge/sinks/test_sinks.py for the printed timing):
contours are found on the small model grid inside each blob's bbox and scaled to the screen, fills are
blended only inside the vessels' bounding box, panels are darkened in place with integer shifts.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from edge.notice import NOTICE_SHORT
from edge.sinks.geometry import model_to_screen
from edge.sinks.history import CurveHistory
from edge.us.types import Blob, FrameResult, VeinStatus, VerdictKind

__all__ = ["render_overlay", "CurveHistory", "VERDICT_TEXT"]

FONT = cv2.FONT_HERSHEY_SIMPLEX
AA = cv2.LINE_AA
SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (170, 170, 170)
ARTERY_BGR = (60, 60, 235)  # red
VEIN_BGR = (235, 160, 40)  # blue
FILL_ALPHA = 0.3
VERDICT_TEXT = {VerdictKind.COMPRESSIBLE: "COMPRESSIBLE", VerdictKind.NON_COMPRESSIBLE: "NON-COMPRESSIBLE",
                VerdictKind.INDETERMINATE: "INDETERMINATE"}
VERDICT_BGR = {VerdictKind.COMPRESSIBLE: (40, 140, 30), VerdictKind.NON_COMPRESSIBLE: (40, 30, 200),
               VerdictKind.INDETERMINATE: (0, 120, 210)}  # green / red / amber, each darkened for white text
STATUS_TEXT = {VeinStatus.TRACKED: "tracked", VeinStatus.COLLAPSED: "COLLAPSED", VeinStatus.LOST: "LOST",
               VeinStatus.SEARCHING: "searching"}


def render_overlay(result: FrameResult, history: CurveHistory | None = None, *,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Draw the overlay for ``result`` and return it as an HxWx3 uint8 BGR image (H, W of ``result.frame``).

    The frame is never modified: by default a NEW image is returned (grey frames are converted to BGR).
    Pass ``out`` (an HxWx3 uint8 C-contiguous array of the frame's size, owned by the caller) to render into
    a reused buffer instead; it is returned. ``history`` should already contain ``result`` (call
    ``history.append(result)`` first); without it no sparkline is drawn and a collapsed vein is marked only
    where ``result.track.vein`` still places it.
    """
    img = _to_bgr(result.frame, out)
    h, w = img.shape[:2]
    s = float(np.clip(min(h, w) / 480.0, 0.5, 3.0))
    track = result.track
    grid_hw = result.labels.shape[:2]

    vessels = []  # (blob, colour, tag); a collapsed vein is a line, not an outline (its walls touch)
    if track.artery is not None:
        vessels.append((track.artery, ARTERY_BGR, "A"))
    if track.vein is not None and track.vein_status == VeinStatus.TRACKED:
        vessels.append((track.vein, VEIN_BGR, "V"))
    polys = [(_blob_polygons(b, result.labels, grid_hw, result.region), c, tag) for b, c, tag in vessels]
    polys = [p for p in polys if p[0]]
    _fill_blend(img, polys)
    for pts, colour, _ in polys:
        cv2.polylines(img, pts, True, colour, max(1, round(2 * s)), AA, SHIFT)

    centres = {tag: _centre(pts) for pts, _, tag in polys}
    if track.vein_status == VeinStatus.COLLAPSED:
        at = _collapse_site(result, history)
        if at is not None:
            centres["V"] = at[0]
            _mark_collapsed(img, at, left=centres.get("A", (-1.0, 0.0))[0] > at[0][0], s=s)
    # Labels go on the side facing away from the other vessel, so "A" and "V" never collide.
    for pts, _, tag in polys:
        other = centres.get("V" if tag == "A" else "A")
        _label_beside(img, tag, pts, other is not None and other[0] > centres[tag][0], s)

    top = _banner(img, result, s)
    _status_panel(img, result, top, s)
    bottom = _footer(img, result, s)
    if history is not None and len(history) > 0:
        _sparkline(img, history, result, bottom, s)
    return img


# -- pieces -------------------------------------------------------------------------------------------


def _to_bgr(frame: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    grey = frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1)
    if not grey and not (frame.ndim == 3 and frame.shape[2] == 3):
        raise ValueError(f"render_overlay: expected an HxW or HxWx3 frame, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"render_overlay: expected a uint8 frame, got {frame.dtype}")
    h, w = frame.shape[:2]
    if out is None:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if grey else frame.copy()
    if out.shape != (h, w, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"render_overlay: out must be a contiguous ({h}, {w}, 3) uint8 array, "
                         f"got {out.shape} {out.dtype}")
    if grey:
        cv2.cvtColor(frame.reshape(h, w), cv2.COLOR_GRAY2BGR, dst=out)
    else:
        np.copyto(out, frame)
    return out


def _blob_polygons(blob: Blob, labels: np.ndarray, grid_hw, region) -> list[np.ndarray]:
    """Outer contours of the blob as fixed-point (SHIFT) int32 screen polygons."""
    bx, by, bw, bh = (int(v) for v in blob.bbox)
    bx, by = max(bx, 0), max(by, 0)
    if bw <= 0 or bh <= 0:
        return []
    if blob.mask is not None:
        crop = blob.mask[by:by + bh, bx:bx + bw]
    else:  # no mask kept: the blob's class inside its bbox is the best available stand-in
        crop = labels[by:by + bh, bx:bx + bw] == blob.label
    crop = np.ascontiguousarray(crop, dtype=np.uint8) if crop.dtype != np.uint8 else np.ascontiguousarray(crop)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(bx, by))
    polys = []
    for c in contours:
        xy = model_to_screen(c.reshape(-1, 2), grid_hw, region)
        polys.append(np.round(xy * (1 << SHIFT)).astype(np.int32))
    return polys


def _fill_blend(img: np.ndarray, polys) -> None:
    """Semi-transparent fills, blended only inside the union bbox of the polygons."""
    if not polys:
        return
    allpts = np.concatenate([p for pts, _, _ in polys for p in pts]) >> SHIFT
    h, w = img.shape[:2]
    x0, y0 = np.maximum(allpts.min(axis=0) - 1, 0)
    x1, y1 = np.minimum(allpts.max(axis=0) + 2, (w, h))
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    layer = roi.copy()
    offset = np.array([x0, y0], dtype=np.int32) << SHIFT
    for pts, colour, _ in polys:
        cv2.fillPoly(layer, [p - offset for p in pts], colour, AA, SHIFT)
    roi[...] = cv2.addWeighted(layer, FILL_ALPHA, roi, 1.0 - FILL_ALPHA, 0.0)


def _centre(pts: list[np.ndarray]) -> tuple[float, float]:
    allpts = np.concatenate(pts).reshape(-1, 2) / (1 << SHIFT)
    return float(allpts[:, 0].mean()), float(allpts[:, 1].mean())


_OUTLINE = ((-1, -1), (1, -1), (-1, 1), (1, 1), (0, -2), (0, 2), (-2, 0), (2, 0))
_SHADOW = ((1, 1),)


def _text(img, text, org, scale, thickness=1, colour=WHITE, edge=_SHADOW) -> None:
    """White (or ``colour``) text over dark copies shifted by ``edge`` offsets: ``_OUTLINE`` for labels
    floating over speckle, a one-pixel ``_SHADOW`` on the darkened panels and the banner.

    The dark copies are the same text shifted, not a thicker stroke: OpenCV 5's text engine widens the
    glyph advance with thickness, so a thick underlay drifts away from the text along the line.
    """
    x, y = int(org[0]), int(org[1])
    k = max(1, thickness // 2)  # thicker strokes (large frames) get a proportionally wider edge
    for dx, dy in edge:
        cv2.putText(img, text, (x + k * dx, y + k * dy), FONT, scale, BLACK, thickness, AA)
    cv2.putText(img, text, (x, y), FONT, scale, colour, thickness, AA)


@lru_cache(maxsize=256)
def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    return tw + 2, th


@lru_cache(maxsize=64)
def _fit(text: str, scale: float, thickness: int, max_w: int) -> str:
    """``text`` shortened with '...' until it fits ``max_w`` pixels (reasons can be long)."""
    if _text_size(text, scale, thickness)[0] <= max_w:
        return text
    while text and _text_size(text + "...", scale, thickness)[0] > max_w:
        text = text[:-1]
    return text.rstrip() + "..."


def _label_beside(img, text, pts, left: bool, s: float) -> None:
    allpts = np.concatenate(pts).reshape(-1, 2) >> SHIFT
    x0, y0 = allpts.min(axis=0)
    x1, y1 = allpts.max(axis=0)
    scale, th = 0.8 * s, max(1, round(2 * s))
    tw, tht = _text_size(text, scale, th)
    gap = int(8 * s)
    h, w = img.shape[:2]
    x = x0 - gap - tw if left else x1 + gap
    if x < 2 or x + tw > w - 2:  # no room on the chosen side: try the other one
        x = x1 + gap if left else x0 - gap - tw
    x = int(np.clip(x, 2, max(2, w - tw - 2)))
    y = int(np.clip((y0 + y1) // 2 + tht // 2, tht + 2, h - 2))
    _text(img, text, (x, y), scale, th, edge=_OUTLINE)


def _collapse_site(result: FrameResult, history) -> tuple[tuple[float, float], float] | None:
    """(screen centre, half width) of a collapsed vein: where the tracker still places it, else where it
    was last seen open; None when neither is known."""
    xy, width = None, 0.0
    if history is not None and history.last_vein_xy is not None:
        xy, width = history.last_vein_xy, history.last_vein_width or 0.0
    if result.track.vein is not None:
        grid_hw = result.labels.shape[:2]
        x, y = model_to_screen(np.asarray(result.track.vein.centroid), grid_hw, result.region)
        xy = (float(x), float(y))
    return None if xy is None else (xy, 0.5 * width)


def _mark_collapsed(img, site, left: bool, s: float) -> None:
    """A short horizontal line where the vein collapsed (its walls touch there), labelled "V collapsed"."""
    (cx, cy), half = site
    half = max(10.0 * s, half)
    a, b = (int(cx - half), int(cy)), (int(cx + half), int(cy))
    cv2.line(img, a, b, BLACK, max(3, round(5 * s)), AA)
    cv2.line(img, a, b, VEIN_BGR, max(2, round(3 * s)), AA)
    pts = [np.array([[a[0], a[1] - 2], [b[0], b[1] + 2]], np.int32) << SHIFT]
    _label_beside(img, "V collapsed", pts, left, s)


def _darken(roi: np.ndarray) -> None:
    roi >>= 1  # ~40 % brightness: keeps the anatomy faintly visible behind the text
    roi -= roi >> 2


def _banner(img, result: FrameResult, s: float) -> int:
    """Verdict banner across the top; returns its bottom y."""
    v = result.verdict
    h, w = img.shape[:2]
    bh = int(round(46 * s))
    colour = VERDICT_BGR.get(v.verdict, VERDICT_BGR[VerdictKind.INDETERMINATE])
    roi = img[:bh]  # whole rows: contiguous, so OpenCV can work in place
    roi >>= 2  # 25 % frame + 75 % verdict colour (max 63 + 191: no overflow)
    cv2.add(roi, (*(c * 3 // 4 for c in colour), 0), dst=roi)
    pad = int(8 * s)
    big, small = 0.7 * s, 0.45 * s
    thb = max(1, round(2 * s))
    word = VERDICT_TEXT.get(v.verdict, str(v.verdict).upper())
    _text(img, word, (pad, int(22 * s)), big, thb)
    tag = "final" if v.final else "provisional"
    _text(img, tag, (pad + _text_size(word, big, thb)[0] + pad, int(22 * s)), small, 1)
    reason = _fit(v.reason or "", round(small, 3), 1, w - 2 * pad)
    _text(img, reason, (pad, int(40 * s)), small, 1)
    return bh


def _fmt_pct(x: float | None) -> str:
    return "--" if x is None else f"{100.0 * x:.0f}%"


def _status_panel(img, result: FrameResult, top: int, s: float) -> None:
    track, v = result.track, result.verdict
    area = "--" if track.vein_area_px is None else f"{track.vein_area_px:.0f} px"
    pressure = {True: "adequate", False: "too light", None: "--"}[v.pressure_adequate]
    lines = [f"vein: {STATUS_TEXT.get(track.vein_status, track.vein_status)}", f"vein area: {area}",
             f"compressibility: {_fmt_pct(v.compressibility)}", f"pressure: {pressure}"]
    scale = 0.45 * s
    lh = int(round(19 * s))
    pad = int(6 * s)
    pw = max(_text_size(t, scale, 1)[0] for t in lines) + 2 * pad
    ph = lh * len(lines) + pad
    h, w = img.shape[:2]
    _darken(img[top:min(h, top + ph), 0:min(w, pw)])
    for i, line in enumerate(lines):
        _text(img, line, (pad, top + lh * (i + 1) - int(3 * s)), scale, 1)


def _footer(img, result: FrameResult, s: float) -> int:
    """Frame index, processing time and the disclaimer along the bottom; returns the footer's top y.

    Processing = the sum of the pipeline's stage times for this frame. The frame's age (capture -> result,
    ``latency_ms`` in the JSON report) is not drawn: for a clip read faster than it plays it counts the wait
    in the queue, which reads as a slow system; the benchmarks measure age on paced sources."""
    h, w = img.shape[:2]
    fh = int(round(22 * s))
    _darken(img[h - fh:])
    scale = 0.45 * s
    pad = int(6 * s)
    y = h - int(7 * s)
    _text(img, f"frame {result.index}  processing {sum(result.stage_ms.values()):.1f} ms", (pad, y), scale, 1)
    tw = _text_size(NOTICE_SHORT, scale, 1)[0]
    _text(img, NOTICE_SHORT, (w - tw - pad, y), scale, 1)
    return h - fh


def _sparkline(img, history: CurveHistory, result: FrameResult, bottom: int, s: float,
               min_span_s: float = 5.0) -> None:
    """Vein area over the recent past, bottom-right; lost frames are gaps, baseline a grey line."""
    h, w = img.shape[:2]
    pw, ph = int(max(120, 0.3 * w)), int(max(50, 0.17 * h))
    x0, y1 = w - pw - int(6 * s), bottom - int(6 * s)
    y0 = y1 - ph
    if x0 < 0 or y0 < 0:
        return
    _darken(img[y0:y1, x0:x0 + pw])
    scale = 0.4 * s
    _text(img, "vein area", (x0 + int(4 * s), y0 + int(14 * s)), scale, 1)
    t, a = history.points()
    baseline = result.verdict.baseline_vein_area_px
    finite = a[np.isfinite(a)]
    top = max(float(finite.max()) if finite.size else 0.0, baseline or 0.0) * 1.15
    if top <= 0:
        return
    ix0, ix1 = x0 + int(4 * s), x0 + pw - int(6 * s)
    iy0, iy1 = y0 + int(20 * s), y1 - int(4 * s)
    t_right = float(t[-1])
    t_left = min(float(t[0]), t_right - min_span_s)
    xs = ix0 + (t - t_left) / (t_right - t_left) * (ix1 - ix0)
    ys = iy1 - a / top * (iy1 - iy0)
    if baseline:
        yb = int(iy1 - baseline / top * (iy1 - iy0))
        cv2.line(img, (ix0, yb), (ix1, yb), GREY, 1)
    ok = np.isfinite(ys)
    pts = np.round(np.stack([xs, np.where(ok, ys, 0)], axis=1) * (1 << SHIFT)).astype(np.int32)
    # split at NaN: each run of finite points is one polyline, so lost frames show as gaps
    edges = np.flatnonzero(np.diff(np.r_[0, ok.view(np.int8), 0]))
    runs = [pts[b:e] for b, e in zip(edges[::2], edges[1::2])]
    lines = [r for r in runs if len(r) > 1]
    if lines:
        cv2.polylines(img, lines, False, VEIN_BGR, max(1, round(1.5 * s)), AA, SHIFT)
    if ok[-1]:  # the current value
        cv2.circle(img, (int(pts[-1, 0]), int(pts[-1, 1])), max(2, round(3 * s)) << SHIFT, WHITE, -1, AA, SHIFT)
