"""The vein-area-over-time plot of one run, drawn with OpenCV only (the bedside runtime has no matplotlib).

:func:`render_curve` returns the 900x420 BGR image; :func:`write_curve_png` writes it. Inputs are the
report's per-frame arrays (``t_s`` and ``vein_area_px``), so the PNG can be redrawn from a saved report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from edge.errors import OutputError
from edge.notice import NOTICE
from edge.sinks.overlay import VERDICT_TEXT
from edge.us.types import VerdictKind

SIZE = (900, 420)  # width, height
FONT = cv2.FONT_HERSHEY_SIMPLEX
AA = cv2.LINE_AA
INK, MUTED, GRID, SHADE = (30, 30, 30), (110, 110, 110), (225, 225, 225), (238, 238, 238)
CURVE = (190, 100, 20)  # blue
BASELINE = (60, 120, 40)  # green-grey
MINIMUM = (40, 40, 200)  # red
VERDICT_INK = {VerdictKind.COMPRESSIBLE: (30, 120, 20), VerdictKind.NON_COMPRESSIBLE: (30, 30, 190),
               VerdictKind.INDETERMINATE: (0, 100, 190)}
LEFT, RIGHT, TOP, BOTTOM = 86, 40, 58, 84  # plot margins in px


def nice_ticks(lo: float, hi: float, target: int = 6) -> np.ndarray:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi] with about ``target`` ticks."""
    span = max(hi - lo, 1e-9)
    raw = span / max(target - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return np.arange(first, hi + step * 1e-6, step)


def _fmt(v: float, step: float) -> str:
    decimals = max(0, -int(math.floor(math.log10(step)))) if step < 1 else 0
    if step < 1 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-9:
        decimals += 1  # 0.25 needs two decimals
    return f"{v:.{decimals}f}"


def _put(img, text, org, scale=0.5, colour=INK, thickness=1, anchor="left", backdrop=False) -> None:
    """Text anchored at its baseline's left/center/right; ``backdrop`` clears a white box behind it
    (labels that may sit on the curve)."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    if anchor == "center":
        x -= tw // 2
    elif anchor == "right":
        x -= tw
    if backdrop:
        cv2.rectangle(img, (int(x) - 3, int(y) - th - 3), (int(x) + tw + 3, int(y) + base), (255, 255, 255), -1)
    cv2.putText(img, text, (int(x), int(y)), FONT, scale, colour, thickness, AA)


def _put_vertical(img, text, centre, scale=0.55, colour=INK) -> None:
    """Text rotated 90 degrees counter-clockwise (a y-axis label), centred on ``centre``."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    tile = np.full((th + base + 4, tw + 4, 3), 255, np.uint8)
    cv2.putText(tile, text, (2, th + 2), FONT, scale, colour, 1, AA)
    tile = cv2.rotate(tile, cv2.ROTATE_90_COUNTERCLOCKWISE)
    h, w = tile.shape[:2]
    x0, y0 = int(centre[0] - w // 2), int(centre[1] - h // 2)
    roi = img[y0:y0 + h, x0:x0 + w]
    np.minimum(roi, tile[: roi.shape[0], : roi.shape[1]], out=roi)


def _dashed_hline(img, x0, x1, y, colour, dash=10, gap=6, thickness=1) -> None:
    for x in range(int(x0), int(x1), dash + gap):
        cv2.line(img, (x, y), (min(x + dash, int(x1)), y), colour, thickness, AA)


def render_curve(t: Sequence[float | None], vein_area_px: Sequence[float | None], baseline: float | None,
                 min_area: float | None, verdict: str, compressibility: float | None) -> np.ndarray:
    """The vein-area curve as a new 420x900x3 uint8 BGR image.

    t: seconds per frame (the report's ``t_s``); vein_area_px: screen px per frame, None/NaN where the
    vein was not found (drawn as a gap over a shaded band); baseline: pre-compression area (dashed line);
    min_area: minimum under pressure (marked); verdict: a ``edge.us.types.VerdictKind`` (or its value);
    compressibility: 0-1 or None.
    """
    w, h = SIZE
    img = np.full((h, w, 3), 255, np.uint8)
    tt = np.array([math.nan if v is None else float(v) for v in t], dtype=np.float64)
    aa = np.array([math.nan if v is None else float(v) for v in vein_area_px], dtype=np.float64)
    if tt.shape != aa.shape:
        raise ValueError(f"render_curve: t has {tt.size} values, vein_area_px {aa.size}")
    ok_t = np.isfinite(tt)
    ok = ok_t & np.isfinite(aa)

    # ranges
    t_lo, t_hi = (float(tt[ok_t].min()), float(tt[ok_t].max())) if ok_t.any() else (0.0, 1.0)
    if t_hi - t_lo < 1e-6:
        t_hi = t_lo + 1.0
    a_hi = max(float(aa[ok].max()) if ok.any() else 0.0, baseline or 0.0) or 1.0
    ystep = _step(nice_ticks(0.0, a_hi * 1.05))
    y_top = ystep * math.ceil(a_hi * 1.05 / ystep)  # the top gridline sits just above the data
    yt = np.arange(0.0, y_top + ystep * 1e-6, ystep)
    xt = nice_ticks(t_lo, t_hi, target=9)
    px0, px1, py0, py1 = LEFT, w - RIGHT, TOP, h - BOTTOM

    def X(v):
        return px0 + (np.asarray(v) - t_lo) / (t_hi - t_lo) * (px1 - px0)

    def Y(v):
        return py1 - np.asarray(v) / y_top * (py1 - py0)

    # frames with no vein: shaded bands (a gap alone is easy to miss)
    lost = ok_t & ~np.isfinite(aa)
    if lost.any():
        step = float(np.median(np.diff(tt[ok_t]))) if ok_t.sum() > 1 else 0.0
        for b, e in _runs(lost):
            xa, xb = X(tt[b] - step / 2), X(tt[e - 1] + step / 2)
            cv2.rectangle(img, (int(max(xa, px0)), py0), (int(min(xb, px1)), py1), SHADE, -1)

    # grid, axes, ticks
    for v in yt:
        y = int(round(float(Y(v))))
        cv2.line(img, (px0, y), (px1, y), GRID, 1)
        cv2.line(img, (px0 - 5, y), (px0, y), INK, 1)
        _put(img, _fmt(v, ystep), (px0 - 9, y + 5), 0.45, INK, anchor="right")
    for v in xt:
        x = int(round(float(X(v))))
        cv2.line(img, (x, py0), (x, py1), GRID, 1)
        cv2.line(img, (x, py1), (x, py1 + 5), INK, 1)
        _put(img, _fmt(v, _step(xt)), (x, py1 + 22), 0.45, INK, anchor="center")
    cv2.rectangle(img, (px0, py0), (px1, py1), INK, 1)
    _put(img, "time (s)", ((px0 + px1) // 2, py1 + 46), 0.55, INK, anchor="center")
    _put_vertical(img, "vein area (px)", (22, (py0 + py1) // 2))

    # the curve: one polyline per run of measured frames, lone points as dots
    for b, e in _runs(ok):
        pts = np.stack([X(tt[b:e]), Y(aa[b:e])], axis=1)
        pts = np.round(pts * 16).astype(np.int32)
        if e - b > 1:
            cv2.polylines(img, [pts], False, CURVE, 2, AA, 4)
        else:
            cv2.circle(img, tuple(int(v) for v in pts[0]), 2 * 16, CURVE, -1, AA, 4)

    if baseline:
        yb = int(round(float(Y(baseline))))
        _dashed_hline(img, px0, px1, yb, BASELINE, thickness=2)
        _put(img, f"baseline {baseline:.0f} px", (px1 - 6, yb - 7), 0.45, BASELINE, anchor="right", backdrop=True)
    if min_area is not None and ok.any():
        i = int(np.flatnonzero(ok)[np.argmin(np.abs(aa[ok] - min_area))])
        c = (int(round(float(X(tt[i])))), int(round(float(Y(min_area)))))
        cv2.circle(img, c, 6, MINIMUM, 2, AA)
        label = f"min {min_area:.0f} px"
        (tw, _), _ = cv2.getTextSize(label, FONT, 0.45, 1)
        right = c[0] + 12 + tw < px1
        _put(img, label, (c[0] + 12 if right else c[0] - 12, max(c[1] - 12, py0 + 14)), 0.45, MINIMUM,
             anchor="left" if right else "right", backdrop=True)
        cv2.circle(img, c, 6, MINIMUM, 2, AA)  # again, over the backdrop
    if not ok.any():
        _put(img, "vein not measured in any frame", ((px0 + px1) // 2, (py0 + py1) // 2), 0.6, MUTED,
             anchor="center")

    # title (verdict word in its colour, with the text carrying the meaning) and footer
    head = "Vein area over time  -  "
    word = VERDICT_TEXT.get(verdict, str(verdict).upper())
    tail = "" if compressibility is None else f"   compressibility {100 * compressibility:.0f}%"
    x = LEFT
    _put(img, head, (x, 34), 0.65, INK, 1)
    x += cv2.getTextSize(head, FONT, 0.65, 1)[0][0]
    _put(img, word, (x, 34), 0.65, VERDICT_INK.get(verdict, INK), 2)
    x += cv2.getTextSize(word, FONT, 0.65, 2)[0][0]
    _put(img, tail, (x, 34), 0.65, INK, 1)
    if lost.any():
        _put(img, "shaded: vein not found", (px1, 34), 0.45, MUTED, anchor="right")
    _put(img, NOTICE, (w // 2, h - 10), 0.45, MUTED, anchor="center")
    return img


def write_curve_png(path: str | Path, t, vein_area_px, baseline, min_area, verdict, compressibility) -> Path:
    """Render the curve (see :func:`render_curve`) and write it as PNG; OutputError names ``path``."""
    path = Path(path)
    img = render_curve(t, vein_area_px, baseline, min_area, verdict, compressibility)
    from edge.atomic import write_bytes_atomic

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OutputError(f"{path}: cannot write the curve plot: PNG encoding failed")
    return write_bytes_atomic(path, buf.tobytes(), "the curve plot")


def _step(ticks: np.ndarray) -> float:
    return float(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
