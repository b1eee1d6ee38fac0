"""Static tissue for one clip: a backscatter map (skin, fat with septa, fasciae, muscle with striations,
perivascular tissue, bone with shadow) turned into B-mode envelope by a speckle model: complex Gaussian
scatterers weighted by sqrt(backscatter), plus a coherent (specular) part for fasciae and bone, convolved with
an anisotropic PSF (axial shorter than lateral) whose lateral width grows away from the focal depth.
Everything is on a canvas a little larger than the image so the per-frame warp never reads outside it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.second_renderer.us_params import Scene


@dataclass
class Tissue:
    env: np.ndarray  # (Hc, Wc) float32 tissue envelope (E[env^2] = backscatter)
    vspeckle: np.ndarray  # (Hc, Wc) float32 unit-power speckle for vessel walls and clot
    hetero: np.ndarray  # (Hc, Wc) float32 smooth echo heterogeneity around 1 (clot texture)
    mx: int  # canvas column of image column 0
    level_near_vein: float  # rms envelope of the tissue around the vein (isoechoic reference)
    level_near_artery: float


def canvas_margins(scene: Scene) -> tuple[int, int]:
    mm = 1.0 / scene.px_mm
    return int(1.5 * mm + 8), int(7.0 * mm + 10)  # side, bottom


def _gauss_blur(img: np.ndarray, sx: float, sy: float) -> np.ndarray:
    kx = 2 * int(np.ceil(3.5 * max(sx, 0.3))) + 1
    ky = 2 * int(np.ceil(3.5 * max(sy, 0.3))) + 1
    return cv2.GaussianBlur(img, (kx, ky), sigmaX=max(sx, 0.3), sigmaY=max(sy, 0.3), borderType=cv2.BORDER_REFLECT)


def _kernel_norm(sx: float, sy: float) -> float:
    kx = cv2.getGaussianKernel(2 * int(np.ceil(3.5 * max(sx, 0.3))) + 1, max(sx, 0.3))
    ky = cv2.getGaussianKernel(2 * int(np.ceil(3.5 * max(sy, 0.3))) + 1, max(sy, 0.3))
    return float(np.sqrt((kx ** 2).sum() * (ky ** 2).sum()))


def smooth_noise(rng, shape, sigma_px: float, sy_px: float | None = None) -> np.ndarray:
    """Zero-mean unit-std smooth Gaussian field."""
    n = rng.standard_normal(shape).astype(np.float32)
    f = _gauss_blur(n, sigma_px, sigma_px if sy_px is None else sy_px)
    return (f - f.mean()) / (f.std() + 1e-6)


def curve(rng, xs: np.ndarray, y0: float, amp: float, scale: float) -> np.ndarray:
    """A smooth wavy depth profile y(x) around y0."""
    y = np.full(xs.shape, y0, dtype=np.float64)
    for _ in range(3):
        lam = scale * rng.uniform(0.5, 2.0)
        y += amp * rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * xs / lam + rng.uniform(0, 2 * np.pi))
    return y


def striations(rng, shape, angle: float, long_px: float, short_px: float, density: float) -> np.ndarray:
    """Sparse short bright streaks along ``angle`` (muscle fascicles / fibro-fatty septa), >= 0."""
    n = rng.standard_normal(shape).astype(np.float32)
    half = int(np.ceil(3 * long_px))
    ax = np.arange(-half, half + 1, dtype=np.float32)
    X, Y = np.meshgrid(ax, ax)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * X + s * Y, -s * X + c * Y
    k = np.exp(-0.5 * ((u / long_px) ** 2 + (v / max(short_px, 0.5)) ** 2)).astype(np.float32)
    f = cv2.filter2D(n, -1, k / np.sqrt((k ** 2).sum()), borderType=cv2.BORDER_REFLECT)
    thr = 2.4 - 1.6 * density
    return np.clip(f - thr, 0, None) ** 1.5


def _lines(canvas_shape, polylines, widths, values) -> np.ndarray:
    """Sum of anti-aliased polylines, each with its own value (float map)."""
    out = np.zeros(canvas_shape, np.float32)
    tmp = np.zeros(canvas_shape, np.uint8)
    for pts, wdt, val in zip(polylines, widths, values):
        tmp[:] = 0
        cv2.polylines(tmp, [np.round(pts * 16).astype(np.int32)], False, 255, max(1, int(round(wdt))), cv2.LINE_AA, 4)
        out += tmp.astype(np.float32) * (val / 255.0)
    return out


def build_tissue(scene: Scene) -> Tissue:
    rng = np.random.default_rng([scene.seed, 1])
    mm = 1.0 / scene.px_mm
    _, _, rw, rh = scene.region
    mx, mb = canvas_margins(scene)
    Hc, Wc = rh + mb, rw + 2 * mx
    xs = np.arange(Wc, dtype=np.float64) - mx  # image columns
    ys = np.arange(Hc, dtype=np.float32)[:, None]
    sigma = np.zeros((Hc, Wc), np.float32)  # diffuse backscatter
    coh = np.zeros((Hc, Wc), np.float32)  # coherent (specular) amplitude

    # interfaces
    skin = curve(rng, xs, scene.skin_px, 0.15 * mm, 25 * mm)
    art, vein = scene.artery, scene.vein
    vtop = float(vein["rest"][:, 1].min())
    atop = art["cy"] - art["r"] * art["aspect"] - art["wall"]
    room = min(vtop, atop) - scene.fascia_y
    fascia = curve(rng, xs, scene.fascia_y, min(0.8 * mm, 0.3 * room), 30 * mm)
    below_skin = ys >= skin[None, :]
    below_fascia = ys >= fascia[None, :]

    # dermis, with the bright probe/skin interface at the very top
    sig_derm = rng.uniform(0.5, 1.4)
    sigma += np.where(below_skin, 0, sig_derm).astype(np.float32)
    top_line = rng.uniform(4.0, 8.0)
    coh += (top_line * np.exp(-0.5 * (ys / max(0.6, 0.12 * mm)) ** 2)).astype(np.float32)

    # subcutaneous fat: dark lobules separated by echogenic septa
    sig_fat = rng.uniform(0.05, 0.16)
    lob = np.exp(0.7 * smooth_noise(rng, (Hc, Wc), 1.6 * mm, 0.9 * mm))
    fat = below_skin & ~below_fascia
    sigma += np.where(fat, sig_fat * lob, 0).astype(np.float32)
    polys, widths, vals = [], [], []
    for _ in range(int(rng.integers(6, 18))):
        y0 = rng.uniform(scene.skin_px + 0.5 * mm, max(scene.fascia_y - 0.5 * mm, scene.skin_px + mm))
        x0 = rng.uniform(-5 * mm, rw)
        length = rng.uniform(3, 15) * mm
        xx = np.linspace(x0, x0 + length, 40)
        yy = y0 + rng.uniform(-0.35, 0.35) * (xx - x0) + 0.4 * mm * np.sin((xx - x0) / (rng.uniform(2, 6) * mm))
        polys.append(np.stack([xx + mx, yy], 1))
        widths.append(rng.uniform(0.12, 0.3) * mm)
        vals.append(rng.uniform(0.8, 6.0))
    # superficial fascia: one or two long bright wavy lines in the fat
    for _ in range(int(rng.integers(0, 3))):
        frac = rng.uniform(0.3, 0.75)
        yy = curve(rng, xs, scene.skin_px + frac * (scene.fascia_y - scene.skin_px), 0.6 * mm, 20 * mm)
        polys.append(np.stack([xs + mx, yy], 1))
        widths.append(rng.uniform(0.2, 0.4) * mm)
        vals.append(rng.uniform(2.0, 8.0))
    sep = _lines((Hc, Wc), polys, widths, vals)
    sigma += sep * np.exp(1.1 * smooth_noise(rng, (Hc, Wc), 2.5 * mm, 1.5 * mm) - 0.6)  # septa fade in and out

    # deep tissue: muscle with striations in two compartments
    sig_mus = rng.uniform(0.06, 0.2)
    part = smooth_noise(rng, (Hc, Wc), 8 * mm) > rng.uniform(-0.5, 0.5)
    st = np.where(part, striations(rng, (Hc, Wc), rng.uniform(-0.5, 0.5), rng.uniform(0.7, 2.0) * mm, 0.12 * mm, rng.uniform(0.2, 0.7)),
                  striations(rng, (Hc, Wc), rng.uniform(-0.6, 0.6), rng.uniform(0.7, 2.0) * mm, 0.12 * mm, rng.uniform(0.2, 0.7)))
    mus = sig_mus * (1.0 + rng.uniform(6.0, 20.0) * st) * np.exp(0.45 * smooth_noise(rng, (Hc, Wc), 2 * mm))
    sigma += np.where(below_fascia, mus, 0).astype(np.float32)

    # perivascular tissue (femoral sheath / popliteal fat): brighter, mottled, around the vessel pair
    vx = np.concatenate([vein["rest"][:, 0], [art["cx"] - art["r"], art["cx"] + art["r"]]])
    vy = np.concatenate([vein["rest"][:, 1], [art["cy"] - art["r"], art["cy"] + art["r"]]])
    pcx, pcy = 0.5 * (vx.min() + vx.max()) + mx, 0.5 * (vy.min() + vy.max())
    prx = 0.5 * (vx.max() - vx.min()) + rng.uniform(2.5, 8) * mm
    pry = 0.5 * (vy.max() - vy.min()) + rng.uniform(2, 5) * mm
    X = np.arange(Wc, dtype=np.float32)[None, :]
    rr = ((X - pcx) / prx) ** 2 + ((ys - pcy) / pry) ** 2
    rr = rr * np.exp(0.25 * smooth_noise(rng, (Hc, Wc), 4 * mm))
    pv_w = np.clip(1.5 - rr, 0, 1) * below_fascia
    sig_pv = rng.uniform(0.35, 1.2) if scene.site == "popliteal" else rng.uniform(0.3, 0.9)
    mott = np.exp(0.6 * smooth_noise(rng, (Hc, Wc), 0.8 * mm, 0.5 * mm))
    stri = striations(rng, (Hc, Wc), rng.uniform(-0.3, 0.3), 1.0 * mm, 0.12 * mm, 0.5)
    sigma = sigma * (1 - pv_w) + pv_w * sig_pv * mott * (1.0 + 3.0 * stri)

    # fasciae: deep fascia over the vessels, intermuscular septa below them (bright, partly specular)
    polys, widths, vals = [], [], []
    fth = rng.uniform(0.2, 0.45) * mm
    fval = rng.uniform(10.0, 40.0)
    polys.append(np.stack([xs + mx, fascia], 1))
    widths.append(fth)
    vals.append(fval)
    if rng.random() < 0.5:
        polys.append(np.stack([xs + mx, fascia + rng.uniform(0.6, 1.2) * mm], 1))
        widths.append(0.6 * fth)
        vals.append(0.4 * fval)
    deep_top = max(vy.max() + rng.uniform(1.5, 5) * mm, scene.fascia_y + 2 * mm)
    for _ in range(int(rng.integers(1, 4))):
        y0 = rng.uniform(deep_top, deep_top + 15 * mm)
        x0, x1 = rng.uniform(-0.2, 0.5) * rw, rng.uniform(0.5, 1.2) * rw
        xx = np.linspace(x0, x1, 60)
        bend = rng.uniform(-0.25, 0.25)
        yy = y0 + bend * (xx - 0.5 * (x0 + x1)) + 0.6 * mm * np.sin(xx / (rng.uniform(5, 12) * mm) + rng.uniform(0, 6))
        polys.append(np.stack([xx + mx, yy], 1))
        widths.append(rng.uniform(0.2, 0.45) * mm)
        vals.append(rng.uniform(3.0, 15.0))
    lines = _lines((Hc, Wc), polys, widths, vals)
    modul = np.exp(0.8 * smooth_noise(rng, (Hc, Wc), 4 * mm, 2 * mm) - 0.3)
    lines *= modul
    sigma += 0.5 * lines
    coh += np.sqrt(0.5 * lines)

    # bone: bright curved cortex with an acoustic shadow
    if scene.bone_y is not None:
        xc = rng.uniform(0.2, 0.8) * rw
        yb = scene.bone_y + rng.uniform(0.002, 0.012) * (xs - xc) ** 2 / mm + 0.3 * mm * np.sin(xs / (7 * mm))
        cortex = _lines((Hc, Wc), [np.stack([xs + mx, yb], 1)], [rng.uniform(0.35, 0.8) * mm], [1.0])
        below = ys > (yb[None, :] + 0.5 * mm)
        shadow = np.where(below, 0.02 + 0.05 * np.exp(-(ys - yb[None, :]) / (3 * mm)), 1.0).astype(np.float32)
        sigma *= shadow
        coh *= shadow
        cortex *= np.exp(0.5 * smooth_noise(rng, (Hc, Wc), 3 * mm))
        cv = rng.uniform(60.0, 200.0)
        sigma += 0.3 * cv * cortex
        coh += np.sqrt(cv) * cortex

    # slow echogenicity drift across the image (beam / tissue inhomogeneity), +-2 dB
    sigma *= 10 ** (0.1 * rng.uniform(0.5, 2.0) * smooth_noise(rng, (Hc, Wc), 10 * mm))
    sigma = np.clip(sigma, 1e-5, None).astype(np.float32)

    env = speckle(rng, scene, sigma, coh)
    vsp = speckle(rng, scene, np.ones((Hc, Wc), np.float32), None)
    hetero = np.exp(0.45 * smooth_noise(rng, (Hc, Wc), 0.7 * mm, 0.5 * mm)).astype(np.float32)
    hetero /= hetero.mean()

    def ring_level(x0, x1, y0, y1):
        x0, x1 = int(max(0, x0 + mx)), int(min(Wc, x1 + mx))
        y0, y1 = int(max(0, y0)), int(min(Hc, y1))
        return float(np.sqrt(np.mean(sigma[y0:y1, x0:x1]))) if x1 > x0 and y1 > y0 else 0.5

    vr = vein["rest"]
    pad = 3 * mm
    lv = ring_level(vr[:, 0].min() - pad, vr[:, 0].max() + pad, vr[:, 1].min() - pad, vr[:, 1].max() + pad)
    la = ring_level(art["cx"] - art["r"] - pad, art["cx"] + art["r"] + pad, art["cy"] - art["r"] - pad, art["cy"] + art["r"] + pad)
    return Tissue(env=env, vspeckle=vsp, hetero=hetero, mx=mx, level_near_vein=lv, level_near_artery=la)


def speckle(rng, scene: Scene, sigma: np.ndarray, coh: np.ndarray | None) -> np.ndarray:
    """Envelope of PSF * (complex Gaussian scatterers * sqrt(sigma) + coherent part), lateral PSF width
    blended between its in-focus and out-of-focus values by depth."""
    p = scene.preset
    ax = p["psf_axial_mm"] / scene.px_mm
    lat = p["psf_lateral_mm"] / scene.px_mm
    far = lat * p["psf_far_factor"]
    amp = np.sqrt(sigma)
    h = sigma.shape[0]
    focus = p["focus_frac"] * scene.region[3]
    rows = np.arange(h, dtype=np.float32)
    alpha = np.clip(np.abs(rows - focus) / (0.45 * scene.region[3]), 0, 1)[:, None] ** 1.3
    # the blend of two correlated fields loses a little power mid-way: restore it
    loss = np.sqrt((1 - alpha) ** 2 + alpha ** 2 + 2 * alpha * (1 - alpha) * 0.8)
    coh_b = None
    if coh is not None:
        coh_b = [_gauss_blur(coh, sx, ax) for sx in (lat, far)]
    looks = int(p.get("compound_looks", 1))
    inten = np.zeros(sigma.shape, np.float32)
    for _ in range(looks):  # spatial compounding: average the intensity of independent looks
        re = rng.standard_normal(sigma.shape).astype(np.float32) * amp * np.float32(np.sqrt(0.5))
        im = rng.standard_normal(sigma.shape).astype(np.float32) * amp * np.float32(np.sqrt(0.5))
        out_re = np.zeros_like(re)
        out_im = np.zeros_like(im)
        for j, (wgt, sx) in enumerate(((1.0 - alpha, lat), (alpha, far))):
            nrm = _kernel_norm(sx, ax)
            r = _gauss_blur(re, sx, ax) / nrm
            if coh_b is not None:
                r += coh_b[j]
            out_re += wgt * r
            out_im += wgt * (_gauss_blur(im, sx, ax) / nrm)
        inten += out_re ** 2 + out_im ** 2
    return (np.sqrt(inten / looks) / loss).astype(np.float32)
