"""Scanner-screen layout of the phantom: black screen, the ultrasound image rectangle and the text,
depth scale, focus marker and grey bar drawn around it (never inside it). Pixel units, (x, y) from
the top-left of the screen. No patient-like names or dates are ever drawn."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

PROBES = ("L12-5", "L14-7", "L10-3", "L15-4", "ML6-15", "L11-3")
PRESETS = ("VASC", "VEN", "LE-VEN", "PV")
MIN_LEFT, MIN_RIGHT, MIN_TOP, MIN_BOTTOM = 22, 44, 34, 10
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class ScreenLayout:
    """Screen size (px), image rectangle (px) and text style."""

    screen_w: int
    screen_h: int
    img_x: int
    img_y: int
    img_w: int
    img_h: int
    probe: str
    preset: str
    text_grey: int
    font_scale: float
    bar_side: str  # "left" | "bottom"

    @property
    def image_region(self) -> list[int]:
        """[x, y, w, h] of the ultrasound image inside the screen."""
        return [self.img_x, self.img_y, self.img_w, self.img_h]

    def to_dict(self) -> dict:
        return {k: (v if isinstance(v, str) else (int(v) if isinstance(v, int) else float(v)))
                for k, v in asdict(self).items()}


def sample_layout(rng: np.random.Generator, screen_size: tuple[int, int] | None = None) -> ScreenLayout:
    """Random layout; ``screen_size`` (W, H) overrides the drawn size (all draws happen regardless)."""
    W = int(rng.integers(280, 401)) * 2
    H = int(rng.integers(210, 301)) * 2
    if screen_size is not None:
        W, H = int(screen_size[0]), int(screen_size[1])
    fw, fh, px, py = rng.uniform(0.65, 0.85), rng.uniform(0.72, 0.88), rng.random(), rng.random()
    w = int(min(round(fw * W), W - MIN_LEFT - MIN_RIGHT))
    h = int(min(round(fh * H), H - MIN_TOP - MIN_BOTTOM))
    x = MIN_LEFT + int(px * (W - w - MIN_LEFT - MIN_RIGHT))
    y = MIN_TOP + int(py * (H - h - MIN_TOP - MIN_BOTTOM))
    return ScreenLayout(W, H, x, y, w, h, str(rng.choice(PROBES)), str(rng.choice(PRESETS)),
                        int(rng.integers(170, 256)), float(rng.uniform(0.36, 0.46)),
                        "left" if rng.random() < 0.6 else "bottom")


def _text(img: np.ndarray, s: str, x: int, y: int, L: ScreenLayout, grey: int | None = None) -> int:
    """Draw s with its baseline at (x, y); returns its width in px."""
    cv2.putText(img, s, (x, y), FONT, L.font_scale, int(grey or L.text_grey), 1, cv2.LINE_AA)
    return cv2.getTextSize(s, FONT, L.font_scale, 1)[0][0]


def _depth_scale(img: np.ndarray, L: ScreenLayout, depth_cm: float, focus_frac: float) -> None:
    """Tick marks every 0.5 cm with numbers every cm, and a focus marker, right of the image."""
    x = L.img_x + L.img_w + 3
    for i in range(int(depth_cm * 2) + 1):
        y = L.img_y + int(round(i * 0.5 / depth_cm * (L.img_h - 1)))
        major = i % 2 == 0
        cv2.line(img, (x, y), (x + (7 if major else 4), y), L.text_grey, 1)
        if major and i > 0:
            _text(img, str(i // 2), x + 10, min(y + 4, L.screen_h - 2), L)
    fy = L.img_y + int(focus_frac * L.img_h)
    tri = np.array([[x + 26, fy], [x + 33, fy - 4], [x + 33, fy + 4]], np.int32)
    cv2.fillPoly(img, [tri], int(L.text_grey))


def _grey_bar(img: np.ndarray, L: ScreenLayout) -> None:
    """Small vertical (left margin) or horizontal (bottom margin) grey-level bar."""
    if L.bar_side == "left" and L.img_x >= 16:
        n = max(L.img_h // 3, 20)
        ramp = np.linspace(255, 0, n).astype(np.uint8)[:, None]
        img[L.img_y + 4:L.img_y + 4 + n, L.img_x - 12:L.img_x - 5] = ramp
    elif L.screen_h - (L.img_y + L.img_h) >= 10:
        n = max(L.img_w // 4, 20)
        y = L.img_y + L.img_h + 3
        img[y:y + 5, L.img_x:L.img_x + n] = np.linspace(0, 255, n).astype(np.uint8)[None, :]


def draw_overlay(L: ScreenLayout, *, fps: float, gain: int, depth_cm: float, dynamic_range_db: float,
                 focus_frac: float) -> np.ndarray:
    """(H, W) uint8 screen with everything except the ultrasound image (the image rectangle stays 0)."""
    img = np.zeros((L.screen_h, L.screen_w), np.uint8)
    base = L.img_y - 10
    x = 6
    for s in ("DVT-PHANTOM", L.probe, L.preset):
        x += _text(img, s, x, base, L) + 12
    right = [f"FR {fps:.0f}Hz", f"G {gain}", f"DR {dynamic_range_db:.0f}", f"{depth_cm:.1f}cm"]
    widths = [cv2.getTextSize(s, FONT, L.font_scale, 1)[0][0] + 10 for s in right]
    xr = L.screen_w - 6 - sum(widths)
    if xr < x:  # not enough room on the text line: put the scanner settings on a line above
        base, xr = max(base - 14, 10), max(L.screen_w - 6 - sum(widths), 6)
    for s, wd in zip(right, widths):
        _text(img, s, xr, base, L)
        xr += wd
    _depth_scale(img, L, depth_cm, focus_frac)
    _grey_bar(img, L)
    cv2.circle(img, (L.img_x + 6, L.img_y - 4), 2, int(L.text_grey), -1)  # probe orientation marker
    img[L.img_y:L.img_y + L.img_h, L.img_x:L.img_x + L.img_w] = 0
    return img


def compose(overlay: np.ndarray, L: ScreenLayout, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste the (h, w) image and mask into screen-size copies; returns (frame (H, W), mask (H, W)) uint8."""
    frame = overlay.copy()
    frame[L.img_y:L.img_y + L.img_h, L.img_x:L.img_x + L.img_w] = image
    full = np.zeros_like(overlay)
    full[L.img_y:L.img_y + L.img_h, L.img_x:L.img_x + L.img_w] = mask
    return frame, full
