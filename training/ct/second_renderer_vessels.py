"""Vessels, thrombi, mixing streaks and perivascular nodes of the second CT phantom renderer.

Each vessel is an oval tube whose centre, calibre and orientation are smooth functions of z. Veins (and nodes)
can be anchored to an artery: their centre sits beside it at a gap along a slowly turning direction, so the pair
never overlaps, even where a clot distends the vein. Lumens, clots and streaks are rendered in small patches at
many sub-slice positions and averaged over the slice thickness (partial volume along z); the averaged clot
coverage gives the ground truth (pixels >= 50 % clot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.ct.second_renderer_draw import Smooth, smoothstep, soft_ellipse

UNOPACIFIED_HU = 40.0  # blood without contrast


@dataclass
class Clot:
    kind: str  # "partial" | "occlusive"
    z0: float
    z1: float
    hu: float
    style: str  # partial: "central" | "mural" | "blob"
    frac: float  # lumen fraction (partial)
    psi: Smooth  # where a mural / blob clot sits (angle in the vein frame)
    offset: float  # centre offset of central / blob clots (normalised radius)
    aspect: float  # blob aspect ratio
    taper_lo: float  # mm over which the caudal end tapers
    taper_hi: float  # mm over which the cranial end tapers (free-floating tail)
    distend: float  # occlusive: lumen scale in the core
    rim_mm: float
    rim_hu: float
    texture: float  # HU amplitude of the clot's internal heterogeneity
    ident: int = 0

    def taper(self, z: float) -> float:
        return float(smoothstep((z - self.z0) / self.taper_lo) * smoothstep((self.z1 - z) / self.taper_hi))

    def active(self, z: float) -> bool:
        return self.z0 < z < self.z1


@dataclass
class Streak:
    """Partly mixed, unopacified inflow: a soft curved band through the lumen that swirls along z."""

    z0: float
    z1: float
    theta0: float
    twist: float  # rad / mm
    offset: Smooth
    width: float  # normalised half-width
    curve: float
    low_hu: float  # darkest mixed HU in the band (60-120)
    fade: float = 12.0

    def weight(self, z: float) -> float:
        return float(smoothstep((z - self.z0) / self.fade) * smoothstep((self.z1 - z) / self.fade))


@dataclass
class Vessel:
    name: str
    kind: str  # "artery" | "vein" | "node"
    side: int
    hu: float
    a: Smooth  # semi-axes (mm)
    b: Smooth
    ang: Smooth  # orientation (rad)
    base: object = None  # callable z -> (x, y) mm when not anchored
    anchor: "Vessel | None" = None
    phi: Smooth | None = None  # direction from the anchor's centre
    gap: float = 1.5
    z_lo: float = -1e9
    z_hi: float = 1e9
    main: bool = False
    layering: float = 0.0  # HU gain towards the dependent (posterior) wall
    wall_hu: float = 45.0
    hilum: float = 0.0  # nodes: fatty hilum size (0 = none)
    fat_hu: float = -100.0
    clots: list = field(default_factory=list)
    streaks: list = field(default_factory=list)

    def extent(self, z: float) -> float:
        """Half-length along z of a node (ellipsoid) cross-section factor; vessels: 1 inside their range."""
        if self.kind == "node":
            zc, hz = (self.z_lo + self.z_hi) / 2, (self.z_hi - self.z_lo) / 2
            q = 1 - ((z - zc) / hz) ** 2
            return math.sqrt(q) if q > 0 else 0.0
        return 1.0 if self.z_lo <= z <= self.z_hi else 0.0

    def scale(self, z: float) -> float:
        s = 1.0
        for c in self.clots:
            if c.kind == "occlusive" and c.active(z):
                s = max(s, 1 + (c.distend - 1) * c.taper(z))
        return s

    def rmax(self, z: float) -> float:
        return max(self.a(z), self.b(z)) * self.scale(z) * max(self.extent(z), 0.3)

    def geom(self, z: float):
        e, s = self.extent(z), self.scale(z)
        a, b = self.a(z) * s * e, self.b(z) * s * e
        if self.anchor is None:
            x, y = self.base(z)
        else:
            ax, ay, *_ = self.anchor.geom(z)
            d = self.anchor.rmax(z) + self.rmax(z) + self.gap
            p = self.phi(z)
            x, y = ax + d * math.cos(p), ay + d * math.sin(p)
        return float(x), float(y), a, b, float(self.ang(z))


def _clot_alpha(c: Clot, z, X, Y, x, y, a, b, ang, ps, L):
    """Clot coverage (0..1) within the lumen L at z; second value: True where the clot occludes the lumen."""
    t = c.taper(z)
    if t <= 0:
        return None, False
    if c.kind == "occlusive" and t > 0.995:
        if c.rim_mm <= 0:
            return L, True
        ai, bi = max(a - c.rim_mm, 0.3), max(b - c.rim_mm, 0.3)
        return np.minimum(soft_ellipse(X, Y, x, y, ai, bi, ang, ps)[0], L), True
    ca, sa = math.cos(ang), math.sin(ang)
    if c.kind == "occlusive":  # tapering end: a central tail surrounded by contrast
        rho, off, psi, asp = math.sqrt(0.9 * t), 0.0, 0.0, 1.0
    elif c.style == "mural":
        rho = 1.05 * math.sqrt(c.frac * t)
        off, psi, asp = 1.0 - rho + 0.15 * rho, c.psi(z), 1.0
    else:
        rho, off, psi = math.sqrt(c.frac * t), c.offset, c.psi(z)
        asp = c.aspect if c.style == "blob" else 1.0
    u0, v0 = off * math.cos(psi), off * math.sin(psi)  # normalised vein frame
    cx, cy = x + (u0 * a) * ca - (v0 * b) * sa, y + (u0 * a) * sa + (v0 * b) * ca
    ra, rb = rho * a * math.sqrt(asp), rho * b / math.sqrt(asp)
    cl = soft_ellipse(X, Y, cx, cy, max(ra, 0.2), max(rb, 0.2), ang + (psi if c.style == "blob" else 0.0), ps)[0]
    return np.minimum(cl, L), False


def _streak_mix(s: Streak, z, u, v, hu):
    w = s.weight(z)
    if w <= 0:
        return None
    th = s.theta0 + s.twist * z
    n_ = -u * math.sin(th) + v * math.cos(th)  # across the band
    t_ = u * math.cos(th) + v * math.sin(th)  # along the band
    d = n_ - s.offset(z) - s.curve * t_ * t_
    k = (hu - s.low_hu) / max(hu - UNOPACIFIED_HU, 1.0)
    return (w * k) * np.exp(-(d / s.width) ** 2)


@dataclass
class PatchResult:
    bb: tuple  # r0, r1, c0, c1 (image pixels)
    outer: np.ndarray  # mean coverage of lumen + wall
    value: np.ndarray  # mean of (coverage * HU) over lumen + wall
    lumen: np.ndarray  # mean lumen coverage
    clots: dict  # clot ident -> mean clot coverage
    streak: float  # max streak weight over the slab
    centre: tuple  # mean centre (x, y) mm and radius mm enclosing the lumen over the slab


def render_vessel(v: Vessel, zs: np.ndarray, size: int, ps: float, tex_rng_val: float = 0.0) -> PatchResult | None:
    """Average a vessel (or node) over the sub-slice positions ``zs`` inside its own small patch."""
    geoms = [(z, v.geom(z)) for z in zs if v.extent(z) > 0]
    if not geoms:
        return None
    wall = 0.7 if v.kind != "node" else 0.0
    xs = np.array([g[1][0] for g in geoms])
    ys = np.array([g[1][1] for g in geoms])
    rr = np.array([max(g[1][2], g[1][3]) for g in geoms]) + wall + 2 * ps
    c0 = int(math.floor((xs - rr).min() / ps + size / 2))
    c1 = int(math.ceil((xs + rr).max() / ps + size / 2)) + 1
    r0 = int(math.floor((ys - rr).min() / ps + size / 2))
    r1 = int(math.ceil((ys + rr).max() / ps + size / 2)) + 1
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, size), min(r1, size)
    if c1 <= c0 or r1 <= r0:
        return None
    X = ((np.arange(c0, c1) + 0.5 - size / 2) * ps)[None, :].astype(np.float32)
    Y = ((np.arange(r0, r1) + 0.5 - size / 2) * ps)[:, None].astype(np.float32)
    shp = (r1 - r0, c1 - c0)
    outer, value, lumen = np.zeros(shp, np.float32), np.zeros(shp, np.float32), np.zeros(shp, np.float32)
    clot_acc = {c.ident: np.zeros(shp, np.float32) for c in v.clots}
    smax, n = 0.0, len(zs)
    for z, (x, y, a, b, ang) in geoms:
        L, u, vv = soft_ellipse(X, Y, x, y, a, b, ang, ps)
        if v.kind == "node":
            content = np.full(shp, v.hu, np.float32)
            if v.hilum > 0:
                h = soft_ellipse(X, Y, x + 0.3 * a * math.cos(ang), y + 0.3 * a * math.sin(ang),
                                 v.hilum * a, v.hilum * b, ang, ps)[0]
                content = content + (v.fat_hu - v.hu) * h
            outer += L
            value += L * content
            continue
        W = soft_ellipse(X, Y, x, y, a + wall, b + wall, ang, ps)[0]
        content = v.hu + v.layering * 0.5 * np.clip((Y - y) / max(a, b), -1, 1)  # contrast layers posteriorly
        content = np.broadcast_to(content, shp).astype(np.float32)
        for s in v.streaks:
            m = _streak_mix(s, z, u, vv, v.hu)
            if m is not None:
                smax = max(smax, s.weight(z))
                content = content * (1 - m) + UNOPACIFIED_HU * m
        ctot, chu = None, None
        for c in v.clots:
            C, occl = _clot_alpha(c, z, X, Y, x, y, a, b, ang, ps, L)
            if C is None:
                continue
            clot_acc[c.ident] += C
            if occl:
                content = np.where(L > 0, np.float32(c.rim_hu), content) if c.rim_mm > 0 else content
            hu_c = c.hu + c.texture * np.sin(2.8 * u + 1.7 * vv + 0.2 * z + tex_rng_val)
            if ctot is None:
                ctot, chu = C, hu_c
            else:
                chu = np.where(C > ctot, hu_c, chu)
                ctot = np.maximum(ctot, C)
        if ctot is not None:
            content = content * (1 - ctot) + chu * ctot
        outer += W
        value += (W - L) * v.wall_hu + L * content
        lumen += L
    inv = np.float32(1.0 / n)
    cx, cy = float(xs.mean()), float(ys.mean())
    rad = float(max(math.hypot(g[1][0] - cx, g[1][1] - cy) + max(g[1][2], g[1][3]) for g in geoms))
    return PatchResult((r0, r1, c0, c1), outer * inv, value * inv, lumen * inv,
                       {k: a * inv for k, a in clot_acc.items()}, smax, (cx, cy, rad))


def composite(img: np.ndarray, p: PatchResult) -> None:
    r0, r1, c0, c1 = p.bb
    v = img[r0:r1, c0:c1]
    v *= (1 - p.outer)
    v += p.value


def mask_box(m: np.ndarray, bb, thr: float = 0.5, min_px: int = 2, core: float = 0.0):
    """[x0, y0, x1, y1] (image pixels, x1/y1 exclusive) of the pixels with m >= thr, or None when fewer than
    ``min_px`` pixels reach max(thr, core)."""
    if int(np.count_nonzero(m >= max(thr, core))) < min_px:
        return None
    ys, xs = np.nonzero(m >= thr)
    return [float(bb[2] + xs.min()), float(bb[0] + ys.min()), float(bb[2] + xs.max() + 1), float(bb[0] + ys.max() + 1)]
