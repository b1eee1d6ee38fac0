"""The scanner screen around the image: black background, header and parameter text, a depth scale with a
focus marker, a grey bar, a logo, the linear-probe trapezoid shape, and now and then a few marks inside the
image (calipers, a short label). All static for a clip."""

from __future__ import annotations

import cv2
import numpy as np

from training.second_renderer.us_params import Scene

_BRANDS = ("SONARIS", "EchoLine", "VASCUVIEW", "Medisono", "ULTRA-7", "Acusonic", "NOVASCAN", "HELIX US")
_PROBES = ("L12-5", "L14-6", "L10-3", "L15-7io", "L11-4v", "LA523", "L8-18i")
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT2 = cv2.FONT_HERSHEY_PLAIN


def trapezoid_mask(scene: Scene) -> np.ndarray | None:
    """(h, w) float32 1 inside the field of view, 0 outside (anti-aliased edges), or None for a rectangle."""
    if scene.trapezoid is None:
        return None
    _, _, w, h = scene.region
    top, bot = scene.trapezoid
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    half = 0.5 * (top + (bot - top) * ys / h)
    c = 0.5 * w
    return np.clip(half - np.abs(xs - c) + 0.5, 0, 1).astype(np.float32)


def _text(img, s, org, scale, val, font=FONT, thick=1, keep_out=None):
    """Draw text; skipped when its box comes within 18 px of the ``keep_out`` rectangle (the image), so the
    runtime's image-region finder never merges it with the image."""
    if keep_out is not None:
        (tw, th), base = cv2.getTextSize(s, font, scale, thick)
        x0, y0, x1, y1 = org[0], org[1] - th, org[0] + tw, org[1] + base
        kx, ky, kw, kh = keep_out
        m = 18
        if x1 > kx - m and x0 < kx + kw + m and y1 > ky - m and y0 < ky + kh + m:
            return
    cv2.putText(img, s, (int(org[0]), int(org[1])), font, scale, int(val), thick, cv2.LINE_AA)


def build_overlay(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(screen overlay outside the image, marks inside the image), both (H, W) uint8 screen-sized: the first is
    pasted under the image (zero on the image), the second is maxed over each frame."""
    rng = np.random.default_rng([scene.seed, 3])
    W, H = scene.screen
    x, y, w, h = scene.region
    ov = np.zeros((H, W), np.uint8)
    p = scene.preset
    depth_mm = scene.extra["depth_mm"]
    bright = int(rng.integers(170, 256))
    fs = 0.38 if W <= 640 else 0.46
    lh = int(16 if W <= 640 else 19)
    side = "R" if rng.random() < 0.5 else "L"
    site = {"femoral": rng.choice(["CFV", "FEM", "GROIN", "CFV/CFA"]),
            "popliteal": rng.choice(["POP", "POPV", "POPLITEAL", "KNEE"])}[scene.site]

    # header along the top
    hdr = [str(rng.choice(_BRANDS)), str(rng.choice(_PROBES)), str(rng.choice(["Venous", "Vasc LE", "DVT", "Vein", "PV"]))]
    if rng.random() < 0.7:
        hdr.append(f"{int(rng.integers(2019, 2026))}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1, 29)):02d} "
                   f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}")
    cx = 6
    for s in hdr:
        _text(ov, s, (cx, lh), fs, bright, keep_out=scene.region)
        cx += int(cv2.getTextSize(s, FONT, fs, 1)[0][0]) + 14
    if rng.random() < 0.6:
        _text(ov, f"{side} {site}", (6, 2 * lh + 2), fs * 1.1, bright, keep_out=scene.region)

    # parameter column in the side panel
    panel_left = x > W - (x + w)
    px0 = 6 if panel_left else x + w + 44
    rows = [f"F {p['frequency_mhz']:.1f}MHz", f"G {int(40 + 40 * p['tissue_grey'])}", f"DR {int(p['dynamic_range_db'])}",
            f"D {depth_mm / 10:.1f}cm", f"FR {int(scene.fps)}", f"MI {rng.uniform(0.4, 1.3):.1f}",
            f"TIS {rng.uniform(0.1, 0.6):.1f}", f"P {int(rng.integers(60, 101))}%"]
    rng.shuffle(rows)
    ty = y + 2 * lh
    for s in rows[: int(rng.integers(4, 9))]:
        if ty > H - 10:
            break
        plain = rng.random() < 0.3
        _text(ov, s, (px0, ty), fs * 2.4 if plain else fs, bright, FONT2 if plain else FONT, keep_out=scene.region)
        ty += lh + 2

    # depth scale: ticks every 5 mm beside the image, numbers every cm, focus arrow
    sc_left = bool(rng.random() < 0.35) and not panel_left
    gap = int(rng.integers(12, 18))
    tx = x - gap if sc_left else x + w + gap
    d = -1 if sc_left else 1
    for k in range(0, int(depth_mm) + 1, 5):
        ty = int(round(y + k / depth_mm * h))
        if ty >= y + h:
            break
        major = k % 10 == 0
        cv2.line(ov, (tx, ty), (tx + d * (7 if major else 3), ty), bright, 1)
        if major and rng.random() < 0.92:
            s = str(k // 10)
            tw = cv2.getTextSize(s, FONT, 0.33, 1)[0][0]
            _text(ov, s, (tx + (12 if d > 0 else -12 - tw), ty + 4), 0.33, bright)
    fy = int(y + p["focus_frac"] * h)
    tri = np.array([[tx + d * 20, fy], [tx + d * 27, fy - 4], [tx + d * 27, fy + 4]], np.int32)
    cv2.fillPoly(ov, [tri], bright)

    # grey bar
    if rng.random() < 0.7:
        bh = int(rng.integers(60, 140))
        bx = (x + w + 26) if not panel_left and rng.random() < 0.5 and x + w + 40 < W else int(rng.integers(4, 16))
        by = min(H - bh - 30, y + h // 2)
        free = not ov[max(0, by - 4):by + bh + 4, max(0, bx - 4):bx + 12].any()
        if free and (bx + 8 < x - 22 or bx > x + w + 22):
            bar = np.linspace(255, 0, bh).astype(np.uint8)[:, None]
            ov[by:by + bh, bx:bx + 8] = bar
    # logo / footer
    s = str(rng.choice(_BRANDS))
    tw = cv2.getTextSize(s, FONT, fs * 1.3, 2)[0][0]
    lx = int(rng.integers(6, max(7, W - tw - 10)))
    if rng.random() < 0.6 and H - (y + h) > 26:
        _text(ov, s, (lx, H - 8), fs * 1.3, int(rng.integers(90, 200)), FONT, 2, keep_out=scene.region)
    if rng.random() < 0.4 and y > 2 * lh + 30:
        bx = W - 90
        cv2.rectangle(ov, (bx, 4), (bx + 80, 4 + lh + 6), 120, 1)
        _text(ov, "LIVE" if rng.random() < 0.5 else "CINE", (bx + 18, lh + 4), fs, 200)

    # nothing of the overlay may touch the image (or the trapezoid's bounding box) itself
    ov[max(0, y - 6):y + h + 6, max(0, x - 6):x + w + 6] = 0

    # marks inside the image: caliper crosses with a dotted line, a short label
    marks = np.zeros((H, W), np.uint8)
    if rng.random() < 0.3:
        n_pts = int(rng.integers(1, 3))
        for _ in range(n_pts):
            ax_ = int(x + rng.uniform(0.2, 0.8) * w)
            ay0 = int(y + rng.uniform(0.15, 0.45) * h)
            ay1 = ay0 + int(rng.uniform(0.08, 0.25) * h)
            for yy in (ay0, ay1):
                cv2.line(marks, (ax_ - 4, yy), (ax_ + 4, yy), 230, 1)
                cv2.line(marks, (ax_, yy - 4), (ax_, yy + 4), 230, 1)
            for yy in range(ay0 + 8, ay1 - 6, 6):
                marks[yy, ax_] = 200
    if rng.random() < 0.2:
        _text(marks, f"{side} {site}", (x + int(0.04 * w), y + int(0.95 * h)), 0.4, 220)
    return ov, marks
