"""Geometry and timing for the second ultrasound renderer: vessel outlines as polygons, per-column tissue
squash maps, the arterial pulse waveform and the probe pressure curve.

Coordinates are image pixels (x right, y down = depth). Polygons are (N, 2) float arrays, counter-clockwise
or clockwise, star-shaped about their centre.
"""

from __future__ import annotations

import cv2
import numpy as np

N_POLY = 128


def shape_poly(cx: float, cy: float, rx: float, ry: float, *, power: float = 2.0, harmonics=(),
               tilt: float = 0.0, n: int = N_POLY) -> np.ndarray:
    """A superellipse (power 2 = ellipse, < 2 lens/diamond-like, > 2 boxy) with radial harmonics
    [(k, amplitude, phase), ...], rotated by ``tilt`` radians."""
    th = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    c, s = np.cos(th), np.sin(th)
    e = 2.0 / power
    x = rx * np.sign(c) * np.abs(c) ** e
    y = ry * np.sign(s) * np.abs(s) ** e
    r = np.ones_like(th)
    for k, a, ph in harmonics:
        r = r + a * np.cos(k * th + ph)
    x, y = x * r, y * r
    ct, st = np.cos(tilt), np.sin(tilt)
    return np.stack([cx + ct * x - st * y, cy + st * x + ct * y], axis=1)


def poly_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def poly_centroid(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cr = x * y1 - x1 * y
    a = cr.sum() / 2.0
    if abs(a) < 1e-9:
        return p.mean(axis=0)
    return np.array([((x + x1) * cr).sum() / (6 * a), ((y + y1) * cr).sum() / (6 * a)])


def offset_poly(p: np.ndarray, d) -> np.ndarray:
    """Move every vertex ``d`` pixels (a number or one per vertex) along the outward normal."""
    tang = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
    nrm = np.stack([tang[:, 1], -tang[:, 0]], axis=1)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-9)
    c = poly_centroid(p)
    if np.mean(np.sum((p - c) * nrm, axis=1)) < 0:
        nrm = -nrm
    return p + np.reshape(d, (-1, 1)) * nrm


def squash(p: np.ndarray, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    q = p.copy()
    q[:, 0] = x0 + (p[:, 0] - x0) * sx
    q[:, 1] = y0 + (p[:, 1] - y0) * sy
    return q


def ray_radii(p: np.ndarray, c: np.ndarray, th: np.ndarray) -> np.ndarray:
    """Distance from ``c`` to the polygon boundary along each direction ``th`` (c inside, star-shaped)."""
    a = p - c
    b = np.roll(a, -1, axis=0) - a  # edges a_i + s * b_i, s in [0, 1]
    d = np.stack([np.cos(th), np.sin(th)], axis=1)
    # solve t * d = a + s * b  for every (ray, edge)
    det = d[:, None, 0] * (-b[None, :, 1]) - d[:, None, 1] * (-b[None, :, 0])
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    t = (a[None, :, 0] * (-b[None, :, 1]) - a[None, :, 1] * (-b[None, :, 0])) / det
    s = (d[:, None, 0] * a[None, :, 1] - d[:, None, 1] * a[None, :, 0]) / det
    ok = (s >= -1e-9) & (s <= 1 + 1e-9) & (t > 0)
    return np.where(ok, t, np.inf).min(axis=1)


def column_extent(p: np.ndarray, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top and bottom y of the polygon at pixel-centre columns x0..x1-1 (valid where the column crosses it)."""
    xs = np.arange(x0, x1, dtype=np.float64)
    a, b = p, np.roll(p, -1, axis=0)
    lo, hi = np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0])
    inside = (xs[None, :] >= lo[:, None]) & (xs[None, :] < hi[:, None])
    dx = b[:, 0] - a[:, 0]
    dx = np.where(np.abs(dx) < 1e-12, 1e-12, dx)
    ys = a[:, 1, None] + (xs[None, :] - a[:, 0, None]) * ((b[:, 1] - a[:, 1]) / dx)[:, None]
    top = np.where(inside, ys, np.inf).min(axis=0)
    bot = np.where(inside, ys, -np.inf).max(axis=0)
    valid = np.isfinite(top) & np.isfinite(bot)
    return top, bot, valid


class ColumnSquash:
    """Vertical tissue motion caused by one vessel changing shape, as a per-column piecewise-linear map
    between the rest outline (top a, bottom b) and the current one (a', b'):
    [0, a] <-> [0, a'] (everything above follows the upper wall, the skin stays), [a, b] <-> [a', b'],
    [b, b + L] <-> [b', b + L] (tissue below follows the lower wall, fading over L), deeper: unchanged."""

    def __init__(self, rest: np.ndarray, taper: float):
        self.x0 = int(np.floor(rest[:, 0].min())) - 1
        self.x1 = int(np.ceil(rest[:, 0].max())) + 2
        self.a, self.b, self.valid = column_extent(rest, self.x0, self.x1)
        self.taper = float(taper)
        self.set_current(rest)

    def set_current(self, cur: np.ndarray) -> None:
        ca, cb, cv = column_extent(cur, self.x0, self.x1)
        v = self.valid
        a0, b0 = np.where(v, self.a, 0.0), np.where(v, self.b, 0.0)
        mid = 0.5 * (a0 + b0)
        # a column whose lumen closed completely keeps a pinch at the old middle
        self.a2 = np.where(cv, ca, mid)
        self.b2 = np.where(cv, cb, mid)
        self.a_, self.b_ = a0, b0
        self.on = v & (~np.isclose(self.a2, self.a_) | ~np.isclose(self.b2, self.b_))

    @staticmethod
    def _map(y, src_a, src_b, dst_a, dst_b, end):
        """Piecewise-linear map of rows ``y`` taking src knots (0, a, b, end) to dst knots (0, a', b', end),
        end = rest bottom + taper, the same in both frames."""
        out = np.where(y < src_a, y * (dst_a / np.maximum(src_a, 1e-3)), y)
        mid = dst_a + (y - src_a) * ((dst_b - dst_a) / np.maximum(src_b - src_a, 1e-3))
        out = np.where((y >= src_a) & (y < src_b), mid, out)
        tail = dst_b + (y - src_b) * ((end - dst_b) / np.maximum(end - src_b, 1e-3))
        return np.where((y >= src_b) & (y < end), tail, out)

    def inverse_inplace(self, map_y: np.ndarray, col_offset: int) -> None:
        """``map_y`` holds, per output pixel, a row in the frame after this vessel's motion; replace it by the
        row it came from. This object's column k sits at map_y column x0 + k + col_offset. The displacement is
        smoothed laterally so the tissue beside the vessel is dragged along instead of tearing."""
        self.last_cols = None
        if not self.on.any():
            return
        sig = max(3.0, 0.35 * (self.x1 - self.x0))
        ext = int(3 * sig)
        c0 = max(self.x0 + col_offset, 0)
        c1 = min(self.x1 + col_offset, map_y.shape[1])
        if c1 <= c0:
            return
        e0, e1 = max(c0 - ext, 0), min(c1 + ext, map_y.shape[1])
        # the displacement is piecewise linear in depth and blurred across: work on a 4x coarser grid
        st = 4
        n_rows = map_y.shape[0]
        cols = np.arange(c0, c1, st)
        k_sel = cols - col_offset - self.x0
        coarse = map_y[::st, cols]
        mapped = self._map(coarse, self.a2[k_sel], self.b2[k_sel], self.a_[k_sel], self.b_[k_sel],
                           self.b_[k_sel] + self.taper)
        g0 = (c0 - e0 + st - 1) // st  # coarse column of c0 when the grid starts at e0 + (c0 - e0) % st
        start = c0 - g0 * st
        ncol = (e1 - start + st - 1) // st + 1
        disp = np.zeros((coarse.shape[0], ncol), np.float32)
        disp[:, g0:g0 + cols.size] = np.where(self.on[k_sel][None, :], mapped - coarse, 0.0)
        sg = sig / st
        k = 2 * int(np.ceil(3 * sg)) + 1
        disp = cv2.GaussianBlur(disp, (k, 1), sigmaX=sg, sigmaY=0.1, borderType=cv2.BORDER_CONSTANT)
        # exact 4x upsampling: output (u, v) reads coarse (u / 4, v / 4); the grid starts at column `start`
        m = np.float32([[st, 0, start - e0], [0, st, 0]])
        full = cv2.warpAffine(disp, m, (e1 - e0, n_rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        map_y[:, e0:e1] += full
        self.last_cols = (e0, e1)

    def forward_points(self, pts: np.ndarray) -> np.ndarray:
        """Where rest-frame points (of another structure) move to."""
        out = pts.copy()
        k = np.round(pts[:, 0]).astype(int) - self.x0
        ok = (k >= 0) & (k < self.a.size)
        if not ok.any():
            return out
        kk = k[ok]
        y2 = self._map(pts[ok, 1], self.a_[kk], self.b_[kk], self.a2[kk], self.b2[kk], self.b_[kk] + self.taper)
        out[ok, 1] = np.where(self.on[kk], y2, pts[ok, 1])
        return out


def pulse_waveform(phase: np.ndarray, up: float, tau: float, notch: float) -> np.ndarray:
    """Arterial distension over one beat (phase in [0, 1)): a fast systolic upstroke lasting ``up`` of the
    cycle, an exponential diastolic run-off with a small dicrotic bump; 0 at end-diastole, ~1 at peak."""
    ph = np.mod(phase, 1.0)
    rise = np.sin(0.5 * np.pi * np.clip(ph / up, 0, 1)) ** 2
    s = np.clip(ph - up, 0, None)
    end = np.exp(-(1.0 - up) / tau)
    fall = (np.exp(-s / tau) - end) / (1.0 - end)
    bump = notch * np.exp(-((ph - up - 0.22) / 0.05) ** 2)
    w = np.where(ph < up, rise, fall + bump)
    return w / (1.0 + notch * 0.6)


def _ease(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def pressure_curve(t: np.ndarray, segments: list[tuple[str, float, float]]) -> np.ndarray:
    """Normalised probe pressure (0 rest .. 1 full) from consecutive (kind, duration, level) segments:
    kind 'rest' holds 0, 'press' eases from the current level to ``level``, 'ramp' rises linearly with eased
    ends, 'hold' keeps the level, 'release' eases back to 0."""
    q = np.zeros_like(t, dtype=np.float64)
    t0, cur = 0.0, 0.0
    for kind, dur, level in segments:
        m = (t >= t0) & (t < t0 + dur)
        u = (t[m] - t0) / max(dur, 1e-6)
        if kind == "rest":
            q[m], cur = 0.0, 0.0
        elif kind == "hold":
            q[m] = cur
        elif kind == "press":
            q[m] = cur + (level - cur) * _ease(u)
            cur = level
        elif kind == "ramp":
            lin = np.clip(u, 0, 1)
            shaped = 0.35 * _ease(u) + 0.65 * lin
            q[m] = cur + (level - cur) * shaped
            cur = level
        elif kind == "release":
            q[m] = cur * (1.0 - _ease(u))
            cur = 0.0
        t0 += dur
    q[t >= t0] = cur
    return q
