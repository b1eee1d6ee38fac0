"""Geometry shared by the CT phantom and its look-alike structures: the HU canvas and the vessel course.

Split out of phantom.py so that distractors.py can draw on the same canvas without a circular import.
"""

from __future__ import annotations

import math

import numpy as np

AIR, FAT = -1000.0, -100.0

# ----------------------------------------------------------------------------------------------- drawing
class _Canvas:
    """A (H, W) HU image with mm coordinates; shapes are drawn on their bounding box only (speed)."""

    def __init__(self, shape: tuple[int, int], ps: float, fill: float):
        self.img = np.full(shape, fill, np.float32)
        self.h, self.w = shape
        self.ps = ps

    def _grid(self, cx, cy, rx, ry):
        r = max(rx, ry) / self.ps + 2
        px, py = cx / self.ps + self.w / 2, cy / self.ps + self.h / 2
        c0, c1 = max(int(px - r), 0), min(int(px + r) + 2, self.w)
        r0, r1 = max(int(py - r), 0), min(int(py + r) + 2, self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = (np.arange(c0, c1, dtype=np.float32) + 0.5 - self.w / 2) * self.ps - cx
        ys = (np.arange(r0, r1, dtype=np.float32) + 0.5 - self.h / 2) * self.ps - cy
        return (slice(r0, r1), slice(c0, c1)), xs[None, :], ys[:, None]

    def ellipse_mask(self, cx, cy, rx, ry, angle=0.0, soft_mm=0.0):
        """(window, weight) with weight in [0, 1]: 1 inside the ellipse, a linear ramp of ``soft_mm`` at its edge."""
        g = self._grid(cx, cy, rx + soft_mm, ry + soft_mm)
        if g is None:
            return None, None
        win, xs, ys = g
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = xs * ca + ys * sa, -xs * sa + ys * ca
        d = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)  # 1 on the boundary
        if soft_mm <= 0:
            return win, (d <= 1.0).astype(np.float32)
        return win, np.clip((1.0 + soft_mm / min(rx, ry) - d) / (soft_mm / min(rx, ry)), 0.0, 1.0)

    def paint(self, cx, cy, rx, ry, value, angle=0.0, soft_mm=0.0, within=None, below=None):
        win, m = self.ellipse_mask(cx, cy, rx, ry, angle, soft_mm)
        if win is None:
            return None
        if within is not None:
            m = m * (self.img[win] > within)
        if below is not None:
            m = m * (self.img[win] < below)
        self.img[win] += m * (np.float32(value) - self.img[win])
        return win, m


def _interp(level, table):
    """Piecewise-linear lookup of a control-point table [(level_mm, value), ...]."""
    xs, ys = zip(*table)
    return float(np.interp(level, xs, ys))


# ------------------------------------------------------------------------------------------- the study
def _sample_anatomy(rng: np.random.Generator, fov_mm: float) -> dict:
    width = rng.uniform(0.72, 0.9) * fov_mm  # body width in the pelvis (mm)
    a = {
        "width": width, "d": width * rng.uniform(0.23, 0.27), "fat": rng.uniform(6, 16),
        "muscle": rng.uniform(40, 60), "cortex": rng.uniform(1000, 1400), "marrow": rng.uniform(170, 230),
        "artery": rng.uniform(200, 350), "vein": rng.uniform(150, 250), "noise": rng.uniform(10, 20),
        "septa": [(rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.8), rng.uniform(0, 2 * math.pi)) for _ in range(4)],
    }
    a["vein_hu"] = {s: a["vein"] * rng.uniform(0.93, 1.07) for s in (-1, 1)}
    # smooth per-side wiggles of the vessel course: (amplitude mm, wavelength mm, phase) x 2, and calibre
    a["wiggle"] = {s: [(rng.uniform(2, 5), rng.uniform(80, 220), rng.uniform(0, 6.3)) for _ in range(2)] for s in (-1, 1)}
    a["vein_r"] = {s: rng.uniform(5.0, 7.5) for s in (-1, 1)}
    a["vein_ratio"] = {s: rng.uniform(0.65, 0.95) for s in (-1, 1)}
    a["artery_r"] = {s: rng.uniform(3.2, 4.5) for s in (-1, 1)}
    a["gsv"] = {s: rng.uniform(0.5, 1.2) for s in (-1, 1)}  # angle (rad) of the saphenous vein from medial
    return a


def _thigh_r(a: dict, level: float) -> float:
    """Lateral radius (mm) of one thigh's outline at ``level``; the thighs taper towards the knee."""
    return _interp(level, [(0, 0.97), (150, 0.97), (440, 0.8), (600, 0.75)]) * a["d"]


def _vessel_frame(a: dict, side: int, level: float):
    """Centres (mm) and radii of the artery and vein on one side at an anatomical ``level`` (mm from the pelvis)."""
    d = a["d"]
    # angle from anterior rotating medially (rad) and distance from the thigh centre (fraction of d)
    phi = math.radians(_interp(level, [(0, 55), (120, 30), (300, 80), (440, 175), (600, 180)]))
    rho = _interp(level, [(0, 0.5), (120, 0.62), (300, 0.5), (440, 0.45), (600, 0.45)])
    wig = sum(amp * math.sin(2 * math.pi * level / wl + ph) for amp, wl, ph in a["wiggle"][side])
    cx = side * d + (-side) * math.sin(phi) * rho * d  # medial = towards the midline
    cy = -math.cos(phi) * rho * d
    cx, cy = cx + wig * 0.6, cy + wig * 0.8
    taper = _interp(level, [(0, 1.15), (120, 1.05), (300, 0.95), (440, 0.85), (600, 0.8)])
    rv, ra = a["vein_r"][side] * taper, a["artery_r"][side] * taper
    # keep the bundle inside the muscle compartment (thin bodies, thick fat)
    room = _thigh_r(a, level) - a["fat"] - 2 * (rv + ra) - 2.0
    if math.hypot(cx - side * d, cy) > room:
        f = max(room, 0.0) / math.hypot(cx - side * d, cy)
        cx, cy = side * d + (cx - side * d) * f, cy * f
    # artery -> vein direction: medial at the groin, posteromedial in the thigh, posterior (superficial) at the
    # popliteal level; an angle from anterior rotating medially, like phi
    psi = math.radians(_interp(level, [(0, 120), (120, 90), (300, 120), (440, 180), (600, 180)]))
    ux, uy = (-side) * math.sin(psi), -math.cos(psi)
    half = (ra + rv + 1.0) / 2
    vx, vy = cx + ux * half, cy + uy * half
    ax, ay = cx - ux * half, cy - uy * half
    return (ax, ay, ra), (vx, vy, rv)
