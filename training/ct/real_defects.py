"""Filling defects inside a real vessel: a centreline tracked through the vessel mask, occlusive or partial
defects along it, and their insertion with the vessel's own edge blur (step 3 of :mod:`training.ct.real_lesions`).
Research software, not for diagnostic use."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from training.ct.real_source import SOURCE_MM, Source, norm_conv


@dataclass
class DefectSpec:
    kind: str = "partial"  # "partial" | "occlusive"
    length_mm: float = 20.0
    hu: float = 45.0
    area_frac: float = 0.5  # partial: share of the lumen cross-section at the defect's widest point
    shape: str = "tube"  # partial: "tube" | "blob" | "cone"
    angle: float = 0.0  # partial: side of the wall it sticks to (rad, around the centreline)
    drift: float = 0.0  # partial: rotation of that side along the defect (rad over its length)
    start: tuple[int, int, int] | None = None  # a centreline voxel (z, y, x); None = drawn from the ridge


@dataclass
class Defect:
    spec: DefectSpec
    occupancy: np.ndarray  # (z, y, x) float32 in [0, 1], zero outside the mask
    centreline: np.ndarray  # (m, 3) voxel coordinates (z, y, x) of the tracked segment
    radius_vox: np.ndarray  # (m,) lumen radius along it
    length_mm: float  # the tracked length (can be shorter than asked where the vessel ends)


def sample_spec(rng: np.random.Generator) -> DefectSpec:
    return DefectSpec(kind="occlusive" if rng.random() < 0.35 else "partial", length_mm=float(rng.uniform(5, 40)),
                      hu=float(rng.uniform(15, 70)), area_frac=float(rng.uniform(0.3, 0.8)),
                      shape=str(rng.choice(["tube", "blob", "cone"])), angle=float(rng.uniform(0, 2 * math.pi)),
                      drift=float(rng.uniform(-1.5, 1.5)))


def _local_dir(src: Source, p: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """Principal direction of the mask voxels near ``p`` (radius ~3x the lumen radius, >= 6 voxels)."""
    r = int(max(6, min(14, 3 * src.edt[tuple(np.clip(np.round(p).astype(int), 0, np.array(src.mask.shape) - 1))])))
    lo = np.maximum(np.round(p).astype(int) - r, 0)
    hi = np.minimum(np.round(p).astype(int) + r + 1, src.mask.shape)
    sub = src.mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    pts = np.argwhere(sub).astype(np.float64) + lo
    pts = pts[np.sum((pts - p) ** 2, axis=1) <= r * r]
    if len(pts) < 5:
        return prev if prev is not None else np.array([1.0, 0.0, 0.0])
    c = pts - pts.mean(axis=0)
    w, v = np.linalg.eigh(c.T @ c)
    d = v[:, -1]
    if prev is not None and float(d @ prev) < 0:
        d = -d
    return d / np.linalg.norm(d)


def _recentre(src: Source, p: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Centroid (weighted by the distance transform) of the mask voxels in the 2-voxel slab through p normal to d."""
    r = int(max(4, min(14, 1.8 * src.edt[tuple(np.clip(np.round(p).astype(int), 0, np.array(src.mask.shape) - 1))] + 3)))
    lo = np.maximum(np.round(p).astype(int) - r, 0)
    hi = np.minimum(np.round(p).astype(int) + r + 1, src.mask.shape)
    e = src.edt[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    pts = np.argwhere(e > 0).astype(np.float64) + lo
    if not len(pts):
        return None
    wts = e[e > 0].astype(np.float64)
    rel = pts - p
    a = rel @ d
    keep = (np.abs(a) <= 1.0) & (np.sum(rel ** 2, axis=1) - a ** 2 <= r * r)
    if keep.sum() < 3:
        return None
    # the connected lumen around p: voxels nearer than the local radius + 2 to p's projection
    q = np.average(pts[keep], axis=0, weights=wts[keep] ** 2)
    return q


def track_centreline(src: Source, start: np.ndarray, length_mm: float, step: float = 0.5):
    """Centreline samples (voxels) through ``start`` covering ``length_mm`` (half each way), stopping where the
    lumen ends (radius < 1 voxel) or leaves the usable z-range. Returns (points (m, 3), directions (m, 3))."""
    half = length_mm / SOURCE_MM / 2
    d0 = _local_dir(src, start, None)
    sides = []
    for sgn in (1.0, -1.0):
        p, d, pts, dirs, walked = start.astype(np.float64), d0 * sgn, [], [], 0.0
        while walked < half:
            nxt = p + d * step
            q = _recentre(src, nxt, d)
            if q is None:
                break
            # keep the step length: move along d, then pull half-way to the centroid in the normal plane
            off = q - nxt
            off -= (off @ d) * d
            nxt = nxt + 0.5 * off
            ii = tuple(np.clip(np.round(nxt).astype(int), 0, np.array(src.mask.shape) - 1))
            if src.edt[ii] < 1.0 or not src.z_range[0] + 1 <= nxt[0] < src.z_range[1] - 1:
                break
            d = _local_dir(src, nxt, d)
            p, walked = nxt, walked + step
            pts.append(p.copy())
            dirs.append(d * sgn)
        sides.append((pts, dirs))
    (fp, fd), (bp, bd) = sides
    pts = bp[::-1] + [start.astype(np.float64)] + fp
    dirs = bd[::-1] + [d0] + fd
    return np.array(pts), np.array(dirs)


def _perp_basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def make_defect(src: Source, spec: DefectSpec, rng: np.random.Generator) -> Defect | None:
    """Occupancy of one defect (see the module doc, step 3); None when the vessel gives too short a segment."""
    start = np.array(spec.start if spec.start is not None else src.ridge[rng.integers(len(src.ridge))], np.float64)
    pts, dirs = track_centreline(src, start, spec.length_mm)
    if len(pts) < 2:
        return None
    length = (len(pts) - 1) * 0.5 * SOURCE_MM
    if length < min(4.0, spec.length_mm * 0.8):
        return None
    # densify the ends: samples beyond the segment (labelled outside) give flat end caps for the occlusive kind
    ext = 8
    pre = [pts[0] - dirs[0] * 0.5 * (i + 1) for i in range(ext)][::-1]
    post = [pts[-1] + dirs[-1] * 0.5 * (i + 1) for i in range(ext)]
    allp = np.concatenate([np.array(pre), pts, np.array(post)])
    inside_s = np.r_[np.zeros(ext, bool), np.ones(len(pts), bool), np.zeros(ext, bool)]
    rad = np.array([src.edt[tuple(np.clip(np.round(p).astype(int), 0, np.array(src.mask.shape) - 1))] for p in pts])
    rad = np.maximum(ndi.uniform_filter1d(rad, 5, mode="nearest"), 1.0)
    rmax = float(rad.max())
    lo = np.maximum(np.floor(allp.min(axis=0) - rmax - 3).astype(int), 0)
    hi = np.minimum(np.ceil(allp.max(axis=0) + rmax + 4).astype(int), src.mask.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    msub = src.mask[sl]
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
    occ = np.zeros(len(grid), np.float32)
    if spec.kind == "occlusive":
        best = np.full(len(grid), np.inf, np.float32)
        arg = np.zeros(len(grid), np.int32)
        for j, p in enumerate(allp.astype(np.float32)):
            dd = np.sum((grid - p) ** 2, axis=1)
            better = dd < best
            best[better], arg[better] = dd[better], j
        near = np.sqrt(best) <= rmax + 2.0
        occ = (inside_s[arg] & near).astype(np.float32)
    else:
        t = np.linspace(0.0, 1.0, len(pts))
        if spec.shape == "blob":
            taper = np.sqrt(np.clip(1 - (2 * t - 1) ** 2, 0, 1)) * 0.8 + 0.2
        elif spec.shape == "cone":
            taper = 0.35 + 0.65 * t
        else:
            taper = np.clip(np.minimum(t, 1 - t) * length / 3.0, 0.0, 1.0) * 0.5 + 0.5
        rho = np.sqrt(spec.area_frac) * rad * taper
        for j, (p, d) in enumerate(zip(pts, dirs)):
            u, v = _perp_basis(d)
            ang = spec.angle + spec.drift * t[j]
            q = p + (rad[j] - rho[j]) * (math.cos(ang) * u + math.sin(ang) * v)
            dist = np.sqrt(np.sum((grid - q.astype(np.float32)) ** 2, axis=1))
            occ = np.maximum(occ, np.clip(rho[j] - dist + 0.5, 0.0, 1.0))
    occ = occ.reshape(msub.shape) * msub
    if occ.sum() < 2:
        return None
    full = np.zeros(src.mask.shape, np.float32)
    full[sl] = occ
    return Defect(spec, full, pts, rad, float(length))


def insert_defects(src: Source, hu: np.ndarray, defects: list[Defect]) -> np.ndarray:
    """``hu`` (the contrast-rescaled source) with the defects added: G_sigma * (D * (hu_defect - lumen))."""
    if not defects:
        return hu
    lumen = norm_conv(hu, src.mask, 2.0, float(hu[src.mask].mean()))
    change = np.zeros(hu.shape, np.float32)
    cover = np.zeros(hu.shape, np.float32)
    for df in defects:  # overlapping defects: the later one wins where they overlap (one object, one HU)
        change += df.occupancy * (1 - cover) * (np.float32(df.spec.hu) - lumen)
        cover = np.maximum(cover, df.occupancy)
    return (hu + ndi.gaussian_filter(change, src.edge_sigma)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ scan
