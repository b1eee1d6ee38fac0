"""B-mode rendering of the phantom's ultrasound image rectangle (numpy + OpenCV, float32 internally).

Model: a smooth reflectivity map of the tissue layers (skin, subcutaneous fat with septa, fascia
lines, perivascular tissue, striated muscle) is multiplied once per clip by fully developed speckle
(magnitude of laterally elongated complex noise) in *tissue* coordinates on a canvas larger than the
image. Each frame warps that canvas with the probe-motion affine map, blends in fresh speckle (partial
decorrelation), draws the vessels (anechoic lumens, echogenic walls, clot, posterior enhancement,
edge shadows), applies a small anisotropic PSF blur, depth attenuation with partial TGC, additive
electronic noise and log compression to uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import ClipParams, VesselState, tissue_to_image, vessels_at

TISSUE_REF = 0.6  # reflectivity that maps to the display reference grey
POOL_PAD = 24  # px of extra fresh-noise pool around the image, for random per-frame windows


@dataclass(frozen=True)
class Tissue:
    """Static per-clip fields. echo, tex: (Hc, Wc) float32 canvases in tissue coordinates (image px +
    margin): tissue echo (reflectivity x speckle) and the texture of lumens/clot/walls (heterogeneity x
    speckle). mix_pool, noise_pool: (h + 2*POOL_PAD, w + 2*POOL_PAD) float32 fresh-speckle fields already
    scaled as per-frame decorrelation factor (mean 1) and as additive electronic noise. depth_gain: (h, 1)
    float32 attenuation x partial TGC x near-field factor. Display grey = lut_scale * ln(I) + lut_offset,
    with I clamped below at floor (grey 0)."""

    echo: np.ndarray
    tex: np.ndarray
    mix_pool: np.ndarray
    noise_pool: np.ndarray
    margin: int
    depth_gain: np.ndarray
    lut_scale: float
    lut_offset: float
    floor: float


def canvas_margin(w: int, h: int) -> int:
    """Margin (px) of the tissue canvas around the image, enough for drift, tilt and compression."""
    return int(math.ceil(0.05 * w + 0.09 * h)) + 6


def speckle(rng: np.random.Generator, shape: tuple[int, int], sx: float, sy: float) -> np.ndarray:
    """(H, W) float32 Rayleigh-like speckle with mean 1: magnitude of complex noise blurred with a
    Gaussian of sigma sx (lateral, px) and sy (axial, px), so grains are elongated laterally."""
    re = rng.random(shape, dtype=np.float32) - 0.5
    im = rng.random(shape, dtype=np.float32) - 0.5
    re = cv2.GaussianBlur(re, (0, 0), sigmaX=sx, sigmaY=sy)
    im = cv2.GaussianBlur(im, (0, 0), sigmaX=sx, sigmaY=sy)
    mag = cv2.magnitude(re, im)
    return mag * np.float32(1.0 / max(float(mag.mean()), 1e-9))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int, octave: int = 1) -> np.ndarray:
    """(H, W) float32 smooth noise, mean ~0.5, features about ``cell`` px wide; ``octave`` > 1 adds a
    coarser layer ``octave`` times wider (built on the small grid, so one full-size resize only)."""
    gh, gw = max(2, shape[0] // cell + 2), max(2, shape[1] // cell + 2)
    small = rng.random((gh, gw), dtype=np.float32)
    if octave > 1:
        coarse = rng.random((max(2, gh // octave + 2), max(2, gw // octave + 2)), dtype=np.float32)
        small = 0.4 * small + 0.6 * cv2.resize(coarse, (gw, gh), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _curve(rng: np.random.Generator, y0: float, wc: int, h: int) -> np.ndarray:
    """(Wc,) float32 depth (canvas px) of a slightly curved, gently sloped interface around y0."""
    x = np.arange(wc, dtype=np.float32)
    amp = rng.uniform(0.005, 0.025) * h
    period = rng.uniform(0.8, 2.5) * wc
    slope = rng.uniform(-0.05, 0.05)
    return (y0 + amp * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi)) + slope * (x - wc / 2)).astype(np.float32)


def _draw_streaks(layer: np.ndarray, rng: np.random.Generator, n: int, y_lo: np.ndarray, y_hi: np.ndarray,
                  angle_deg: float, spread_deg: float, length: tuple[float, float], level: tuple[float, float]) -> None:
    """Draw n thin random line segments (septa, muscle fibres) into layer (H, W) float32, centres between
    the depth curves y_lo and y_hi (both (W,)); drawn in 6 brightness groups (one cv2.polylines call each)."""
    if n <= 0:
        return
    wid = layer.shape[1]
    xs = rng.uniform(0, wid - 1, n)
    col = xs.astype(np.int64)
    ys = y_lo[col] + rng.random(n) * np.maximum(y_hi[col] - y_lo[col], 0)
    ang = np.radians(angle_deg + rng.uniform(-spread_deg, spread_deg, n))
    half = rng.uniform(*length, n) / 2
    d = np.stack([half * np.cos(ang), half * np.sin(ang)], 1)
    seg = np.stack([np.stack([xs, ys], 1) - d, np.stack([xs, ys], 1) + d], 1).round().astype(np.int32)
    group = rng.integers(0, 6, n)
    for g, v in enumerate(np.linspace(*level, 6)):
        pts = seg[group == g]
        if len(pts):
            cv2.polylines(layer, list(pts), False, float(v), 1, cv2.LINE_8)


def reflectivity(P: ClipParams, rng: np.random.Generator, hc: int, wc: int, m: int) -> np.ndarray:
    """(Hc, Wc) float32 tissue reflectivity on the canvas (tissue coordinates): hypoechoic fat with bright
    septa above the first fascia, echogenic perivascular tissue around the vessels, striated muscle below,
    bright curved fascia lines, lobular and large-scale modulation."""
    h = P.img_h
    rows = np.arange(hc, dtype=np.float32)[:, None]
    f1 = _curve(rng, P.fascia1_y + m, wc, h)
    mus = _curve(rng, (P.fascia2_y if P.n_fascia >= 2 else P.muscle_top_y) + m, wc, h)
    top, bottom = np.zeros(wc, np.float32), np.full(wc, hc, np.float32)
    fat = (rows < f1[None, :]).astype(np.float32)
    muscle = (rows > mus[None, :]).astype(np.float32)
    R = P.sheath_level + (P.fat_level - P.sheath_level) * fat + (P.muscle_level - P.sheath_level) * muscle
    streaks = np.zeros((hc, wc), np.float32)
    sg, mg = P.streak_gain, P.muscle_streak_gain
    _draw_streaks(streaks, rng, int(wc * float(np.mean(f1)) / 900), top, f1, 0.0, 35.0, (8, 0.12 * wc),
                  (0.3 * sg, 1.3 * sg))
    _draw_streaks(streaks, rng, int(wc * float(np.mean(mus - f1)) / 1500), f1, mus, 0.0, 70.0, (5, 0.05 * wc),
                  (0.2 * sg, 0.8 * sg))
    _draw_streaks(streaks, rng, int(wc * float(np.mean(hc - mus)) / 250), mus, bottom, P.muscle_angle_deg, 5.0,
                  (15, 0.3 * wc), (0.1 * mg, 1.1 * mg))
    depths = [f1, mus] if P.n_fascia >= 2 else [f1]
    if P.n_fascia >= 3:
        depths.append(_curve(rng, P.fascia0_y + m, wc, h))
    xs = np.arange(wc, dtype=np.int32)
    for curve in depths:
        pts = np.stack([xs, np.round(curve).astype(np.int32)], 1)[None]
        cv2.polylines(streaks, pts, False, float(P.fascia_gain * rng.uniform(0.7, 1.0)), int(rng.integers(1, 3)))
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=1.2, sigmaY=0.6)
    mod = _smooth_noise(rng, (hc, wc), max(6, h // 25), octave=6)
    R = (R + streaks) * (np.float32(0.45) + np.float32(1.1) * mod)
    return np.maximum(R, np.float32(0.02))


def build_tissue(P: ClipParams) -> Tissue:
    """Static per-clip fields (see :class:`Tissue`), all drawn from ``P.texture_seed``."""
    rng = np.random.default_rng(P.texture_seed)
    w, h = P.img_w, P.img_h
    m = canvas_margin(w, h)
    hc, wc = h + 2 * m, w + 2 * m
    R = reflectivity(P, rng, hc, wc, m)
    S = speckle(rng, (hc, wc), P.speckle_sx, P.speckle_sy)
    het = np.float32(0.3) + np.float32(2.0) * _smooth_noise(rng, (hc, wc), max(4, w // 60)) ** 2
    # fresh-noise pool: the canvas speckle turned by 180 degrees (uncorrelated with it where it is used)
    pool = S[::-1, ::-1][:h + 2 * POOL_PAD, :w + 2 * POOL_PAD]
    mix_pool = pool * np.float32(P.decorrelation) + np.float32(1.0 - P.decorrelation)
    noise_pool = pool * np.float32(P.noise_level * TISSUE_REF)
    y_cm = (np.arange(h, dtype=np.float32) + 0.5) / h * P.depth_cm
    depth_gain = np.exp(-P.atten_np_per_cm * y_cm) * (1.0 + P.near_field_gain * np.exp(-y_cm / 0.35))
    scale = 255.0 / (P.dynamic_range_db / 8.685889)
    ref_grey = 100.0 + 1.2 * (P.gain - 52)
    offset = ref_grey - scale * math.log(TISSUE_REF)
    return Tissue(R * S, het * S, mix_pool, noise_pool, m, depth_gain.astype(np.float32)[:, None], float(scale),
                  float(offset), float(math.exp(-offset / scale)))


class FrameTexture:
    """Lazily warped lumen/clot/wall texture of one frame: only the vessel ROIs are ever warped."""

    def __init__(self, tissue: Tissue, M: np.ndarray, mix: np.ndarray):
        self.tissue, self.M, self.mix = tissue, M, mix

    def roi(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """(y1 - y0, x1 - x0) float32 texture of image pixels [y0:y1, x0:x1]."""
        M = self.M.copy()
        M[:, 2] -= (x0, y0)
        t = cv2.warpAffine(self.tissue.tex, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return t * self.mix[y0:y1, x0:x1]


def _window(pool: np.ndarray, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w) view of a fresh-noise pool at a random offset."""
    oy, ox = rng.integers(0, 2 * POOL_PAD + 1, 2)
    return pool[oy:oy + h, ox:ox + w]


def _roi(v: VesselState, extra: float, h: int, w: int) -> tuple[int, int, int, int]:
    ext = max(v.a, v.b) + extra
    return (max(int(v.cx - ext), 0), max(int(v.cy - ext), 0), min(int(v.cx + ext) + 2, w), min(int(v.cy + ext) + 2, h))


def _posterior(echo: np.ndarray, v: VesselState, P: ClipParams) -> None:
    """Posterior acoustic enhancement below the lumen and faint lateral edge shadows (in place)."""
    h, w = echo.shape
    half = v.a * abs(math.cos(v.angle)) + v.b * abs(math.sin(v.angle))
    x0, x1 = max(int(v.cx - half - 4), 0), min(int(v.cx + half) + 5, w)
    y0 = max(int(v.cy), 0)
    if x0 >= x1 or y0 >= h:
        return
    xn = (np.arange(x0, x1, dtype=np.float32) - v.cx) / max(half, 1.0)
    chord = np.clip(1.0 - xn * xn, 0.0, 1.0) ** 2  # smooth lateral profile of the enhanced band
    below = np.arange(y0, h, dtype=np.float32) - v.cy
    ramp = np.clip(below / max(v.b, 1.0), 0.0, 1.0) * np.exp(-np.maximum(below - v.b, 0) / (P.enhancement_len * v.b_rest))
    gain = P.enhancement * (v.b / v.b_rest) * (1.0 - 0.6 * P.clot_fill if v.clot else 1.0)
    factor = 1.0 + gain * ramp[:, None] * chord[None, :]
    if v.label == 1 and P.edge_shadow > 0:  # refraction shadows below the lateral edges of the artery
        edge = np.exp(-((np.abs(xn) - 1.0) / 0.12) ** 2)
        fade = np.clip(below / max(v.b, 1.0) - 1.0, 0, 1) * np.exp(-np.maximum(below - v.b, 0) / (4.0 * v.b_rest))
        factor *= 1.0 - P.edge_shadow * (fade[:, None] * edge[None, :])
    echo[y0:, x0:x1] *= factor.astype(np.float32)


def draw_vessel(echo: np.ndarray, tex: FrameTexture, mask: np.ndarray, v: VesselState, P: ClipParams) -> None:
    """Draw one vessel into echo (h, w) float32 and its label into mask (h, w) uint8, in place.
    Lumen anechoic (faint texture), wall a bright rim strongest where the beam hits it perpendicularly,
    clot (DVT) a heterogeneous moderately bright region of the lumen; collapsed vein = thin bright line."""
    h, w = echo.shape
    if not v.collapsed:
        _posterior(echo, v, P)
    x0, y0, x1, y1 = _roi(v, 4 * P.wall_px + 4, h, w)
    if x0 >= x1 or y0 >= y1:
        return
    X = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(v.cx)
    Y = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(v.cy)
    c, s = np.float32(math.cos(v.angle)), np.float32(math.sin(v.angle))
    u, vv = X * c + Y * s, Y * c - X * s
    e_roi, t_roi = echo[y0:y1, x0:x1], tex.roi(x0, y0, x1, y1)
    wall = np.float32(v.wall_gain * TISSUE_REF)
    if v.collapsed:
        d2 = np.maximum(np.abs(u) - np.float32(v.a), 0) ** 2 + vv * vv
        e_roi += wall * 1.3 * np.exp(-d2 / np.float32(2 * (0.5 * P.wall_px) ** 2)) * t_roi
        return
    a2, b2 = np.float32(v.a * v.a), np.float32(v.b * v.b)
    f = u * u / a2 + vv * vv / b2 - 1.0
    vein = v.label == 2
    if vein and P.vein_lobe_amp > 0:  # slightly lobulated outline: radius 1 + amp * cos(k * polar angle)
        theta = np.arctan2(vv / np.float32(v.b), u / np.float32(v.a))
        lobe = 1.0 + np.float32(P.vein_lobe_amp) * np.cos(np.float32(P.vein_lobe_k) * theta + np.float32(P.vein_lobe_phase))
        f = (f + 1.0) / (lobe * lobe) - 1.0
    gu, gv = 2 * u / a2, 2 * vv / b2
    gn = np.sqrt(gu * gu + gv * gv) + np.float32(1e-6)
    d = f / gn  # approximate signed distance to the wall (px), negative inside
    ny = (gu * s + gv * c) / gn  # vertical component of the wall normal
    rim = np.exp(-(((d - 0.5 * P.wall_px) / (0.6 * P.wall_px)) ** 2)) * (0.3 + 0.7 * ny * ny)
    e_roi += wall * rim * (0.5 + 0.5 * t_roi)
    inside = f < 0
    lumen = np.float32(P.lumen_level * TISSUE_REF) * t_roi
    if vein and (P.vein_lumen_level >= 0 or P.vein_lumen_contrast != 1.0):  # the vein's own blood echo
        level = P.vein_lumen_level if P.vein_lumen_level >= 0 else P.lumen_level
        blood = np.maximum(np.float32(1.0) + np.float32(P.vein_lumen_contrast) * (t_roi - np.float32(1.0)), 0.0)
        lumen = np.float32(level * TISSUE_REF) * blood
    if v.clot is not None:
        tau, ang, level = v.clot
        proj = (u / np.float32(v.a)) * np.float32(math.cos(ang)) + (vv / np.float32(v.b)) * np.float32(math.sin(ang))
        clot = proj + np.float32(0.25) * (t_roi - 1.0) > tau
        lumen = np.where(clot, np.float32(level * TISSUE_REF) * t_roi, lumen)
    e_roi[inside] = lumen[inside]
    mask[y0:y1, x0:x1][inside] = v.label


def render_image(P: ClipParams, tissue: Tissue, t: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render the ultrasound image at time t (s). Returns (image (h, w) uint8, mask (h, w) uint8 with
    0 background, 1 artery, 2 vein). ``rng`` supplies the per-frame fresh-noise offsets only."""
    h, w = P.img_h, P.img_w
    M = tissue_to_image(P, t, tissue.margin)
    echo = cv2.warpAffine(tissue.echo, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mix = _window(tissue.mix_pool, rng, h, w)
    echo *= mix
    mask = np.zeros((h, w), np.uint8)
    artery, vein = vessels_at(P, t, tissue.margin)
    tex = FrameTexture(tissue, M, mix)
    draw_vessel(echo, tex, mask, vein, P)
    draw_vessel(echo, tex, mask, artery, P)
    echo[:P.skin_px] *= np.float32(P.skin_gain * TISSUE_REF / P.fat_level)
    kx, ky = 2 * math.ceil(2 * P.psf_sx) + 1, 2 * math.ceil(2 * P.psf_sy) + 1
    echo = cv2.GaussianBlur(echo, (kx, ky), sigmaX=P.psf_sx, sigmaY=P.psf_sy)
    echo *= tissue.depth_gain
    echo += _window(tissue.noise_pool, rng, h, w)
    grey = cv2.log(np.maximum(echo, np.float32(tissue.floor), out=echo))
    return cv2.convertScaleAbs(grey, alpha=tissue.lut_scale, beta=tissue.lut_offset), mask
