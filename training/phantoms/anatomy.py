"""Anatomy, compression manoeuvre and probe motion of the compression-ultrasound phantom.

Everything here is geometry and timing only (no pixels are drawn). Units: lengths are image pixels
of the ultrasound image rectangle (x to the right, y down, origin at the top-left of the image, i.e.
at the skin under the left end of the probe face); times are seconds; pressure is dimensionless in
[0, 1] (1 = firm compression); angles are stored in degrees.

All random draws come from the ``np.random.Generator`` passed in; every scalar drawn is stored in
:class:`ClipParams` so that a clip's label can list them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

FPS_CHOICES = (15, 20, 25, 30, 40, 50, 60)
ADEQUATE_P_RANGE = (0.6, 1.0)
LOW_P_RANGE = (0.06, 0.18)
COLLAPSED_B_PX = 0.5  # a vein whose vertical semi-axis is below this (px) is drawn as touching walls


@dataclass(frozen=True)
class ClipParams:
    """Every random scalar of one clip (plain Python types). Lengths in image px, times in s."""

    dvt: bool
    pressure: str  # "adequate" | "low"
    fps: float
    img_w: int
    img_h: int
    depth_cm: float
    # manoeuvre timing (s) and pressure
    rest_s: float
    press_s: float
    hold_s: float
    release_s: float
    rest2_s: float
    p_max: float
    tremor_amp: float
    tremor_hz: float
    # artery (rest position, tissue coordinates == image coordinates without motion)
    artery_x: float
    artery_y: float
    artery_r: float
    artery_ecc: float
    artery_angle_deg: float
    artery_k: float
    pulse_amp: float
    heart_rate_bpm: float
    pulse_phase: float
    # vein
    vein_side: str  # side of the vein relative to the artery in the image: "left" | "right"
    vein_x: float
    vein_y: float
    vein_a0: float
    vein_b0: float
    vein_angle_deg: float
    vein_p_collapse: float
    vein_widen: float
    vein_residual: float  # used only when dvt
    vein_sink: float  # fraction of the vertical flattening taken by the top wall
    clot_fill: float
    clot_angle_deg: float
    clot_level: float
    # tissue and probe motion
    tissue_comp: float
    drift_x_px: float
    drift_y_px: float
    tilt_start_deg: float
    tilt_end_deg: float
    sway_px: float
    sway_hz: float
    # tissue layers (image px)
    n_fascia: int
    fascia1_y: float
    fascia2_y: float
    fascia0_y: float
    muscle_top_y: float
    muscle_angle_deg: float
    fat_level: float
    sheath_level: float
    muscle_level: float
    fascia_gain: float
    # appearance
    gain: int
    dynamic_range_db: float
    atten_np_per_cm: float
    near_field_gain: float
    noise_level: float
    decorrelation: float
    speckle_sx: float
    speckle_sy: float
    psf_sx: float
    psf_sy: float
    lumen_level: float
    artery_wall_gain: float
    vein_wall_gain: float
    wall_px: float
    enhancement: float
    enhancement_len: float
    edge_shadow: float
    skin_px: int
    skin_gain: float
    focus_frac: float
    texture_seed: int
    noise_seed: int
    # domain-randomisation only (:func:`widen`); the defaults reproduce the narrow renderer exactly
    vein_lobe_amp: float = 0.0  # radial wall irregularity of the vein, fraction of its radius
    vein_lobe_k: int = 3  # number of lobes around the vein wall
    vein_lobe_phase: float = 0.0  # rad
    vein_lumen_level: float = -1.0  # reflectivity of the vein's blood; negative: same as lumen_level
    vein_lumen_contrast: float = 1.0  # speckle contrast of the vein's blood relative to the tissue's texture
    streak_gain: float = 1.0  # brightness factor of fat septa and perivascular streaks
    muscle_streak_gain: float = 1.0  # brightness factor of muscle striation

    @property
    def phase_times(self) -> tuple[float, float, float, float]:
        """Times (s) where press starts, hold starts, release starts and release ends."""
        t0 = self.rest_s
        t1 = t0 + self.press_s
        t2 = t1 + self.hold_s
        return t0, t1, t2, t2 + self.release_s

    @property
    def duration_s(self) -> float:
        """Clip duration (s): the four phases plus the final rest."""
        return self.phase_times[3] + self.rest2_s

    def to_dict(self) -> dict:
        """JSON-serialisable dict of every parameter."""
        return {k: (v if isinstance(v, (bool, str)) else (int(v) if isinstance(v, int) else float(v)))
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class VesselState:
    """One vessel in one frame, in image coordinates (px); angle in radians (ellipse u-axis vs image x)."""

    label: int  # 1 artery, 2 vein
    cx: float
    cy: float
    a: float  # semi-axis along u (roughly horizontal)
    b: float  # semi-axis along v (roughly vertical); 0 means collapsed (walls touch)
    angle: float
    b_rest: float
    wall_gain: float
    clot: tuple[float, float, float] | None  # (threshold tau, angle rad, level) or None

    @property
    def collapsed(self) -> bool:
        return self.b < COLLAPSED_B_PX


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _clot_tau(fill: float) -> float:
    """Threshold tau on a unit disk such that the area with projection > tau is ``fill`` of the disk."""
    lo, hi = -1.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        frac = (math.acos(mid) - mid * math.sqrt(1.0 - mid * mid)) / math.pi
        lo, hi = (mid, hi) if frac > fill else (lo, mid)
    return 0.5 * (lo + hi)


def _timing(rng: np.random.Generator, duration_s: float | None) -> dict:
    """Phase durations (s); when ``duration_s`` is given the final rest absorbs the difference,
    or all phases are scaled down if the manoeuvre alone is longer than ``duration_s``."""
    t = dict(rest_s=_u(rng, 0.6, 1.5), press_s=_u(rng, 0.4, 1.5), hold_s=_u(rng, 0.3, 1.0),
             release_s=_u(rng, 0.4, 1.0), rest2_s=_u(rng, 0.3, 0.8))
    if duration_s is not None:
        core = t["rest_s"] + t["press_s"] + t["hold_s"] + t["release_s"]
        if duration_s > core + 0.05:
            t["rest2_s"] = duration_s - core
        else:
            scale = duration_s / (core + 0.2)
            t = {k: v * scale for k, v in t.items()}
            t["rest2_s"] = duration_s - sum(v for k, v in t.items() if k != "rest2_s")
    return t


def _vessels(rng: np.random.Generator, w: int, h: int) -> dict:
    """Artery and vein size and rest position (image px)."""
    r = _u(rng, 0.035, 0.06) * w
    a0 = _u(rng, 0.06, 0.11) * w
    b0 = a0 * _u(rng, 0.6, 0.9)
    widen = _u(rng, 0.05, 0.2)
    amp = _u(rng, 0.02, 0.06)
    gap = _u(rng, 0.012, 0.04) * w + 4.0
    dy = _u(rng, -0.15, 0.6) * b0  # vein centre deeper than the artery's by dy
    reach = r * (1 + amp) + a0 * (1 + widen) + gap
    dx = math.sqrt(max(reach * reach - dy * dy, 0.0))
    side = "right" if rng.random() < 0.5 else "left"
    sgn = 1.0 if side == "right" else -1.0
    pair_x = _u(rng, 0.4, 0.6) * w
    art_y = _u(rng, 0.28, 0.45) * h
    return dict(artery_x=pair_x - sgn * dx / 2, artery_y=art_y, artery_r=r, artery_ecc=_u(rng, 0.88, 1.0),
                artery_angle_deg=_u(rng, -10, 10), artery_k=_u(rng, 0.18, 0.3), pulse_amp=amp,
                heart_rate_bpm=_u(rng, 50, 110), pulse_phase=_u(rng, 0, 1), vein_side=side,
                vein_x=pair_x + sgn * dx / 2, vein_y=art_y + dy, vein_a0=a0, vein_b0=b0,
                vein_angle_deg=_u(rng, -8, 8), vein_p_collapse=_u(rng, 0.3, 0.5), vein_widen=widen,
                vein_residual=_u(rng, 0.45, 0.9), vein_sink=_u(rng, 0.55, 0.85),
                clot_fill=_u(rng, 0.4, 1.0), clot_angle_deg=_u(rng, 0, 360), clot_level=_u(rng, 0.35, 0.8))


def _layers(rng: np.random.Generator, h: int, top: float, bottom: float) -> dict:
    """Depths (image px) of fascia lines and the muscle layer, given the vessels' top and bottom."""
    n = int(rng.integers(1, 4))
    f1 = max(0.05 * h, _u(rng, 0.4, 0.8) * (top - 8))
    f2 = min(bottom + _u(rng, 8, 0.15 * h), 0.92 * h)
    return dict(n_fascia=n, fascia1_y=f1, fascia2_y=f2, fascia0_y=f1 * _u(rng, 0.3, 0.7),
                muscle_top_y=min(bottom + _u(rng, 6, 0.2 * h), 0.95 * h), muscle_angle_deg=_u(rng, -12, 12),
                fat_level=_u(rng, 0.12, 0.3), sheath_level=_u(rng, 0.45, 0.9), muscle_level=_u(rng, 0.2, 0.4),
                fascia_gain=_u(rng, 2.0, 4.0))


def _appearance(rng: np.random.Generator) -> dict:
    """Scanner and tissue appearance settings (gains are linear reflectivity factors)."""
    return dict(gain=int(rng.integers(38, 68)), dynamic_range_db=_u(rng, 42, 58), atten_np_per_cm=_u(rng, 0.05, 0.3),
                near_field_gain=_u(rng, 0.0, 0.6), noise_level=_u(rng, 0.02, 0.08), decorrelation=_u(rng, 0.12, 0.35),
                speckle_sx=_u(rng, 1.8, 3.0), speckle_sy=_u(rng, 0.8, 1.3), psf_sx=_u(rng, 0.7, 1.5),
                psf_sy=_u(rng, 0.4, 0.8), lumen_level=_u(rng, 0.04, 0.12), artery_wall_gain=_u(rng, 4.0, 8.0),
                vein_wall_gain=_u(rng, 2.0, 4.5), wall_px=_u(rng, 2.0, 3.5), enhancement=_u(rng, 0.5, 1.2),
                enhancement_len=_u(rng, 1.5, 3.5), edge_shadow=_u(rng, 0.0, 0.35), skin_px=int(rng.integers(2, 5)),
                skin_gain=_u(rng, 2.0, 4.0), focus_frac=_u(rng, 0.3, 0.6))


def sample_params(rng: np.random.Generator, img_w: int, img_h: int, *, dvt: bool, pressure: str, fps: float,
                  duration_s: float | None = None) -> ClipParams:
    """Draw every anatomy/manoeuvre/appearance parameter of a clip for an image of img_w x img_h px."""
    timing = _timing(rng, duration_s)
    p_range = ADEQUATE_P_RANGE if pressure == "adequate" else LOW_P_RANGE
    press = dict(p_max=_u(rng, *p_range), tremor_amp=_u(rng, 0.0, 0.05), tremor_hz=_u(rng, 3.0, 8.0))
    ves = _vessels(rng, img_w, img_h)
    top = min(ves["artery_y"] - ves["artery_r"], ves["vein_y"] - ves["vein_b0"])
    bottom = max(ves["artery_y"] + ves["artery_r"], ves["vein_y"] + ves["vein_b0"])
    motion = dict(tissue_comp=_u(rng, 0.02, 0.05), drift_x_px=_u(rng, -0.04, 0.04) * img_w,
                  drift_y_px=_u(rng, -0.01, 0.01) * img_h, tilt_start_deg=_u(rng, -4, 4), tilt_end_deg=_u(rng, -4, 4),
                  sway_px=_u(rng, 0.0, 0.008) * img_w, sway_hz=_u(rng, 0.2, 0.6))
    layers = _layers(rng, img_h, top, bottom)
    look = _appearance(rng)
    seeds = dict(texture_seed=int(rng.integers(0, 2**31 - 1)), noise_seed=int(rng.integers(0, 2**31 - 1)))
    return ClipParams(dvt=bool(dvt), pressure=pressure, fps=float(fps), img_w=int(img_w), img_h=int(img_h),
                      depth_cm=round(_u(rng, 3.0, 6.0) * 2) / 2, **timing, **press, **ves, **motion, **layers,
                      **look, **seeds)


def pressure_at(P: ClipParams, t: float) -> float:
    """Probe pressure p(t) in [0, p_max]: rest, smooth press ramp, hold with tremor, smooth release, rest."""
    t0, t1, t2, t3 = P.phase_times
    if t < t0 or t >= t3:
        return 0.0
    if t < t1:
        return P.p_max * _smoothstep((t - t0) / P.press_s)
    hold = P.p_max * (1.0 - P.tremor_amp * 0.5 * (1.0 - math.cos(2 * math.pi * P.tremor_hz * (min(t, t2) - t1))))
    if t < t2:
        return hold
    return hold * (1.0 - _smoothstep((t - t2) / P.release_s))


def pulse_at(P: ClipParams, t: float) -> float:
    """Arterial distension waveform in [0, ~1]: systolic peak and a small dicrotic bump, at the heart rate."""
    ph = (P.heart_rate_bpm / 60.0 * t + P.pulse_phase) % 1.0
    return math.exp(-((ph - 0.18) / 0.09) ** 2) + 0.3 * math.exp(-((ph - 0.45) / 0.07) ** 2)


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def tilt_at(P: ClipParams, t: float) -> float:
    """In-plane probe rotation (rad) at time t."""
    s = _smoothstep(t / max(P.duration_s, 1e-6))
    return math.radians(P.tilt_start_deg + (P.tilt_end_deg - P.tilt_start_deg) * s)


def tissue_to_image(P: ClipParams, t: float, margin: int) -> np.ndarray:
    """(2, 3) float64 affine map from tissue-canvas pixels (image px + margin) to image px at time t:
    vertical compression of the tissue under the probe, rotation about the probe centre, drift."""
    p = pressure_at(P, t)
    s = _smoothstep(t / max(P.duration_s, 1e-6))
    dx = P.drift_x_px * s + P.sway_px * math.sin(2 * math.pi * P.sway_hz * t)
    dy = P.drift_y_px * s
    th = tilt_at(P, t)
    px = P.img_w / 2.0
    shift = np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], float)
    squash = np.diag([1.0, 1.0 - P.tissue_comp * p, 1.0])
    c, sn = math.cos(th), math.sin(th)
    rot = np.array([[c, -sn, px - c * px], [sn, c, -sn * px], [0, 0, 1]], float)
    move = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], float)
    return (move @ rot @ squash @ shift)[:2]


def vessels_at(P: ClipParams, t: float, margin: int) -> tuple[VesselState, VesselState]:
    """(artery, vein) geometry in image px at time t."""
    p = pressure_at(P, t)
    M = tissue_to_image(P, t, margin)
    th = tilt_at(P, t)

    def to_img(x: float, y: float) -> tuple[float, float]:
        v = M @ np.array([x + margin, y + margin, 1.0])
        return float(v[0]), float(v[1])

    pulse = 1.0 + P.pulse_amp * pulse_at(P, t)
    ax, ay = to_img(P.artery_x, P.artery_y)
    ab0 = P.artery_r * P.artery_ecc
    artery = VesselState(1, ax, ay, P.artery_r * pulse, ab0 * (1.0 - P.artery_k * p) * pulse,
                         th + math.radians(P.artery_angle_deg), ab0, P.artery_wall_gain, None)
    floor = P.vein_residual if P.dvt else 0.0
    b = P.vein_b0 * max(floor, 1.0 - p / P.vein_p_collapse)
    a = P.vein_a0 * (1.0 + P.vein_widen * (1.0 - b / P.vein_b0))
    vx, vy = to_img(P.vein_x, P.vein_y)
    vy += P.vein_sink * (P.vein_b0 - b)
    clot = (_clot_tau(P.clot_fill), math.radians(P.clot_angle_deg), P.clot_level) if P.dvt else None
    vein = VesselState(2, vx, vy, a, b, th + math.radians(P.vein_angle_deg), P.vein_b0, P.vein_wall_gain, clot)
    return artery, vein


def _support(a: float, b: float, angle: float, nx: float, ny: float) -> float:
    """Extent (px) of an ellipse (semi-axes a, b, u-axis at ``angle`` rad) from its centre along unit (nx, ny)."""
    c, s = math.cos(angle), math.sin(angle)
    return math.hypot(a * (nx * c + ny * s), b * (-nx * s + ny * c))


def _wide_pair(P: ClipParams, rng: np.random.Generator) -> dict:
    """Artery and vein drawn afresh from wide anatomical ranges: vein 0.7-3x the artery's radius, round to
    flat (b/a 0.3-1.05), tilted up to 25 degrees, on either side of the artery and anywhere from beside it
    to straight above or below it, with a gap of 2 px to 6% of the width, the pair at any depth that keeps
    both in the image. The gap holds through pulsation, vein widening under pressure and tissue compression,
    so the two ellipses never overlap (a lobulated vein outline, :func:`widen`, may touch the artery where the
    gap is narrowest; the artery is drawn on top). Returns the fields to replace, or {} if the pair cannot fit."""
    w, h = P.img_w, P.img_h
    amp = _u(rng, 0.02, 0.1)
    widen_v = _u(rng, 0.03, 0.3)
    r = _u(rng, 0.025, 0.065) * w
    ratio = math.exp(_u(rng, math.log(0.7), math.log(3.0)))
    aspect = _u(rng, 0.3, 1.05)
    ang = math.radians(_u(rng, -25, 25))
    side = 1.0 if rng.random() < 0.5 else -1.0
    # elevation of the vein seen from the artery (positive: deeper); mostly beside, sometimes above/below
    phi = math.radians(_u(rng, -35, 65) if rng.random() < 0.7 else _u(rng, -90, 90))
    gap = _u(rng, 0.0, 0.06) * w + 2.0
    cx_frac, cy_frac = rng.random(), rng.random()
    for _ in range(12):  # shrink the pair until it fits in the image
        a0 = min(r * ratio, 0.22 * w)
        b0 = a0 * aspect
        nx, ny = side * math.cos(phi), math.sin(phi)
        reach = (r * (1 + amp) + _support(a0 * (1 + widen_v), b0, ang, nx, ny) + gap) * 1.06
        dx, dy = nx * reach, ny * reach
        v_half_h = _support(a0 * (1 + widen_v), b0, ang, 0.0, 1.0)
        v_half_w = _support(a0 * (1 + widen_v), b0, ang, 1.0, 0.0)
        ra = r * (1 + amp)
        y_lo = max(0.08 * h + ra, 0.08 * h + v_half_h - dy)  # artery centre limits
        y_hi = min(0.92 * h - ra, 0.92 * h - v_half_h - dy)
        x_lo = max(0.05 * w + ra, 0.05 * w + v_half_w - dx)
        x_hi = min(0.95 * w - ra, 0.95 * w - v_half_w - dx)
        if y_lo <= y_hi and x_lo <= x_hi:
            break
        r *= 0.85
        gap = max(2.0, gap * 0.85)
    else:
        return {}
    ax, ay = x_lo + cx_frac * (x_hi - x_lo), y_lo + cy_frac * (y_hi - y_lo)
    return dict(artery_x=ax, artery_y=ay, artery_r=r, artery_ecc=_u(rng, 0.8, 1.0), pulse_amp=amp,
                vein_side="right" if dx > 0 else "left", vein_x=ax + dx, vein_y=ay + dy, vein_a0=a0, vein_b0=b0,
                vein_angle_deg=math.degrees(ang), vein_widen=widen_v, vein_p_collapse=_u(rng, 0.25, 0.55))


def widen(P: ClipParams, rng: np.random.Generator) -> ClipParams:
    """Domain randomisation for training: redraw appearance and shape parameters from far wider ranges
    than :func:`sample_params` uses, so a model trained on these frames cannot key on this renderer's
    particular look (wall brightness, clot echogenicity, speckle, dynamic range, vessel layout, background
    texture) instead of the anatomy.

    Half of the scenes keep the narrow layout (artery smaller, vein flatter or rounder within its width);
    the other half redraw the pair (:func:`_wide_pair`: vein size 0.7-3x the artery, round to flat, beside,
    above or below it, any depth). The vein gets its own blood echogenicity (anechoic to mid-grey, with its
    own speckle contrast), a wall from invisible to bright, and in part of the scenes a slightly lobulated
    outline. Clot echogenicity spans anechoic (acute: as dark as the lumen) to isoechoic with tissue, and
    clots fill 25-100% of the lumen; a DVT vein still never collapses. The background varies from smooth
    to strongly striated muscle and bright or faint fascia lines.
    """
    from dataclasses import replace

    pair = _wide_pair(P, rng) if rng.random() < 0.5 else {}
    if not pair:
        pair = dict(artery_r=P.artery_r * _u(rng, 0.7, 1.0), vein_b0=P.vein_a0 * _u(rng, 0.4, 1.0),
                    vein_angle_deg=_u(rng, -20, 20), pulse_amp=_u(rng, 0.02, 0.1))
    layers = {}
    if "vein_x" in pair:  # tissue layers follow the new vessel depths
        a_top, a_bot = pair["artery_y"] - pair["artery_r"], pair["artery_y"] + pair["artery_r"]
        v_top, v_bot = pair["vein_y"] - pair["vein_b0"], pair["vein_y"] + pair["vein_b0"]
        layers = _layers(rng, P.img_h, min(a_top, v_top), max(a_bot, v_bot))
    u = rng.random()
    vein_lumen = _u(rng, 0.0, 0.08) if u < 0.4 else (_u(rng, 0.08, 0.25) if u < 0.75 else _u(rng, 0.25, 0.6))
    lobe = _u(rng, 0.02, 0.12) if rng.random() < 0.5 else 0.0
    vein_wall = _u(rng, 0.0, 0.6) if rng.random() < 0.25 else _u(rng, 0.6, 7.0)
    look = dict(
        artery_wall_gain=_u(rng, 1.0, 14.0), vein_wall_gain=vein_wall, wall_px=_u(rng, 1.0, 5.5),
        lumen_level=_u(rng, 0.0, 0.25), clot_level=_u(rng, 0.03, 1.1), clot_fill=_u(rng, 0.25, 1.0),
        dynamic_range_db=_u(rng, 35, 75), gain=int(rng.integers(25, 80)), atten_np_per_cm=_u(rng, 0.0, 0.5),
        noise_level=_u(rng, 0.0, 0.15), speckle_sx=_u(rng, 1.0, 5.0), speckle_sy=_u(rng, 0.5, 2.5),
        psf_sx=_u(rng, 0.4, 3.0), psf_sy=_u(rng, 0.3, 1.5), enhancement=_u(rng, 0.0, 2.0),
        edge_shadow=_u(rng, 0.0, 0.7), focus_frac=_u(rng, 0.15, 0.85), near_field_gain=_u(rng, 0.0, 1.2),
        depth_cm=round(_u(rng, 2.5, 7.0) * 2) / 2,
        fat_level=_u(rng, 0.08, 0.5), sheath_level=_u(rng, 0.3, 1.2), muscle_level=_u(rng, 0.15, 0.7),
        fascia_gain=_u(rng, 0.5, 6.0), muscle_angle_deg=_u(rng, -25, 25),
        streak_gain=_u(rng, 0.2, 2.5), muscle_streak_gain=_u(rng, 0.3, 3.0),
        vein_lumen_level=vein_lumen, vein_lumen_contrast=_u(rng, 0.3, 1.6),
        vein_lobe_amp=lobe, vein_lobe_k=int(rng.integers(2, 6)), vein_lobe_phase=_u(rng, 0.0, 2 * math.pi),
    )
    return replace(P, **{**pair, **layers, **look})
