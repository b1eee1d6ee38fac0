"""Real contrast CT anatomy with inserted filling defects (research software, not for diagnostic use).

Source: ``../shared/data/ct-contrast-vessels/{aorta,pulmonary}/`` (real contrast CT crops, 1.5 mm isotropic, with a
0/1 vessel mask; TotalSegmentator test data, Apache-2.0). They are read in place and never copied.

Per study (one integer seed, deterministic):

1. **Source** (:func:`load_source`, cached): HU and mask reoriented to (z, y, x) = (superior, posterior, patient
   left), i.e. axial slices with row 0 anterior and patient right on the image left. The vessel's own edge blur
   (Gaussian sigma in voxels) is fitted to the HU across the mask edge (:func:`estimate_edge_sigma`). Slices whose
   mask holds a *native* low-density region (>= 20 voxels below 130 HU, >= 2 voxels inside the wall; the aorta crop
   has a mural thrombus / dissection over its lower half) are excluded with a 6 mm margin, so clean copies carry no
   filling defect: the usable z-range is the longest run of slices without one, within 20 mm of the mask.
2. **Contrast** (:func:`rescale_contrast`): the smooth lumen HU is scaled around the local surrounding-tissue level
   so that the lumen mean becomes 150-500 HU; the change is weighted by the mask blurred with the vessel's edge
   blur (a smooth edge, zero away from the vessel) and keeps the voxel noise.
3. **Defects** (:func:`insert_defects`): 1-3 per lesion study. A centreline is tracked through the mask (local PCA
   of mask voxels for the direction, re-centred on the distance-transform ridge) over the asked length (5-40 mm);
   the defect is ``occlusive`` (the whole lumen along that segment) or ``partial`` (an eccentric tube touching the
   wall, 30-80% of the cross-section, shaped ``tube`` / ``blob`` (ellipsoid-like taper) / ``cone``). Its occupancy
   ``D`` is clipped to the mask; the image change is ``G_sigma * (D * (hu_defect - lumen))`` with sigma the vessel's
   own edge blur (partial volume: the convolution of the object change), so the core reads the asked 15-70 HU plus
   the voxel's own noise.
4. **Scan** (:func:`_scan`): re-sliced to thickness 1-5 mm (contiguous slices; each slice is the mean of the
   linearly interpolated volume over its thickness: partial volume along z), resampled in-plane to 0.6-1.0 mm
   (x 512/size), flipped / rotated by 90 deg at random, correlated noise 0-25 HU added, and placed at a random spot
   of a ``size`` x ``size`` field filled with air or a soft-tissue body ellipse (feathered join), inside the
   central 360 mm so the detector's 384 mm field sees it.

The clean copy goes through exactly the same steps with the same draws (only the defect insertion is skipped), so
the clean study is bit-identical to the re-sampled clean volume and differs from the lesion study only around the
defects. Ground truth: one :class:`~training.ct.study.Lesion` per defect with a box on every slice where its
re-sliced occupancy reaches 0.5 (bounding box of those pixels, x1/y1 exclusive); overlapping defects are merged
(``phantom.merge_overlapping``). ``Study.veins`` holds the two largest vessel cross-sections per slice (centre,
radius; for crop sampling).

CLI: ``python -m training.ct.real_lesions --volume aorta|pulmonary --out DIR --studies N --seed S [--size 512]``
writes per seed ``DIR/<volume>-<seed>/`` (lesions) and ``DIR/<volume>-<seed>-clean/`` as DICOM series + NIfTI +
``ground_truth.json`` (``training.ct.phantom_io.write_study``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage as ndi

from training.ct.phantom import MAX_SLICES, merge_overlapping
from training.ct.study import Lesion, Study

SOURCE_MM = 1.5
VOLUMES = {"aorta": ("aorta", "aorta.nii.gz"), "pulmonary": ("pulmonary", "pulmonary_artery.nii.gz")}
THICKNESSES_MM = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
CLEAN_SEED_OFFSET = 1_000_000_000  # the clean copy's Study.seed (distinct DICOM UIDs)
AIR = -1000.0


def data_root() -> Path:
    """``$DVT_SHARED_DATA`` or ``<repo>/../shared/data`` (as the tests locate it)."""
    env = os.environ.get("DVT_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def volume_dir(volume: str, root: Path | None = None) -> Path:
    sub, _ = VOLUMES[volume]
    return (root or data_root()) / "ct-contrast-vessels" / sub


# ------------------------------------------------------------------------------------------------ source
@dataclass
class Source:
    name: str
    hu: np.ndarray  # (z, y, x) float32, 1.5 mm, z ascending = superior
    mask: np.ndarray  # (z, y, x) bool vessel lumen
    edt: np.ndarray  # (z, y, x) float32 distance to the nearest non-mask voxel (voxels)
    ridge: np.ndarray  # (N, 3) int centreline-ish mask voxels (edt local maxima, edt >= 2) in the usable range
    edge_sigma: float  # vessel edge blur, Gaussian sigma in voxels
    surround: np.ndarray  # (z, y, x) float32 local surrounding soft-tissue HU
    lumen: np.ndarray  # (z, y, x) float32 smooth lumen HU (normalised convolution inside the mask)
    lumen_mean: float
    z_range: tuple[int, int]  # usable slices [z0, z1) (no native low-density region inside the mask)


def _read_lps(path: Path) -> np.ndarray:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    ornt = nib.orientations.io_orientation(img.affine)
    tr = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt(("L", "P", "S")))
    data = nib.orientations.apply_orientation(data, tr)
    return np.ascontiguousarray(data.transpose(2, 1, 0))  # [x=L, y=P, z=S] -> (z, y, x)


def _norm_conv(values: np.ndarray, weight: np.ndarray, sigma: float, fill: float) -> np.ndarray:
    w = ndi.gaussian_filter(weight.astype(np.float32), sigma)
    v = ndi.gaussian_filter((values * weight).astype(np.float32), sigma)
    out = np.full(values.shape, fill, np.float32)
    ok = w > 1e-3
    out[ok] = v[ok] / w[ok]
    return out


def estimate_edge_sigma(hu: np.ndarray, mask: np.ndarray, surround: np.ndarray, lumen: np.ndarray) -> float:
    """Gaussian sigma (voxels) of the vessel's edge blur: the sigma for which ``surround + (lumen - surround) *
    G_sigma(mask)`` best fits the HU within 3 voxels of the mask edge (soft-tissue surround only; median abs. error)."""
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    band = (inside <= 3) & (outside <= 3) & (hu > -250) & (hu < 900)
    band &= (surround > -150) & (surround < 150)
    m = mask.astype(np.float32)
    best, best_err = 0.8, np.inf
    for s in np.arange(0.3, 2.01, 0.1):
        model = surround + (lumen - surround) * ndi.gaussian_filter(m, s)
        err = float(np.median(np.abs(model[band] - hu[band])))
        if err < best_err:
            best, best_err = float(s), err
    return round(best, 2)


def load_source(volume: str, root: str | None = None) -> Source:
    """The prepared source volume (cached per volume and data root)."""
    return _load_source(volume, str(Path(root) if root else data_root()))


@lru_cache(maxsize=4)
def _load_source(volume: str, root: str) -> Source:
    d = volume_dir(volume, Path(root))
    hu = _read_lps(d / "ct.nii.gz").astype(np.float32)
    mask = _read_lps(d / VOLUMES[volume][1]) > 0
    # crop to the mask's bounding box + 60 mm in-plane (keeps surroundings; speeds everything up)
    zz, yy, xx = np.nonzero(mask)
    m = int(60 / SOURCE_MM)
    y0, y1 = max(yy.min() - m, 0), min(yy.max() + m + 1, hu.shape[1])
    x0, x1 = max(xx.min() - m, 0), min(xx.max() + m + 1, hu.shape[2])
    hu, mask = hu[:, y0:y1, x0:x1].copy(), mask[:, y0:y1, x0:x1].copy()
    # complete the mask with the bright lumen voxels (within 2 voxels) it misses: the given masks are slightly
    # undersized, and a defect that stopped at them would leave a dotted bright rim no real clot has
    tissue = (~mask) & (hu > -250) & (hu < 250)
    surround = np.clip(_norm_conv(hu, tissue, 3.0, 40.0), -100, 120)
    lumen = _norm_conv(hu, mask, 2.0, float(hu[mask].mean()))
    near = ndi.binary_dilation(mask, iterations=2) & ~mask
    mask = mask | (near & (ndi.gaussian_filter(hu, 0.5) > (lumen + surround) / 2) & (hu < 1.5 * lumen))
    edt = ndi.distance_transform_edt(mask).astype(np.float32)
    tissue = (~mask) & (hu > -250) & (hu < 250)
    surround = np.clip(_norm_conv(hu, tissue, 3.0, 40.0), -100, 120)
    lumen = _norm_conv(hu, mask, 2.0, float(hu[mask].mean()))
    zz, yy, xx = np.nonzero(mask)
    box = tuple(slice(max(a.min() - 5, 0), a.max() + 6) for a in (zz, yy, xx))
    sigma = estimate_edge_sigma(hu[box], mask[box], surround[box], lumen[box])
    # native low-density regions inside the mask (mural thrombus, dissection): excluded from the usable range
    low = (edt >= 2) & (ndi.gaussian_filter(hu, 1.0) < 130)
    lab, n = ndi.label(low)
    bad = np.zeros(hu.shape[0], bool)
    if n:
        sizes = ndi.sum(low, lab, range(1, n + 1))
        for i, s in enumerate(sizes):
            if s >= 20:
                zs = np.nonzero((lab == i + 1).any(axis=(1, 2)))[0]
                bad[max(zs.min() - 4, 0):zs.max() + 5] = True
    has = mask.any(axis=(1, 2))
    mz = np.nonzero(has)[0]
    lo, hi = max(mz.min() - int(20 / SOURCE_MM), 0), min(mz.max() + int(20 / SOURCE_MM) + 1, hu.shape[0])
    best, run = (lo, lo), None
    for z in range(lo, hi + 1):
        ok = z < hi and not bad[z]
        if ok and run is None:
            run = z
        if not ok and run is not None:
            if mask[run:z].sum() > mask[best[0]:best[1]].sum():
                best = (run, z)
            run = None
    z0, z1 = best
    rid = (edt >= 2) & (edt >= ndi.maximum_filter(edt, size=3) - 0.5)
    rid[:z0 + 3] = False
    rid[z1 - 3:] = False
    ridge = np.argwhere(rid)
    usable = mask.copy()
    usable[:z0], usable[z1:] = False, False
    return Source(volume, hu, mask, edt, ridge, sigma, surround, lumen, float(hu[usable].mean()), (int(z0), int(z1)))


# ------------------------------------------------------------------------------------------------ contrast
def rescale_contrast(src: Source, target_mean: float) -> np.ndarray:
    """HU with the lumen mean moved to ``target_mean`` (see the module doc, step 2)."""
    bg = float(np.median(src.surround[src.mask]))
    s = (target_mean - bg) / max(src.lumen_mean - bg, 1.0)
    w = ndi.gaussian_filter(src.mask.astype(np.float32), src.edge_sigma)
    return (src.hu + w * (s - 1.0) * (src.lumen - src.surround)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ defects
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
    lumen = _norm_conv(hu, src.mask, 2.0, float(hu[src.mask].mean()))
    change = np.zeros(hu.shape, np.float32)
    cover = np.zeros(hu.shape, np.float32)
    for df in defects:  # overlapping defects: the later one wins where they overlap (one object, one HU)
        change += df.occupancy * (1 - cover) * (np.float32(df.spec.hu) - lumen)
        cover = np.maximum(cover, df.occupancy)
    return (hu + ndi.gaussian_filter(change, src.edge_sigma)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ scan
def z_weights(n_src: int, dz_src: float, thickness: float, z_start: float, n_out: int) -> np.ndarray:
    """(n_out, n_src) weights: output slice i = mean over [c - t/2, c + t/2] (c = z_start + i*t, source index
    units * dz_src) of the linearly interpolated source."""
    w = np.zeros((n_out, n_src), np.float64)
    sub = max(4, int(round(thickness / 0.25)))
    for i in range(n_out):
        c = z_start + i * thickness
        zs = c - thickness / 2 + (np.arange(sub) + 0.5) * thickness / sub
        f = np.clip(zs / dz_src, 0, n_src - 1)
        k0 = np.floor(f).astype(int)
        k1 = np.minimum(k0 + 1, n_src - 1)
        a = f - k0
        np.add.at(w[i], k0, (1 - a) / sub)
        np.add.at(w[i], k1, a / sub)
    return w


@dataclass
class ScanParams:
    thickness_mm: float
    pixel_mm: float
    contrast_hu: float
    noise_hu: float
    rot90: int
    flip: bool
    body: bool
    body_hu: float
    offset: tuple[int, int]  # top-left of the crop in the field (row, col)
    z_start_mm: float
    n_slices: int
    size: int
    crop_hw: tuple[int, int]  # the re-sampled crop (rows, cols) after the rotation


def sample_scan(src: Source, rng: np.random.Generator, size: int, n_slices: int | None = None,
                thickness_mm: float | None = None) -> ScanParams:
    t = float(thickness_mm or rng.choice(THICKNESSES_MM))
    ps = float(rng.uniform(0.6, 1.0)) * 512.0 / size
    z0, z1 = src.z_range
    span = (z1 - z0) * SOURCE_MM
    n_max = max(1, int(span // t))
    n = int(min(n_slices or n_max, n_max, MAX_SLICES))
    lo, hi = z0 * SOURCE_MM, z0 * SOURCE_MM + max(span - n * t, 0)  # window start range
    if len(src.ridge):  # a short window still crosses the vessel (its centreline voxels)
        r0, r1 = src.ridge[:, 0].min() * SOURCE_MM, src.ridge[:, 0].max() * SOURCE_MM
        lo, hi = max(lo, min(r0 + 6 - n * t, hi)), min(hi, max(r1 - 6, lo))
    z_start = rng.uniform(lo, max(hi, lo)) + t / 2
    contrast = float(rng.uniform(150, 500))
    noise = float(rng.uniform(0, 25))
    k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
    h, w = src.hu.shape[1:]
    ch, cw = int(round(h * SOURCE_MM / ps)), int(round(w * SOURCE_MM / ps))
    if k % 2:
        ch, cw = cw, ch
    lim = min(size, int(360 / ps))  # keep the crop inside the detector's central field of view
    m0 = (size - lim) // 2
    r0 = m0 + int(rng.integers(0, max(lim - ch, 0) + 1)) if ch < lim else (size - ch) // 2
    c0 = m0 + int(rng.integers(0, max(lim - cw, 0) + 1)) if cw < lim else (size - cw) // 2
    return ScanParams(t, ps, contrast, noise, k, flip, bool(rng.random() < 0.7), float(rng.uniform(20, 60)),
                      (r0, c0), float(z_start), n, size, (ch, cw))


def _inplane(vol: np.ndarray, sp: ScanParams, interp=cv2.INTER_LINEAR) -> np.ndarray:
    h, w = vol.shape[1:]
    ch, cw = int(round(h * SOURCE_MM / sp.pixel_mm)), int(round(w * SOURCE_MM / sp.pixel_mm))
    out = np.stack([cv2.resize(s, (cw, ch), interpolation=interp) for s in vol])
    out = np.rot90(out, sp.rot90, axes=(1, 2))
    if sp.flip:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def _place(crop: np.ndarray, sp: ScanParams, fill: np.ndarray, feather: float = 6.0) -> np.ndarray:
    """Put each crop slice into the field at sp.offset (parts outside the field are cut), feathering its border."""
    n, ch, cw = crop.shape
    out = np.repeat(fill[None], n, axis=0)
    r0, c0 = sp.offset
    R0, C0 = max(r0, 0), max(c0, 0)
    R1, C1 = min(r0 + ch, sp.size), min(c0 + cw, sp.size)
    sub = crop[:, R0 - r0:R1 - r0, C0 - c0:C1 - c0]
    yy = np.arange(R0, R1)[:, None] - r0
    xx = np.arange(C0, C1)[None, :] - c0
    edge = np.minimum(np.minimum(yy, ch - 1 - yy), np.minimum(xx, cw - 1 - xx)).astype(np.float32)
    a = np.clip(edge / feather, 0, 1)
    out[:, R0:R1, C0:C1] = a * sub + (1 - a) * out[:, R0:R1, C0:C1]
    return out


def _field(sp: ScanParams, rng: np.random.Generator) -> np.ndarray:
    f = np.full((sp.size, sp.size), AIR, np.float32)
    if sp.body:
        r0, c0 = sp.offset
        ch, cw = sp.crop_hw
        cy, cx = r0 + ch / 2, c0 + cw / 2
        ry, rx = ch / 2 * rng.uniform(1.15, 1.6), cw / 2 * rng.uniform(1.15, 1.6)
        yy, xx = np.mgrid[0:sp.size, 0:sp.size]
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        fat = 1.0 - rng.uniform(0.1, 0.25)
        f[d <= 1.0] = -100.0
        f[d <= fat ** 2] = sp.body_hu
    return f


def _scan(vol: np.ndarray, sp: ScanParams, fill: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    wz = z_weights(vol.shape[0], SOURCE_MM, sp.thickness_mm, sp.z_start_mm, sp.n_slices)
    zs = (wz @ vol.reshape(vol.shape[0], -1)).astype(np.float32).reshape(sp.n_slices, *vol.shape[1:])
    out = _place(_inplane(zs, sp), sp, fill)
    if noise is not None:
        out = out + noise
    return out.astype(np.float32)


# ------------------------------------------------------------------------------------------------ studies
def field_and_noise(sp: ScanParams, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The study's field (air or a body ellipse) and its correlated noise (same for the lesion and clean copy)."""
    frng = np.random.default_rng([seed, 0xF1E])
    fill = _field(sp, frng)
    if sp.noise_hu <= 0:
        return fill, None
    nz = frng.standard_normal((sp.n_slices, sp.size, sp.size)).astype(np.float32)
    nz = np.stack([cv2.GaussianBlur(s, (0, 0), 0.7) for s in nz])
    nz *= sp.noise_hu / max(float(nz.std()), 1e-6)
    return fill, nz


def resample_clean(volume: str, seed: int, sp: ScanParams, root: str | None = None) -> np.ndarray:
    """The clean source volume, contrast-rescaled and scanned with ``sp`` (what the clean copy must equal)."""
    src = load_source(volume, root)
    fill, noise = field_and_noise(sp, seed)
    return _scan(rescale_contrast(src, sp.contrast_hu), sp, fill, noise)


@dataclass
class RealPair:
    lesion: Study
    clean: Study
    scan: ScanParams
    defects: list[Defect]
    occupancy: np.ndarray  # (n, H, W) float32 re-sliced occupancy of all defects (max), for checks
    vessel: np.ndarray  # (n, H, W) float32 re-sliced vessel mask
    clean_source: np.ndarray = field(repr=False, default=None)  # the contrast-rescaled source (z, y, x)


def _veins(vessel: np.ndarray) -> list[dict]:
    out = []
    for s in vessel:
        m = (s >= 0.5).astype(np.uint8)
        n, lab, stats, cent = cv2.connectedComponentsWithStats(m, connectivity=8)
        comps = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])[:2]
        per = [(float(cent[i][0]), float(cent[i][1]), float(math.sqrt(stats[i, cv2.CC_STAT_AREA] / math.pi))) for i in comps]
        if not per:
            per = [(s.shape[1] / 2, s.shape[0] / 2, 5.0)]
        if len(per) == 1:
            per.append(per[0])
        out.append({-1: per[0], 1: per[1]})
    return out


def make_pair(volume: str, seed: int, size: int = 512, n_slices: int | None = None,
              thickness_mm: float | None = None, n_defects: int | None = None,
              specs: list[DefectSpec] | None = None, root: str | None = None) -> RealPair:
    """The lesion study and its clean copy for ``seed`` (deterministic; see the module doc)."""
    src = load_source(volume, root)
    rng = np.random.default_rng([seed, 0xC7, sorted(VOLUMES).index(volume)])
    sp = sample_scan(src, rng, size, n_slices, thickness_mm)
    base = rescale_contrast(src, sp.contrast_hu)
    # defects drawn on the slab the study covers (centre inside it)
    zlo, zhi = (sp.z_start_mm - sp.thickness_mm / 2) / SOURCE_MM, (sp.z_start_mm + (sp.n_slices - 0.5) * sp.thickness_mm) / SOURCE_MM
    nd = int(rng.integers(1, 4) if n_defects is None else n_defects)
    specs = list(specs) if specs is not None else [sample_spec(rng) for _ in range(nd)]
    ridge = src.ridge[(src.ridge[:, 0] >= zlo + 1) & (src.ridge[:, 0] <= zhi - 1)]
    defects = []
    for spec in specs:
        for _ in range(8):  # a start whose vessel gives a segment long enough
            if spec.start is None and not len(ridge):
                break
            start = tuple(int(v) for v in ridge[rng.integers(len(ridge))])
            sp_ = spec if spec.start is not None else DefectSpec(**{**spec.__dict__, "start": start})
            df = make_defect(src, sp_, rng)
            if df is not None:
                defects.append(df)
                break
            if spec.start is not None:
                break
    lesioned = insert_defects(src, base, defects)
    fill, noise = field_and_noise(sp, seed)
    clean_hu = _scan(base, sp, fill, noise)
    les_hu = _scan(lesioned, sp, fill, noise)
    empty = np.zeros((sp.size, sp.size), np.float32)
    vessel = _scan(src.mask.astype(np.float32), sp, empty, None)
    occs = [_scan(df.occupancy, sp, empty, None) for df in defects]
    positions = sp.z_start_mm + np.arange(sp.n_slices) * sp.thickness_mm
    thrombi = []
    for df, occ in zip(defects, occs):
        boxes = {}
        for i, s in enumerate(occ):
            m = s >= 0.5
            if m.sum() >= 2:
                rows, cols = np.nonzero(m)
                boxes[i] = [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]
        if boxes:
            zc = df.centreline[:, 0] * SOURCE_MM
            thrombi.append(Lesion(df.spec.kind, 1, (float(zc.min()), float(zc.max())),
                                  {"hu": round(df.spec.hu, 1), "length_mm": round(df.length_mm, 1),
                                   "asked_length_mm": round(df.spec.length_mm, 1), "area_frac": round(df.spec.area_frac, 2),
                                   "shape": df.spec.shape, "source": volume}, boxes))
    thrombi = merge_overlapping(thrombi)
    veins = _veins(vessel)
    ps = (sp.pixel_mm, sp.pixel_mm)
    occ_all = np.max(np.stack(occs), axis=0) if occs else np.zeros_like(vessel)
    lesion = Study(seed, les_hu, positions.astype(np.float64), ps, sp.thickness_mm, thrombi, [], veins)
    clean = Study(seed + CLEAN_SEED_OFFSET, clean_hu, positions.astype(np.float64), ps, sp.thickness_mm, [], [], veins)
    return RealPair(lesion, clean, sp, defects, occ_all, vessel, base)


def make_study(volume: str, seed: int, size: int = 512, clean: bool = False, **kw) -> Study:
    pair = make_pair(volume, seed, size, **kw)
    return pair.clean if clean else pair.lesion


def main(argv: list[str] | None = None) -> int:
    from training.ct.phantom_io import write_study

    ap = argparse.ArgumentParser(description="Real contrast CT crops with inserted filling defects, as DICOM series "
                                             "(lesion + clean copy per seed; not for diagnostic use).")
    ap.add_argument("--volume", required=True, choices=sorted(VOLUMES))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="study i uses seed + i")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--no-nifti", action="store_true")
    ap.add_argument("--no-clean", action="store_true", help="skip the clean copies")
    ap.add_argument("--n-slices", type=int, default=None, help="at most this many slices (default: the usable range)")
    ap.add_argument("--thickness", type=float, default=None, help="slice thickness in mm (default: drawn, 1-5 mm)")
    args = ap.parse_args(argv)
    t00 = time.perf_counter()
    src = load_source(args.volume)
    print(f"{args.volume}: source {src.hu.shape} voxels at {SOURCE_MM} mm, usable slices {src.z_range}, lumen mean "
          f"{src.lumen_mean:.0f} HU, edge blur sigma {src.edge_sigma} voxels ({time.perf_counter() - t00:.1f} s)", flush=True)
    for i in range(args.studies):
        t0 = time.perf_counter()
        seed = args.seed + i
        pair = make_pair(args.volume, seed, size=args.size, n_slices=args.n_slices, thickness_mm=args.thickness)
        out = write_study(pair.lesion, args.out / f"{args.volume}-{seed:06d}", nifti=not args.no_nifti)
        if not args.no_clean:
            write_study(pair.clean, args.out / f"{args.volume}-{seed:06d}-clean", nifti=not args.no_nifti)
        sp = pair.scan
        desc = ", ".join(f"{t.kind} {t.params.get('hu', 0):.0f} HU" for t in pair.lesion.thrombi)
        print(f"[{i + 1}/{args.studies}] {out}: {sp.n_slices} slices x {sp.thickness_mm:g} mm, {sp.pixel_mm:.2f} mm px, "
              f"lumen {sp.contrast_hu:.0f} HU, noise {sp.noise_hu:.0f} HU, {len(pair.lesion.thrombi)} defects "
              f"({desc}) "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
