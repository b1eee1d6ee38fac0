"""Drawing primitives of the second CT phantom renderer (see :mod:`training.ct.second_renderer`).

Coordinates are millimetres in the axial plane: x to the patient's left (image right), y posterior (image down),
origin at the image centre. Pixel column c has its centre at x = (c + 0.5 - W/2) * ps. Shapes are closed polygons
rasterised with anti-aliased edges by OpenCV (sub-pixel precision through ``shift``) and alpha-blended into a
float32 HU image, restricted to each shape's bounding box.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHIFT = 4  # cv2 fixed-point sub-pixel bits
ONE = 1 << SHIFT


class Smooth:
    """A smooth random function of z (mm): base + slope * z + a few low-frequency sinusoids."""

    def __init__(self, rng: np.random.Generator, base: float, amp: float = 0.0, slope: float = 0.0, n: int = 2,
                 pmin: float = 60.0, pmax: float = 260.0):
        self.base, self.slope = float(base), float(slope)
        self.amp = amp * rng.uniform(0.4, 1.0, n) / math.sqrt(n)
        self.per = rng.uniform(pmin, pmax, n)
        self.ph = rng.uniform(0, 2 * math.pi, n)

    def __call__(self, z):
        z = np.asarray(z, np.float64)
        out = self.base + self.slope * z
        for a, p, f in zip(self.amp, self.per, self.ph):
            out = out + a * np.sin(2 * math.pi * z / p + f)
        return out if out.ndim else float(out)


def smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def harmonics(rng: np.random.Generator, amp: float, kmax: int = 5) -> list[tuple[int, float, float]]:
    """Random low-order Fourier perturbation of a contour radius: [(k, relative amplitude, phase)]."""
    return [(k, amp * rng.uniform(0.2, 1.0) / k ** 0.7, rng.uniform(0, 2 * math.pi)) for k in range(2, kmax + 1)]


def radius(theta: np.ndarray, rx: float, ry: float, rot: float = 0.0, harm=()) -> np.ndarray:
    """Radius of a perturbed ellipse along directions ``theta`` (image angle: atan2(y, x))."""
    t = theta - rot
    r = rx * ry / np.sqrt((ry * np.cos(t)) ** 2 + (rx * np.sin(t)) ** 2)
    pert = np.ones_like(theta)
    for k, a, p in harm:
        pert = pert + a * np.cos(k * t + p)
    return r * pert


THETA = np.linspace(-math.pi, math.pi, 160, endpoint=False)


def star(cx: float, cy: float, r: np.ndarray, theta: np.ndarray = THETA) -> np.ndarray:
    """Polygon (N, 2) mm of a star-shaped contour with radius r(theta) about (cx, cy)."""
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], 1)


def flatten_below(r: np.ndarray, cy: float, ymax: float, soft: float = 5.0, theta: np.ndarray = THETA) -> np.ndarray:
    """Radii flattened against the horizontal line y = ymax (a limb resting on the table), soft corners."""
    s = np.sin(theta)
    lim = np.where(s > 1e-3, (ymax - cy) / np.maximum(s, 1e-3), 1e6)
    return -soft * np.logaddexp(-r / soft, -lim / soft)


def ellipse(cx, cy, rx, ry, rot=0.0, n: int = 72) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s = math.cos(rot), math.sin(rot)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack([cx + x * c - y * s, cy + x * s + y * c], 1)


class Canvas:
    """A float32 HU image (size x size) with pixel spacing ``ps`` mm and anti-aliased polygon blending."""

    def __init__(self, size: int, ps: float, fill: float = -1000.0):
        self.size, self.ps = size, ps
        self.img = np.full((size, size), fill, np.float32)

    def px(self, pts) -> np.ndarray:
        """mm -> cv2 pixel-centre coordinates (float)."""
        return np.asarray(pts, np.float64) / self.ps + self.size / 2 - 0.5

    def bbox(self, pts, pad_px: float = 2.0):
        p = self.px(pts).reshape(-1, 2)
        c0, r0 = np.floor(p.min(0) - pad_px).astype(int)
        c1, r1 = np.ceil(p.max(0) + pad_px + 1).astype(int)
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, self.size), min(r1, self.size)
        return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None

    def _fixed(self, pts, bb):
        p = self.px(pts)
        p[:, 0] -= bb[2]
        p[:, 1] -= bb[0]
        return np.round(p * ONE).astype(np.int32)

    def poly_alpha(self, polys, bb) -> np.ndarray:
        m = np.zeros((bb[1] - bb[0], bb[3] - bb[2]), np.uint8)
        cv2.fillPoly(m, [self._fixed(p, bb) for p in polys], 255, cv2.LINE_AA, SHIFT)
        return m.astype(np.float32) * (1 / 255.0)

    def line_alpha(self, lines, width_mm: float, bb, closed: bool = False) -> np.ndarray:
        m = np.zeros((bb[1] - bb[0], bb[3] - bb[2]), np.uint8)
        w = width_mm / self.ps
        t = max(1, int(round(w)))
        cv2.polylines(m, [self._fixed(p, bb) for p in lines], closed, 255, t, cv2.LINE_AA, SHIFT)
        a = m.astype(np.float32) * (1 / 255.0)
        return a * min(1.0, w) if w < 1 else a

    def blend(self, bb, alpha, hu) -> None:
        v = self.img[bb[0]:bb[1], bb[2]:bb[3]]
        v += (np.float32(hu) - v) * alpha

    def fill(self, poly, hu, alpha: float = 1.0) -> None:
        bb = self.bbox(poly)
        if bb is not None:
            self.blend(bb, self.poly_alpha([poly], bb) * alpha, hu)

    def stroke(self, lines, width_mm, hu, alpha: float = 1.0, closed: bool = False, clip=None) -> None:
        """Polylines of ``width_mm``; ``clip``: a polygon the stroke is confined to."""
        allp = np.concatenate(lines, 0)
        bb = self.bbox(allp, pad_px=width_mm / self.ps + 2)
        if bb is None:
            return
        a = self.line_alpha(lines, width_mm, bb, closed) * alpha
        if clip is not None:
            a *= self.poly_alpha([clip], bb)
        self.blend(bb, a, hu)

    def bone(self, poly_outer, cortex_mm: float, cortex_hu: float, inner_hu: float) -> None:
        """A bone: outer contour filled with cortex, the contour shrunk towards its centroid by ``cortex_mm``
        filled with marrow / trabecular bone."""
        self.fill(poly_outer, cortex_hu)
        c = poly_outer.mean(0)
        d = poly_outer - c
        r = np.linalg.norm(d, axis=1, keepdims=True)
        inner = c + d * np.clip((r - cortex_mm) / np.maximum(r, 1e-6), 0.05, 1)
        self.fill(inner, inner_hu)

    def tapered(self, pts, half, cortex_mm: float, cortex_hu: float, inner_hu: float) -> None:
        """A bone plate along a centreline with per-vertex half-widths (iliac wing, sacrum): cortex + core."""
        pts, half = np.asarray(pts, np.float64), np.asarray(half, np.float64)
        d = np.gradient(pts, axis=0)
        n = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        for h, hu in ((half, cortex_hu), (half - cortex_mm, inner_hu)):
            h = np.maximum(h, 0.3)[:, None]
            a0 = math.atan2(n[0, 1], n[0, 0])
            a1 = math.atan2(n[-1, 1], n[-1, 0])
            cap0 = [pts[0] + h[0] * (math.cos(a), math.sin(a)) for a in np.linspace(a0 + math.pi, a0, 7)[1:-1]]
            cap1 = [pts[-1] + h[-1] * (math.cos(a), math.sin(a)) for a in np.linspace(a1, a1 - math.pi, 7)[1:-1]]
            poly = np.concatenate([pts + n * h, np.array(cap1).reshape(-1, 2), (pts - n * h)[::-1],
                                   np.array(cap0).reshape(-1, 2)], 0)
            self.fill(poly, hu)

    def bar(self, pts, width_mm: float, cortex_mm: float, cortex_hu: float, inner_hu: float) -> None:
        """A bony bar along a polyline (pubic ramus, iliac wing): cortex stroke with a trabecular core."""
        self.stroke([pts], width_mm, cortex_hu)
        if width_mm > 2 * cortex_mm + self.ps:
            self.stroke([pts], width_mm - 2 * cortex_mm, inner_hu)


def soft_ellipse(X, Y, cx, cy, a, b, ang, ps):
    """Anti-aliased ellipse coverage (0..1) on the mm grids X, Y (pixel centres), plus normalised coords u, v."""
    c, s = math.cos(ang), math.sin(ang)
    dx, dy = X - cx, Y - cy
    u, v = (dx * c + dy * s) / a, (-dx * s + dy * c) / b
    rho = np.sqrt(u * u + v * v)
    rdir = np.sqrt(dx * dx + dy * dy) / np.maximum(rho, 1e-6)  # boundary radius along the pixel's direction
    rdir = np.where(rho < 1e-6, min(a, b), rdir)
    return np.clip(0.5 - (rho - 1) * rdir / ps, 0, 1), u, v


def gauss_kernel_gain(sx: float, sy: float) -> float:
    """Std of white noise after cv2.GaussianBlur with these sigmas (px), for renormalisation."""
    gx = cv2.getGaussianKernel(2 * int(math.ceil(3 * sx)) + 1, sx, cv2.CV_64F)
    gy = cv2.getGaussianKernel(2 * int(math.ceil(3 * sy)) + 1, sy, cv2.CV_64F)
    return float(math.sqrt((gx ** 2).sum() * (gy ** 2).sum()))


def blur(img, sx: float, sy: float | None = None):
    sy = sx if sy is None else sy
    kx, ky = 2 * int(math.ceil(3 * sx)) + 1, 2 * int(math.ceil(3 * sy)) + 1
    return cv2.GaussianBlur(img, (kx, ky), sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)


def correlated_noise(rng: np.random.Generator, shape, sx: float, sy: float) -> np.ndarray:
    """Unit-std Gaussian noise correlated in-plane by a Gaussian kernel (sigmas in px)."""
    w = rng.standard_normal(shape, dtype=np.float32)
    return blur(w, sx, sy) * np.float32(1.0 / gauss_kernel_gain(sx, sy))


class Texture:
    """A smooth random field coherent along z (unit std), sampled per slice: coarse 3D grid, blurred, upsampled."""

    def __init__(self, rng: np.random.Generator, z_lo: float, z_hi: float, size: int, cells: int = 40,
                 dz: float = 6.0):
        n = int((z_hi - z_lo) / dz) + 4
        g = rng.standard_normal((n, cells, cells), dtype=np.float32)
        g = np.stack([blur(s, 1.3) for s in g])
        g = (g[:-2] + 2 * g[1:-1] + g[2:]) / 4
        self.g = g / max(float(g.std()), 1e-6)
        self.z_lo, self.dz, self.size = z_lo - dz, dz, size

    def at(self, z: float) -> np.ndarray:
        t = (z - self.z_lo) / self.dz
        i = int(np.clip(math.floor(t), 0, len(self.g) - 2))
        f = float(np.clip(t - i, 0, 1))
        s = self.g[i] * (1 - f) + self.g[i + 1] * f
        return cv2.resize(s, (self.size, self.size), interpolation=cv2.INTER_CUBIC)


def beam_hardening(size: int, ps: float, bones, rng_vals, amp: float) -> np.ndarray:
    """Dark bands between pairs of dense bones and thin streaks along their common tangents (HU, additive).

    bones: [(x, y, r)] mm; rng_vals: per-study fixed numbers in [0, 1) (streak signs) so slices agree. The smooth
    bands are computed on a coarse grid and upsampled; the streaks are anti-aliased lines.
    """
    lo = max(size // 4, 32)
    cps = ps * size / lo
    c = ((np.arange(lo) + 0.5 - lo / 2) * cps).astype(np.float32)
    X, Y = c[None, :], c[:, None]
    band = np.zeros((lo, lo), np.float32)
    lines = np.zeros((size, size), np.float32)
    k = 0
    for i in range(len(bones)):
        for j in range(i + 1, len(bones)):
            (x1, y1, r1), (x2, y2, r2) = bones[i], bones[j]
            if min(r1, r2) < 7:
                continue
            dx, dy = x2 - x1, y2 - y1
            L = math.hypot(dx, dy)
            if L < r1 + r2 + 5:
                continue
            ux, uy = dx / L, dy / L
            t = (X - x1) * ux + (Y - y1) * uy
            d = -(X - x1) * uy + (Y - y1) * ux
            w = 0.75 * min(r1, r2)
            along = smoothstep((t + r1) / (0.4 * r1 + 1)) * smoothstep((L + r2 - t) / (0.4 * r2 + 1))
            strength = amp * min(1.0, r1 * r2 / 400.0)
            band -= strength * along * np.exp(-(d / w) ** 2)
            for sgn in (-1, 1):  # streaks along the two external tangents, running on past the bones
                off = sgn * (r1 + r2) / 2
                sign = 1 if rng_vals[k % len(rng_vals)] > 0.5 else -1
                k += 1
                p0 = np.array([x1 - 2 * L * ux - off * uy, y1 - 2 * L * uy + off * ux])
                p1 = np.array([x2 + 2 * L * ux - off * uy, y2 + 2 * L * uy + off * ux])
                q = np.round((np.stack([p0, p1]) / ps + size / 2 - 0.5) * ONE).astype(np.int32)
                cv2.line(lines, tuple(q[0]), tuple(q[1]), float(0.3 * sign * strength), 1, cv2.LINE_AA, SHIFT)
    out = cv2.resize(band, (size, size), interpolation=cv2.INTER_LINEAR)
    return out + blur(lines, 0.6)
