"""A real volume re-scanned as a CT series: slice thickness (partial volume along z), in-plane pixel size,
flips, noise, and placement in a body or air field (step 4 of :mod:`training.ct.real_lesions`).
Research software, not for diagnostic use."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.ct.phantom import MAX_SLICES
from training.ct.real_source import AIR, SOURCE_MM, THICKNESSES_MM, Source, load_source, rescale_contrast


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


def rescan(vol: np.ndarray, sp: ScanParams, fill: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
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
    return rescan(rescale_contrast(src, sp.contrast_hu), sp, fill, noise)
