"""The real contrast CT crops that lesions are inserted into: where they are, how they are read and reoriented,
their vessel's own edge blur, the usable z-range and the lumen contrast rescale (steps 1-2 of
:mod:`training.ct.real_lesions`). Research software, not for diagnostic use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

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


def norm_conv(values: np.ndarray, weight: np.ndarray, sigma: float, fill: float) -> np.ndarray:
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
    surround = np.clip(norm_conv(hu, tissue, 3.0, 40.0), -100, 120)
    lumen = norm_conv(hu, mask, 2.0, float(hu[mask].mean()))
    near = ndi.binary_dilation(mask, iterations=2) & ~mask
    mask = mask | (near & (ndi.gaussian_filter(hu, 0.5) > (lumen + surround) / 2) & (hu < 1.5 * lumen))
    edt = ndi.distance_transform_edt(mask).astype(np.float32)
    tissue = (~mask) & (hu > -250) & (hu < 250)
    surround = np.clip(norm_conv(hu, tissue, 3.0, 40.0), -100, 120)
    lumen = norm_conv(hu, mask, 2.0, float(hu[mask].mean()))
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
