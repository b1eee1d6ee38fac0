"""Shapes and painting for the randomised vessel scenes (:mod:`training.ct.vessel_scenes`): a tube's course and
cross-section along z, a defect record, a canvas that paints anti-aliased ellipses in mm, and smooth random fields.
Coordinates are mm with 0 at the image centre; a pixel c spans [c, c + 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Tube:
    """A vessel: centre (mm, image centre = 0) as a function of z, elliptical cross-section, lumen HU."""

    x0: float
    y0: float
    z0: float
    slope: tuple[float, float]
    wobble: tuple[float, float, float, float]  # amplitude x, amplitude y (mm), period (mm), phase
    r: float  # mean radius (mm)
    aspect: float
    angle: float
    hu: float
    wall: float  # HU added to a thin ring at the lumen edge (>= -40: a faint or a bright wall)
    wall_mm: float
    opacified: bool = True
    parent: int | None = None  # a branch: leaves the parent's centre at z0 along slope (only for z >= z0)
    sweep: float = 0.0  # radius change per mm (tapering along z)

    def centre(self, z: float, tubes: list["Tube"]) -> tuple[float, float]:
        ax, ay, period, phase = self.wobble
        w = 2 * math.pi * (z - self.z0) / period + phase
        if self.parent is not None:
            px, py = tubes[self.parent].centre(z, tubes)
            d = z - self.z0
            return px + self.slope[0] * d + ax * math.sin(w) * min(1.0, d / 20), py + self.slope[1] * d
        return (self.x0 + self.slope[0] * (z - self.z0) + ax * math.sin(w),
                self.y0 + self.slope[1] * (z - self.z0) + ay * math.cos(w))

    def radius(self, z: float) -> float:
        return float(np.clip(self.r * (1 + self.sweep * (z - self.z0)), 0.5 * self.r, 1.5 * self.r))

    def exists(self, z: float) -> bool:
        return self.parent is None or z >= self.z0

    def axes(self, z: float) -> tuple[float, float, float]:
        """Cross-section (rx, ry, angle): obliquity stretches it along the direction of travel."""
        r = self.radius(z)
        tilt = math.hypot(*self.slope)
        stretch = math.sqrt(1 + tilt * tilt)
        if tilt > 0.05:
            return r * stretch, r * self.aspect, math.atan2(self.slope[1], self.slope[0]) + 0.3 * (self.angle - math.pi)
        return r, r * self.aspect, self.angle


@dataclass
class Defect:
    tube: int
    kind: str  # "partial" | "occlusive" | "mixing_streak"
    z_lo: float
    z_hi: float
    hu: float
    params: dict = field(default_factory=dict)


class Canvas:
    """One slice being painted: HU (size x size), pixel spacing ps (mm), mm coordinates with 0 at the centre."""

    def __init__(self, img: np.ndarray, ps: float):
        self.img, self.ps, self.size = img, ps, img.shape[0]

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        """mm (0 at the centre) -> pixel coordinates."""
        return x / self.ps + self.size / 2, y / self.ps + self.size / 2

    def alpha(self, cx: float, cy: float, rx: float, ry: float, ang: float):
        """Anti-aliased ellipse coverage in its window: (slices, alpha) or None when off the image."""
        ps, n = self.ps, self.size
        px, py = self.to_px(cx, cy)
        rr = max(rx, ry) / ps + 2
        x0, x1 = max(0, int(px - rr)), min(n, int(px + rr) + 2)
        y0, y1 = max(0, int(py - rr)), min(n, int(py + rr) + 2)
        if x0 >= x1 or y0 >= y1 or rx <= 0 or ry <= 0:
            return None
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = (xx + 0.5 - px) * ps, (yy + 0.5 - py) * ps
        c, s = math.cos(ang), math.sin(ang)
        u, v = (dx * c + dy * s) / rx, (-dx * s + dy * c) / ry
        d = np.sqrt(u * u + v * v)
        a = np.clip((1 - d) * min(rx, ry) / ps + 0.5, 0, 1)
        return (slice(y0, y1), slice(x0, x1)), a

    def paint(self, cx, cy, rx, ry, ang, hu):
        got = self.alpha(cx, cy, rx, ry, ang)
        if got is not None:
            win, a = got
            w = self.img[win]
            w += a * (np.float32(hu) - w)
        return got


def random_field(rng: np.random.Generator, size: int, cell_px: float) -> np.ndarray:
    """A smooth unit-variance random field (size x size)."""
    n = max(2, int(size / cell_px) + 2)
    f = cv2.resize(rng.standard_normal((n, n)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return (f - f.mean()) / max(float(f.std()), 1e-6)


def blend_inside(cv: Canvas, got, lum, hu: float, soft: bool = False):
    """Paint hu where the shape `got` lies inside the lumen `lum` (both (window, alpha) from Canvas.alpha)."""
    (gy, gx), ga = got
    (ly, lx), la = lum
    y0, y1 = max(gy.start, ly.start), min(gy.stop, ly.stop)
    x0, x1 = max(gx.start, lx.start), min(gx.stop, lx.stop)
    if y0 >= y1 or x0 >= x1:
        return None
    a = ga[y0 - gy.start:y1 - gy.start, x0 - gx.start:x1 - gx.start] * la[y0 - ly.start:y1 - ly.start, x0 - lx.start:x1 - lx.start]
    if soft:
        a = cv2.GaussianBlur(a, (0, 0), 1.0) * 0.8
    w = cv.img[y0:y1, x0:x1]
    w += a * (np.float32(hu) - w)
    return (slice(y0, y1), slice(x0, x1)), a
