"""Draw everything random about one clip (scanner preset, screen layout, anatomy, vessels, clot, manoeuvre)
from its seed. Rendering (us_clips) only executes what is drawn here, so labels can be read off cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.second_renderer import us_geometry as G

SCREENS = ((640, 480), (800, 600))
FPS_CHOICES = (15.0, 20.0, 25.0, 30.0)
STYLES = ("single", "jab", "double", "ramp")


@dataclass
class Scene:
    seed: int
    site: str
    dvt: bool
    clot: str
    clot_echo: float | None
    clot_fraction: float
    pressure: str
    style: str
    fps: float
    t: np.ndarray  # frame times (s)
    q: np.ndarray  # normalised pressure 0..1 per frame (shape of the manoeuvre)
    p_max: float  # pressure reached (1 adequate, < 1 low)
    press_start: float
    screen: tuple[int, int]  # W, H
    region: tuple[int, int, int, int]  # x, y, w, h of the image bounding box on the screen
    trapezoid: tuple[float, float] | None  # (top width, bottom width) in px, centred in the region
    px_mm: float
    preset: dict
    fascia_y: float  # depth of the deep fascia above the vessels (px)
    skin_px: float
    bone_y: float | None
    artery: dict
    vein: dict
    compress_frac: float  # superficial layer thinning at full pressure
    shift_px: float  # lateral probe slide at full pressure
    vein_side: str
    extra: dict = field(default_factory=dict)


def _inside(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Which points lie inside the polygon (even-odd rule)."""
    x, y = pts[:, 0, None], pts[:, 1, None]
    x1, y1 = poly[None, :, 0], poly[None, :, 1]
    x2, y2 = np.roll(x1, -1, axis=1), np.roll(y1, -1, axis=1)
    cross = ((y1 > y) != (y2 > y)) & (x < x1 + (y - y1) * (x2 - x1) / np.where(y2 == y1, 1e-12, y2 - y1))
    return cross.sum(axis=1) % 2 == 1


def _u(rng, a, b):
    return float(rng.uniform(a, b))


def draw_preset(rng) -> dict:
    freq = _u(rng, 7.5, 13.0)
    return {
        "frequency_mhz": round(freq, 2),
        "dynamic_range_db": _u(rng, 40.0, 70.0),
        "tissue_grey": _u(rng, 0.10, 0.22),  # display level of muscle-like tissue (sets the gain)
        "gamma": _u(rng, 0.8, 1.3),
        "psf_axial_mm": _u(rng, 0.09, 0.16) * (10.0 / freq) ** 0.5,
        "psf_lateral_mm": _u(rng, 0.18, 0.34) * (10.0 / freq) ** 0.5,
        "psf_far_factor": _u(rng, 1.2, 1.7),
        "focus_frac": _u(rng, 0.3, 0.6),
        "focus_gain_db": _u(rng, 1.5, 5.0),
        "atten_db_per_cm": _u(rng, 1.5, 7.0),  # net of attenuation and TGC
        "tgc_ripple_db": _u(rng, 0.0, 3.0),
        "noise_grey_deep": _u(rng, 11.0, 22.0),
        "persistence": float(rng.choice([0.0, _u(rng, 0.1, 0.45)])),
        "post_blur_px": float(rng.choice([0.0, _u(rng, 0.5, 1.3)], p=[0.3, 0.7])),
        "speckle_reduction": float(rng.choice([0.0, _u(rng, 20.0, 50.0)], p=[0.3, 0.7])),
        "speckle_decorrelation": _u(rng, 0.04, 0.18),
        "sharpen": float(rng.choice([0.0, _u(rng, 0.2, 0.6)])),
        "compound_looks": int(rng.choice([1, 2, 3], p=[0.3, 0.35, 0.35])),
    }


def _timing(rng, hr_bpm: float) -> tuple[list, str, float]:
    style = str(rng.choice(STYLES, p=[0.45, 0.2, 0.15, 0.2]))
    rest0 = max(_u(rng, 0.6, 1.5), 60.0 / hr_bpm + 0.1)
    segs: list = [("rest", rest0, 0.0)]
    if style == "single":
        segs += [("press", _u(rng, 0.4, 1.2), 1.0), ("hold", _u(rng, 0.5, 1.5), 1.0), ("release", _u(rng, 0.3, 0.8), 0.0)]
    elif style == "jab":
        segs += [("press", _u(rng, 0.2, 0.4), 1.0), ("hold", _u(rng, 0.25, 0.6), 1.0), ("release", _u(rng, 0.2, 0.4), 0.0)]
    elif style == "double":
        for _ in range(2):
            segs += [("press", _u(rng, 0.4, 0.8), 1.0), ("hold", _u(rng, 0.3, 0.8), 1.0), ("release", _u(rng, 0.3, 0.6), 0.0),
                     ("rest", _u(rng, 0.3, 0.7), 0.0)]
        segs.pop()
    else:  # slow ramp
        segs += [("ramp", _u(rng, 1.2, 2.4), 1.0), ("hold", _u(rng, 0.5, 1.0), 1.0), ("release", _u(rng, 0.5, 1.0), 0.0)]
    used = sum(s[1] for s in segs)
    tail = _u(rng, 0.4, 1.4)
    total = used + tail
    if total > 7.0:  # shorten the holds, then the tail
        excess = total - 7.0
        segs = [(k, d - min(excess, 0.5 * d) if k == "hold" else d, lv) for k, d, lv in segs]
        total = sum(s[1] for s in segs) + tail
        tail = max(0.3, tail - max(0.0, total - 7.0))
    total = sum(s[1] for s in segs) + tail
    if total < 3.0:
        tail += 3.0 - total
    segs.append(("rest", tail, 0.0))
    return segs, style, rest0


def draw_scene(seed: int, *, dvt: bool | None = None, pressure: str | None = None, clot: str | None = None) -> Scene:
    rng = np.random.default_rng(seed)
    if dvt is None:
        dvt = bool(rng.random() < 0.5)
    else:
        rng.random()
    if pressure is None:
        pressure = "low" if rng.random() < 0.15 else "adequate"
    else:
        rng.random()
    if pressure not in ("adequate", "low"):
        raise ValueError(f"pressure must be 'adequate', 'low' or None, got {pressure!r}")
    site = "femoral" if rng.random() < 0.6 else "popliteal"
    preset = draw_preset(rng)

    # ---- timing
    fps = float(rng.choice(FPS_CHOICES))
    hr = _u(rng, 50.0, 110.0)
    segs, style, rest0 = _timing(rng, hr)
    dur = sum(s[1] for s in segs)
    n = int(round(dur * fps))
    t = np.arange(n) / fps
    q = G.pressure_curve(t, segs)
    q = np.clip(q * (1.0 + 0.015 * np.sin(2 * np.pi * _u(rng, 5, 9) * t + _u(rng, 0, 6)) * (q > 0.9)), 0.0, 1.0)

    # ---- anatomy in mm (depth below the skin line)
    skin = _u(rng, 1.4, 2.6)
    if site == "femoral":
        fascia, art_d, vein_w = _u(rng, 6.0, 16.0), _u(rng, 6.5, 10.0), _u(rng, 10.0, 16.0)
    else:
        fascia, art_d, vein_w = _u(rng, 4.0, 10.0), _u(rng, 5.0, 7.5), _u(rng, 8.0, 12.5)
    vein_aspect = _u(rng, 0.5, 0.9)
    clot_kind, clot_echo, clot_frac = "none", None, 0.0
    echo_draw = float(np.clip(rng.beta(1.0, 1.8), 0.0, 0.95))
    distend, round_aspect, kind_u, frac_u = _u(rng, 1.05, 1.3), _u(rng, 0.75, 0.98), rng.random(), _u(rng, 0.4, 0.9)
    if dvt:
        clot_kind = clot or ("occlusive" if kind_u < 0.55 else "partial")
        clot_echo = echo_draw
        clot_frac = 1.0 if clot_kind == "occlusive" else frac_u
        vein_w = min(vein_w * distend, 16.0)  # a clot distends the vein...
        vein_aspect = round_aspect  # ...and makes it rounder
    gap = _u(rng, 0.8, 3.0)
    wall_a = _u(rng, 1.0, 2.0)
    wall_v = _u(rng, 0.3, 0.6)
    side = "left" if rng.random() < 0.5 else "right"
    sgn = -1.0 if side == "left" else 1.0
    vh = vein_w * vein_aspect
    art_cy = fascia + _u(rng, 2.0, 7.0) + art_d / 2 + wall_a
    if site == "femoral":
        dx = sgn * (art_d / 2 + wall_a + gap + wall_v + vein_w / 2 * 1.15)
        dy = _u(rng, -0.15, 0.45) * art_d
    else:  # popliteal: the vein lies superficial to the artery, partly beside it
        dx = sgn * _u(rng, 0.35, 0.9) * (art_d / 2 + vein_w / 2)
        dy = -(art_d / 2 + wall_a + gap + wall_v + vh / 2) * _u(rng, 0.6, 1.0)
    vein_cy = art_cy + dy
    top_needed = fascia + 1.5 + vh / 2 + wall_v
    if vein_cy < top_needed:  # keep both under the fascia
        art_cy += top_needed - vein_cy
        vein_cy = top_needed
    deepest = max(art_cy + art_d / 2 * 1.1 + wall_a, vein_cy + vh / 2 + wall_v)
    depth_mm = float(np.clip(max(_u(rng, 30.0, 60.0), deepest + _u(rng, 9.0, 20.0)), 30.0, 60.0))
    if deepest + 8.0 > depth_mm:  # too deep for the field: lift everything (thinner fat)
        lift = deepest + 8.0 - depth_mm
        fascia, art_cy, vein_cy, deepest = fascia - lift, art_cy - lift, vein_cy - lift, deepest - lift

    # ---- screen, field of view and pixel size
    W, H = SCREENS[int(rng.random() < 0.45)]
    fov_mm = _u(rng, 36.0, 50.0)
    trap = rng.random() < 0.25
    fov_bot_mm = fov_mm + (2 * depth_mm * np.tan(np.radians(_u(rng, 8, 18))) if trap else 0.0)
    top = int(rng.integers(int(0.07 * H), int(0.14 * H)))
    bottom = int(rng.integers(int(0.04 * H), int(0.09 * H)))
    panel = int(rng.integers(int(0.13 * W), int(0.26 * W)))
    left = int(rng.integers(int(0.04 * W), int(0.12 * W)))
    h_max, w_max = H - top - bottom, W - panel - left
    px_mm = max(depth_mm / h_max, fov_bot_mm / w_max)
    rh, rw = int(round(depth_mm / px_mm)), int(round(fov_bot_mm / px_mm))
    rx = left + int(rng.integers(0, max(1, w_max - rw + 1)))
    if rng.random() < 0.5:  # text panel on the left instead
        rx = W - rx - rw
    ry = top + int(rng.integers(0, max(1, h_max - rh + 1)))
    trapezoid = (fov_mm / px_mm, fov_bot_mm / px_mm) if trap else None
    mm = 1.0 / px_mm

    # ---- lateral placement: the pair near the middle, inside the (trapezoid) field of view
    x_art = fov_bot_mm / 2 - dx / 2 + _u(rng, -0.12, 0.12) * fov_mm
    half_v = vein_w / 2 * 1.2 + wall_v + 3.0
    half_a = art_d / 2 * 1.15 + wall_a + 3.0
    lo = min(x_art - half_a, x_art + dx - half_v)
    hi = max(x_art + half_a, x_art + dx + half_v)
    lim = (fov_bot_mm - fov_mm) / 2 * (1 - fascia / depth_mm) if trap else 0.0
    x_art += max(0.0, lim - lo) - max(0.0, hi - (fov_bot_mm - lim))
    bone = None
    if rng.random() < (0.55 if site == "popliteal" else 0.4):
        bone_mm = deepest + _u(rng, 6.0, 18.0)
        if bone_mm < depth_mm - 5:
            bone = bone_mm * mm
    art_cy_mm, vein_cy_mm, x_art_mm = art_cy, vein_cy, x_art

    # ---- artery
    art_r = art_d / 2 * mm
    artery = {
        "cx": x_art_mm * mm, "cy": art_cy_mm * mm, "r": art_r, "aspect": _u(rng, 0.9, 1.05),
        "wall": wall_a * mm, "hr_bpm": hr, "pulse_amp": _u(rng, 0.04, 0.10),
        "upstroke": _u(rng, 0.08, 0.12) * hr / 60.0, "tau": _u(rng, 0.15, 0.35), "notch": _u(rng, 0.0, 0.25),
        "phase0": _u(rng, 0, 1), "hr_jitter": _u(rng, 0.0, 0.04),
        "flatten_max": _u(rng, 0.08, 0.25), "wall_gain_db": _u(rng, 16.0, 26.0),
        "wall_side": _u(rng, 0.3, 0.9), "wall_wobble": _u(rng, 0.1, 0.4), "im_ratio": _u(rng, 0.15, 0.45),
    }
    # ---- vein rest outline
    harm = [(k, _u(rng, 0.0, 0.06), _u(rng, 0, 2 * np.pi)) for k in (2, 3, 4)]
    vcx, vcy = (x_art_mm + dx) * mm, vein_cy_mm * mm
    rest = G.shape_poly(vcx, vcy, vein_w / 2 * mm, vh / 2 * mm, power=_u(rng, 1.7, 2.3), harmonics=harm,
                        tilt=_u(rng, -0.25, 0.25))
    vein = {
        "rest": rest, "wall": wall_v * mm, "wall_gain_db": _u(rng, 2.0, 7.0), "wall_side": _u(rng, 0.3, 0.9),
        "resp_amp": _u(rng, 0.0, 0.025), "resp_period": _u(rng, 3.0, 5.5), "resp_phase": _u(rng, 0, 2 * np.pi),
        "haze_db": float(rng.choice([-99.0, _u(rng, -36.0, -26.0)])),  # reverberation haze in the upper lumen
        "anchor": _u(rng, 0.3, 0.65),  # squash line as a fraction from the top (0: the lower wall rises)
        "widen": _u(rng, 0.04, 0.14), "a_min": _u(rng, 0.0, 0.07), "p_c": _u(rng, 0.6, 0.85), "kappa": _u(rng, 1.0, 1.6),
    }
    dvt_params = {
        "dvt_min": _u(rng, 0.82, 0.95),  # occlusive: outline area kept at full pressure
        "clot_squash": _u(rng, 0.02, 0.09),
        "clot_dir": float(np.pi / 2 + rng.normal(0, 0.9)),  # attachment side, most often dependent (down)
        "clot_ecc": _u(rng, 0.35, 0.7),
        "clot_axes": (_u(rng, 1.0, 1.4), _u(rng, 0.6, 1.0), _u(rng, 0, np.pi)),
        "residual_g": _u(rng, 0.0, 0.4),
        "outline_floor": _u(rng, 0.6, 0.75),
        "clot_rim": float(rng.random() < 0.3),
        "clot_hetero": _u(rng, 0.1, 0.45),
    }
    if dvt:
        vein.update(dvt_params)
        vein["wall_gain_db"] += 3.0  # an inflamed, thickened wall shows more
    # the two outlines (largest pulse, widest collapse) must not touch: push the vein aside if they do
    art_big = G.shape_poly(artery["cx"], artery["cy"], art_r * (1 + artery["pulse_amp"]) * 1.05,
                           art_r * artery["aspect"] * (1 + artery["pulse_amp"]), n=64)
    art_big = G.offset_poly(art_big, artery["wall"] + vein["wall"] + 0.6 * mm)
    away = np.sign(vcx - artery["cx"]) or 1.0
    for _ in range(60):
        wide = G.squash(vein["rest"], vcx, vcy, 1.0 + vein["widen"], 1.0)
        d = np.hypot(wide[:, None, 0] - art_big[None, :, 0], wide[:, None, 1] - art_big[None, :, 1])
        inside = _inside(wide, art_big).any() or _inside(art_big, wide).any()
        if d.min() > 1.0 and not inside:
            break
        vcx += away * 0.5 * mm
        vein["rest"] = vein["rest"] + np.array([away * 0.5 * mm, 0.0])
    # keep the pair inside the field of view after that
    wide = G.squash(vein["rest"], vcx, vcy, 1.0 + vein["widen"], 1.0)
    lo = min(wide[:, 0].min(), art_big[:, 0].min()) - 2.5 * mm
    hi = max(wide[:, 0].max(), art_big[:, 0].max()) + 2.5 * mm
    lim_px = lim * mm
    move = max(0.0, lim_px - lo) - max(0.0, hi - (fov_bot_mm * mm - lim_px))
    artery["cx"] += move
    vein["rest"] = vein["rest"] + np.array([move, 0.0])

    # ---- pressure magnitude
    if pressure == "adequate":
        p_max = 1.0
    else:  # low: the vein narrows by < 25 % area and the artery barely changes
        a_min, p_c, kap = vein["a_min"], vein["p_c"], vein["kappa"]
        bound = p_c * (1.0 - ((0.80 - a_min) / (1.0 - a_min)) ** (1.0 / kap))
        p_max = _u(rng, 0.35, 0.85) * bound
        vein["resp_amp"] = min(vein["resp_amp"], 0.01)
        artery["flatten_max"] = min(artery["flatten_max"] * p_max ** 1.5, _u(rng, 0.004, 0.02)) / max(p_max, 1e-3) ** 1.5

    press_start = float(rest0)
    return Scene(
        seed=seed, site=site, dvt=dvt, clot=clot_kind, clot_echo=clot_echo, clot_fraction=clot_frac,
        pressure=pressure, style=style, fps=fps, t=t, q=q, p_max=p_max, press_start=press_start,
        screen=(W, H), region=(rx, ry, rw, rh), trapezoid=trapezoid, px_mm=px_mm, preset=preset,
        fascia_y=fascia * mm, skin_px=skin * mm, bone_y=bone, artery=artery, vein=vein,
        compress_frac=_u(rng, 0.05, 0.18), shift_px=_u(rng, -1.0, 1.0) * mm, vein_side=side,
        extra={"depth_mm": depth_mm, "fov_mm": fov_mm, "fov_bottom_mm": fov_bot_mm, "segments": segs},
    )
