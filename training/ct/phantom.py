"""Synthetic lower-extremity CT venography phantoms in Hounsfield units (research software, not for diagnostic use).

A study is a stack of axial slices from the pelvis towards the knee, rendered analytically and deterministically
from one integer seed. Anatomy (per side): body outline (one pelvis ellipse, two thighs below the groin, joined by
a shrinking perineal bridge), subcutaneous fat, muscle with fat septa, pelvic bone / femoral head / femur /
condyles (cortex ~1000-1400 HU, marrow ~200 HU), the iliac -> common femoral -> femoral -> popliteal artery
(200-350 HU) and vein (venous-phase contrast 150-250 HU), and the great saphenous vein in the fat. Vessel courses
and calibres vary smoothly along z (control points + low-frequency sinusoids).

Lesions and mimics:
- thrombus: a filling defect of 40-70 HU inside a deep vein, 3-60 mm long; ``partial`` = an eccentric blob in the
  lumen (tapered at its ends), ``occlusive`` = the whole (slightly distended) lumen.
- mixing streak: a stripe of partly mixed, unopacified inflow (70-120 HU, soft edges) that runs >= 80 mm along
  the vein and swirls (its orientation rotates with z): on one slice it looks like a partial clot, across
  neighbouring slices it moves and it never ends. Recorded as ``mimics`` (negatives for the detector).

Geometry: pixel (row r, col c) has its centre at x = (c + 0.5 - W/2) * ps, y = (r + 0.5 - H/2) * ps mm (patient
LPS: +x = patient left, +y = posterior, image row 0 = anterior). Slices are stored in ascending position along
the slice normal (z, +z = superior), so index 0 is the most caudal slice, as readers sort them.
Ground truth: per thrombus, the slice range (inclusive, position-sorted indices) and one box per slice on the
ORIGINAL pixel grid, [x0, y0, x1, y1] with x1/y1 exclusive (the bounding box of the defect's pixels).

CLI: ``python -m training.ct.phantom --out DIR --studies N --seed S [--size 512]`` writes, per study, a DICOM
series, a NIfTI volume and ``ground_truth.json`` (see :mod:`training.ct.phantom_io`).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

THICKNESSES_MM = (1.0, 2.0, 3.0, 5.0)
AIR, FAT = -1000.0, -100.0
MAX_SLICES = 120  # keeps a study's memory and render time bounded (1 mm slices cover 120 mm)


@dataclass
class Lesion:
    """A thrombus or a mimic. ``boxes`` maps slice index -> [x0, y0, x1, y1] original pixels (x1/y1 exclusive)."""

    kind: str  # "partial" | "occlusive" | "mixing_streak"
    side: int  # -1 = patient right (image left), +1 = patient left
    level_mm: tuple[float, float]  # anatomical level range (mm caudal of the study origin)
    params: dict
    boxes: dict[int, list[float]] = field(default_factory=dict)

    @property
    def slice_range(self) -> tuple[int, int]:
        keys = sorted(self.boxes)
        return (keys[0], keys[-1]) if keys else (-1, -1)

    def to_json(self) -> dict:
        s0, s1 = self.slice_range
        return {
            "kind": self.kind, "side": "left" if self.side > 0 else "right",
            "length_mm": round(self.level_mm[1] - self.level_mm[0], 2),
            "slice_start": s0, "slice_end": s1,
            "boxes": {str(k): [round(float(v), 2) for v in b] for k, b in sorted(self.boxes.items())},
        }


@dataclass
class Study:
    """One phantom study. hu: (n, H, W) float32 HU, ascending position. positions_mm: (n,) slice-centre z."""

    seed: int
    hu: np.ndarray
    positions_mm: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    thickness_mm: float
    thrombi: list[Lesion]
    mimics: list[Lesion]
    veins: list[dict[int, tuple[float, float, float]]]  # per slice: side -> (x, y, radius) pixels
    distractors: list[list[tuple[float, float]]] = field(default_factory=list)  # per slice: (x, y) px of mimics


    def gt_boxes(self, index: int) -> list[list[float]]:
        """Thrombus boxes on slice ``index`` (original pixels)."""
        return [t.boxes[index] for t in self.thrombi if index in t.boxes]


# ----------------------------------------------------------------------------------------------- drawing
class _Canvas:
    """A (H, W) HU image with mm coordinates; shapes are drawn on their bounding box only (speed)."""

    def __init__(self, shape: tuple[int, int], ps: float, fill: float):
        self.img = np.full(shape, fill, np.float32)
        self.h, self.w = shape
        self.ps = ps

    def _grid(self, cx, cy, rx, ry):
        r = max(rx, ry) / self.ps + 2
        px, py = cx / self.ps + self.w / 2, cy / self.ps + self.h / 2
        c0, c1 = max(int(px - r), 0), min(int(px + r) + 2, self.w)
        r0, r1 = max(int(py - r), 0), min(int(py + r) + 2, self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = (np.arange(c0, c1, dtype=np.float32) + 0.5 - self.w / 2) * self.ps - cx
        ys = (np.arange(r0, r1, dtype=np.float32) + 0.5 - self.h / 2) * self.ps - cy
        return (slice(r0, r1), slice(c0, c1)), xs[None, :], ys[:, None]

    def ellipse_mask(self, cx, cy, rx, ry, angle=0.0, soft_mm=0.0):
        """(window, weight) with weight in [0, 1]: 1 inside the ellipse, a linear ramp of ``soft_mm`` at its edge."""
        g = self._grid(cx, cy, rx + soft_mm, ry + soft_mm)
        if g is None:
            return None, None
        win, xs, ys = g
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = xs * ca + ys * sa, -xs * sa + ys * ca
        d = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)  # 1 on the boundary
        if soft_mm <= 0:
            return win, (d <= 1.0).astype(np.float32)
        return win, np.clip((1.0 + soft_mm / min(rx, ry) - d) / (soft_mm / min(rx, ry)), 0.0, 1.0)

    def paint(self, cx, cy, rx, ry, value, angle=0.0, soft_mm=0.0, within=None, below=None):
        win, m = self.ellipse_mask(cx, cy, rx, ry, angle, soft_mm)
        if win is None:
            return None
        if within is not None:
            m = m * (self.img[win] > within)
        if below is not None:
            m = m * (self.img[win] < below)
        self.img[win] += m * (np.float32(value) - self.img[win])
        return win, m


def _interp(level, table):
    """Piecewise-linear lookup of a control-point table [(level_mm, value), ...]."""
    xs, ys = zip(*table)
    return float(np.interp(level, xs, ys))


# ------------------------------------------------------------------------------------------- the study
def _sample_anatomy(rng: np.random.Generator, fov_mm: float) -> dict:
    width = rng.uniform(0.72, 0.9) * fov_mm  # body width in the pelvis (mm)
    a = {
        "width": width, "d": width * rng.uniform(0.23, 0.27), "fat": rng.uniform(6, 16),
        "muscle": rng.uniform(40, 60), "cortex": rng.uniform(1000, 1400), "marrow": rng.uniform(170, 230),
        "artery": rng.uniform(200, 350), "vein": rng.uniform(150, 250), "noise": rng.uniform(10, 20),
        "septa": [(rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.8), rng.uniform(0, 2 * math.pi)) for _ in range(4)],
    }
    a["vein_hu"] = {s: a["vein"] * rng.uniform(0.93, 1.07) for s in (-1, 1)}
    # smooth per-side wiggles of the vessel course: (amplitude mm, wavelength mm, phase) x 2, and calibre
    a["wiggle"] = {s: [(rng.uniform(2, 5), rng.uniform(80, 220), rng.uniform(0, 6.3)) for _ in range(2)] for s in (-1, 1)}
    a["vein_r"] = {s: rng.uniform(5.0, 7.5) for s in (-1, 1)}
    a["vein_ratio"] = {s: rng.uniform(0.65, 0.95) for s in (-1, 1)}
    a["artery_r"] = {s: rng.uniform(3.2, 4.5) for s in (-1, 1)}
    a["gsv"] = {s: rng.uniform(0.5, 1.2) for s in (-1, 1)}  # angle (rad) of the saphenous vein from medial
    return a


def _thigh_r(a: dict, level: float) -> float:
    """Lateral radius (mm) of one thigh's outline at ``level``; the thighs taper towards the knee."""
    return _interp(level, [(0, 0.97), (150, 0.97), (440, 0.8), (600, 0.75)]) * a["d"]


def _vessel_frame(a: dict, side: int, level: float):
    """Centres (mm) and radii of the artery and vein on one side at an anatomical ``level`` (mm from the pelvis)."""
    d = a["d"]
    # angle from anterior rotating medially (rad) and distance from the thigh centre (fraction of d)
    phi = math.radians(_interp(level, [(0, 55), (120, 30), (300, 80), (440, 175), (600, 180)]))
    rho = _interp(level, [(0, 0.5), (120, 0.62), (300, 0.5), (440, 0.45), (600, 0.45)])
    wig = sum(amp * math.sin(2 * math.pi * level / wl + ph) for amp, wl, ph in a["wiggle"][side])
    cx = side * d + (-side) * math.sin(phi) * rho * d  # medial = towards the midline
    cy = -math.cos(phi) * rho * d
    cx, cy = cx + wig * 0.6, cy + wig * 0.8
    taper = _interp(level, [(0, 1.15), (120, 1.05), (300, 0.95), (440, 0.85), (600, 0.8)])
    rv, ra = a["vein_r"][side] * taper, a["artery_r"][side] * taper
    # keep the bundle inside the muscle compartment (thin bodies, thick fat)
    room = _thigh_r(a, level) - a["fat"] - 2 * (rv + ra) - 2.0
    if math.hypot(cx - side * d, cy) > room:
        f = max(room, 0.0) / math.hypot(cx - side * d, cy)
        cx, cy = side * d + (cx - side * d) * f, cy * f
    # artery -> vein direction: medial at the groin, posteromedial in the thigh, posterior (superficial) at the
    # popliteal level; an angle from anterior rotating medially, like phi
    psi = math.radians(_interp(level, [(0, 120), (120, 90), (300, 120), (440, 180), (600, 180)]))
    ux, uy = (-side) * math.sin(psi), -math.cos(psi)
    half = (ra + rv + 1.0) / 2
    vx, vy = cx + ux * half, cy + uy * half
    ax, ay = cx - ux * half, cy - uy * half
    return (ax, ay, ra), (vx, vy, rv)


def _render(a: dict, level: float, shape, ps: float, lesions: list[Lesion], rng: np.random.Generator,
            distract: dict | None = None, centres: list | None = None):
    """Render one slice. Returns HU (H, W) float32 and {lesion list index: bool mask window} for ground truth.

    distract: the study's distractors (:func:`_sample_distractors`) or None; their centres on this slice
    (pixels) are appended to ``centres``.
    """
    c = _Canvas(shape, ps, AIR)
    d, w = a["d"], a["width"]
    bridge = _interp(level, [(0, 1.0), (110, 1.0), (170, 0.0), (999, 0.0)])  # pelvis -> separate thighs
    thigh_r = _thigh_r(a, level)
    for layer, shrink in (("skin", 0.0), ("fat", None)):
        value = 40.0 if layer == "skin" else FAT
        inset = 0.0 if layer == "skin" else 1.5
        if bridge > 0:
            c.paint(0, 0, w / 2 * (0.6 + 0.4 * bridge) - inset, w * 0.33 - inset, value)
        for s in (-1, 1):
            c.paint(s * d, 0, thigh_r - inset, thigh_r * 1.08 - inset, value)
    fat = a["fat"]
    for s in (-1, 1):  # muscle compartment inside the fat
        c.paint(s * d, 0, thigh_r - fat, thigh_r * 1.08 - fat, a["muscle"])
    if bridge > 0:
        c.paint(0, 0, (w / 2 - fat) * (0.55 + 0.45 * bridge), w * 0.33 - fat, a["muscle"])
    for ang, frac, ph in a["septa"]:  # thin fat septa between muscles (texture, and edges that are not veins)
        for s in (-1, 1):
            t = ang + 0.002 * level + ph * 0.1
            c.paint(s * d + s * math.cos(t) * frac * thigh_r * 0.6, math.sin(t) * frac * thigh_r * 0.6,
                    thigh_r * 0.3, 0.8, FAT, angle=s * (t + 1.3), within=0.0)
    if 40 < level < 140:  # bladder (urine ~10 HU) in the pelvis
        c.paint(0, -0.05 * w, 0.12 * w, 0.09 * w, 10.0, soft_mm=2.0)
    bs = d / 90.0  # bone sizes scale with the body
    for s in (-1, 1):  # bones
        fx, fy = s * (d + 6 * bs), 4.0 * bs
        if level < 80:  # iliac wing
            c.paint(s * (d + 25 * bs), 15 * bs, 14 * bs, 38 * bs, a["cortex"], angle=s * 0.5)
            c.paint(s * (d + 25 * bs), 15 * bs, 9 * bs, 32 * bs, a["marrow"], angle=s * 0.5)
        elif level < 140:  # femoral head / acetabulum
            c.paint(fx, fy, 24 * bs, 24 * bs, a["cortex"])
            c.paint(fx, fy, 20 * bs, 20 * bs, a["marrow"])
        else:  # femoral shaft, widening into the condyles at the knee
            rb = _interp(level, [(140, 15), (400, 13), (450, 19), (600, 21)]) * bs
            wide = _interp(level, [(400, 1.0), (450, 1.2), (600, 1.2)])
            c.paint(fx, fy, rb * wide, rb, a["cortex"])
            c.paint(fx, fy, rb * wide * 0.62, rb * 0.62, a["marrow"])
        art, vein = _vessel_frame(a, s, level)
        c.paint(art[0], art[1], art[2], art[2], a["artery"], soft_mm=0.6)
        c.paint(vein[0], vein[1], vein[2], vein[2] * a["vein_ratio"][s], a["vein_hu"][s], soft_mm=0.6)
        if level > 120:  # great saphenous vein, superficial and medial
            g = a["gsv"][s]
            rr = thigh_r - fat * 0.5
            c.paint(s * d - s * math.cos(g) * rr, -math.sin(g) * rr, 2.2, 2.2, a["vein_hu"][s] * 0.85, soft_mm=0.5)
    if distract is not None:
        _draw_distractors(c, a, distract, level, centres if centres is not None else [])
        for s in (-1, 1):  # the deep vessels stay intact (an organ may wrap them, like the IVC in the liver)
            art, vein = _vessel_frame(a, s, level)
            c.paint(art[0], art[1], art[2], art[2], a["artery"], soft_mm=0.6)
            c.paint(vein[0], vein[1], vein[2], vein[2] * a["vein_ratio"][s], a["vein_hu"][s], soft_mm=0.6)
    masks = {}
    for i, les in enumerate(lesions):
        lo, hi = les.level_mm
        if not lo <= level <= hi:
            continue
        _, (vx, vy, rv) = _vessel_frame(a, les.side, level)
        ry = rv * a["vein_ratio"][les.side]
        p = les.params
        u = (level - lo) / max(hi - lo, 1e-6)
        if les.kind == "occlusive":
            # a distended vein: thin enhancing wall (rim sign) around a clot isodense to muscle
            c.paint(vx, vy, rv * 1.12 + 1.0, ry * 1.12 + 1.0, p["rim"], soft_mm=0.5)
            win, m = c.ellipse_mask(vx, vy, rv * 1.12, ry * 1.12)
            out = None
            if win is not None:
                out = np.zeros(shape, np.float32)
                out[win] = m
                c.img += out * (np.float32(p["hu"]) - c.img)
        elif les.kind == "partial":
            taper = 0.7 + 0.3 * math.sin(math.pi * u)
            ang = p["angle"] + p["drift"] * u
            off = p["offset"] * rv
            bx, by = vx + math.cos(ang) * off, vy + math.sin(ang) * off * ry / rv
            win, m = c.ellipse_mask(bx, by, p["r"] * rv * taper, p["r"] * ry * taper * 1.1)
            lw, lm = c.ellipse_mask(vx, vy, rv * 0.97, ry * 0.97)
            out = None
            if win is not None and lw is not None:
                full = np.zeros(shape, np.float32)
                full[win] = m
                lumen = np.zeros(shape, bool)
                lumen[lw] = lm > 0
                full *= lumen  # the clot is inside the lumen
                c.img += full * (np.float32(p["hu"]) - c.img)
                out = full
        else:  # mixing streak: a soft, swirling stripe of partly mixed blood
            ang = p["angle"] + 2 * math.pi * (level - lo) / p["period"]
            c.paint(vx + math.cos(ang) * 0.25 * rv, vy + math.sin(ang) * 0.25 * ry, rv * p["len"], rv * p["thin"],
                    p["hu"], angle=ang, soft_mm=1.2, within=100.0)
            out = None
        if out is not None:
            masks[i] = out
    img = cv2.GaussianBlur(c.img, (0, 0), 0.5 / min(ps, 1.0) * 0.8)  # scanner PSF, keeps edges realistic
    if distract is not None:
        img = _texture(img, distract, level, ps)
    noise = rng.standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), distract["noise_blur"] if distract is not None else 0.7)
    gain = distract["noise_gain"] if distract is not None else 1.0
    noise *= a["noise"] * gain / max(float(noise.std()), 1e-6)  # correlated noise with the study's sigma (HU)
    body = img > -500
    img[body] += noise[body]
    img[~body] += noise[~body] * 0.3
    return img, masks


def _box_of(mask) -> list[float] | None:
    if isinstance(mask, tuple):
        return None
    m = mask > 0.5
    if m.sum() < 2:
        return None
    rows, cols = np.nonzero(m)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


# ------------------------------------------------------------------------------------ distractors (negatives)
# Domain randomisation: structures real CT has and the thigh phantoms lack, none of them a venous filling defect.
# Each is a 3D object (a level range and a drift along z, so it also looks plausible to a k-slice model):
#   rib      - a small bone ring (cortex 400-1300 HU) around darker marrow (30-250 HU): bright rim, dark centre
#   bowel    - an enhancing wall (80-220 HU) around fluid, positive oral contrast, gas (-1000 HU) or mottled faeces
#   organ    - liver/spleen/kidney-like parenchyma (90-180 HU) with brighter branching vessels, dark cysts and,
#              for a kidney, low-HU medullary pyramids inside an enhancing cortex
#   vessel   - small arteries/veins (1.5-4 mm, 150-320 HU), some with a calcified wall
#   calc     - calcifications (0.5-2 mm, 400-1000 HU)
#   node     - lymph nodes (30-60 HU ovals, 3-9 mm) beside the deep vessels (never inside them)
# plus per-study texture: beam-hardening streaks between the bones, fat stranding, muscle heterogeneity
# (a smooth +-5-20 HU field) and a noise grain of varying correlation length.
# "Abdominal-like" studies (heavy) carry many of them; some of those carry no thrombus at all (negative_only).
def _sample_distractors(rng: np.random.Generator, a: dict, fov_mm: float, lv0: float, lv1: float) -> dict:
    heavy = rng.random() < 0.35
    w, d = a["width"], a["d"]
    span = lv1 - lv0

    per = (span + 40) / 60.0  # counts below are per ~60 mm of study, so the density per slice is similar

    def n(lo, hi, hlo, hhi):
        return int(round((rng.integers(hlo, hhi + 1) if heavy else rng.integers(lo, hi + 1)) * per))

    def place(length):
        mid = rng.uniform(lv0 - 10, lv1 + 10)
        length = min(length, span + 40)
        return (mid - length / 2, mid + length / 2), mid, (rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4))

    def pos(periphery=False):
        ang = rng.uniform(0, 2 * math.pi)
        f = rng.uniform(0.8, 0.97) if periphery else math.sqrt(rng.uniform(0.02, 0.8))
        return math.cos(ang) * f * w / 2, math.sin(ang) * f * w * 0.33

    objs = []
    for _ in range(n(0, 6, 6, 16)):
        lv, mid, drift = place(rng.uniform(10, 60))
        ra = rng.uniform(4, 9)
        objs.append({"kind": "rib", "lv": lv, "mid": mid, "drift": (drift[0] * 2, drift[1] * 2),
                     "xy": pos(periphery=rng.random() < 0.7), "r": (ra, ra * rng.uniform(0.4, 0.75)),
                     "angle": rng.uniform(0, math.pi), "cortex": rng.uniform(400, 1300),
                     "marrow": rng.uniform(30, 250), "shell": rng.uniform(0.55, 0.8)})
    for _ in range(n(0, 3, 3, 9)):
        lv, mid, drift = place(rng.uniform(15, 80))
        r = rng.uniform(7, 22)
        objs.append({"kind": "bowel", "lv": lv, "mid": mid, "drift": (drift[0] * 2.5, drift[1] * 2.5), "xy": pos(),
                     "r": (r, r * rng.uniform(0.45, 1.0)), "angle": rng.uniform(0, math.pi),
                     "wall": rng.uniform(80, 220), "wall_mm": rng.uniform(1.2, 3.5),
                     "content": str(rng.choice(["fluid", "contrast", "gas", "faeces", "gas_fluid"])),
                     "fluid": rng.uniform(-5, 35), "oral": rng.uniform(150, 600),
                     "bubbles": [(rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(0.8, 3.0), rng.uniform(0, 1))
                                 for _ in range(int(rng.integers(3, 12)))]})
    for _ in range(n(0, 1, 1, 3)):
        lv, mid, drift = place(rng.uniform(40, 160))
        kidney = rng.random() < 0.45
        rx = rng.uniform(25, 45) if kidney else rng.uniform(35, 85)
        par = rng.uniform(140, 220) if kidney else rng.uniform(90, 180)
        objs.append({"kind": "organ", "lv": lv, "mid": mid, "drift": (drift[0] * 0.3, drift[1] * 0.3), "xy": pos(),
                     "r": (rx, rx * rng.uniform(0.5, 0.8)), "angle": rng.uniform(0, math.pi), "hu": par,
                     "kidney": kidney,
                     "vessels": [(rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), rng.uniform(6, 25), rng.uniform(0.7, 2.0),
                                  rng.uniform(0, math.pi), par + rng.uniform(50, 150), rng.uniform(0.005, 0.03))
                                 for _ in range(int(rng.integers(3, 10)))],
                     "cysts": [(rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(2, 10), rng.uniform(-5, 25))
                               for _ in range(int(rng.integers(0, 4)))],
                     "pyramids": [(rng.uniform(0, 2 * math.pi), rng.uniform(0.35, 0.6), rng.uniform(3, 7), rng.uniform(30, 100))
                                  for _ in range(int(rng.integers(4, 8)) if kidney else 0)]})
    for _ in range(n(0, 8, 8, 22)):
        lv, mid, drift = place(rng.uniform(15, 150))
        r = rng.uniform(1.5, 4.0)
        objs.append({"kind": "vessel", "lv": lv, "mid": mid, "drift": drift, "xy": pos(), "r": (r, r * rng.uniform(0.7, 1.0)),
                     "angle": rng.uniform(0, math.pi), "hu": rng.uniform(150, 320),
                     "calc": rng.uniform(400, 900) if rng.random() < 0.25 else None, "calc_ang": rng.uniform(0, 2 * math.pi)})
    for _ in range(n(0, 6, 3, 10)):
        lv, mid, drift = place(rng.uniform(2, 10))
        r = rng.uniform(0.5, 2.0)
        objs.append({"kind": "calc", "lv": lv, "mid": mid, "drift": drift, "xy": pos(), "r": (r, r), "angle": 0.0,
                     "hu": rng.uniform(400, 1000)})
    for _ in range(n(0, 4, 2, 6)):
        lv, mid, _ = place(rng.uniform(5, 25))
        r = rng.uniform(3, 9)
        objs.append({"kind": "node", "lv": lv, "mid": mid, "side": int(rng.choice([-1, 1])), "gap": rng.uniform(1.0, 4.0),
                     "dir": rng.uniform(0, 2 * math.pi), "r": (r, r * rng.uniform(0.5, 0.9)), "angle": rng.uniform(0, math.pi),
                     "hu": rng.uniform(30, 60)})
    tex = rng.standard_normal((10, 10)).astype(np.float32)
    return {
        "heavy": heavy, "negative_only": heavy and rng.random() < 0.3, "objects": objs,
        "beam": [(rng.uniform(-60, 160), rng.uniform(0.5, 2.5), rng.uniform(-0.3, 0.3)) for _ in range(int(rng.integers(0, 4)))],
        "strands": [(pos(), rng.uniform(0, math.pi), rng.uniform(8, 40), rng.uniform(30, 90)) for _ in range(n(0, 4, 3, 10))],
        "muscle_tex": (tex, rng.uniform(5, 20)), "noise_blur": rng.uniform(0.5, 1.3), "noise_gain": rng.uniform(0.8, 1.5),
    }


def _draw_distractors(c: _Canvas, a: dict, dist: dict, level: float, centres: list) -> None:
    """Paint the distractors present at ``level`` on ``c`` (before the deep vessels are repainted and lesions drawn)."""
    vessels = [v for s in (-1, 1) for v in _vessel_frame(a, s, level)]

    def clear(x, y, r):  # small objects keep off the deep vessels, so ground truth and veins stay clean
        return all(math.hypot(x - vx, y - vy) > r + vr + 1.5 for vx, vy, vr in vessels)

    for o in sorted(dist["objects"], key=lambda o: o["kind"] != "organ"):  # organs first, small things on top
        lo, hi = o["lv"]
        if not lo <= level <= hi:
            continue
        (rx, ry), ang = o["r"], o["angle"]
        if o["kind"] == "node":
            _, (vx, vy, vr) = _vessel_frame(a, o["side"], level)
            dd = vr + rx + o["gap"]
            x, y = vx + math.cos(o["dir"]) * dd, vy + math.sin(o["dir"]) * dd
        else:
            t = level - o["mid"]
            x, y = o["xy"][0] + o["drift"][0] * t, o["xy"][1] + o["drift"][1] * t
        if o["kind"] != "organ" and not clear(x, y, max(rx, ry)):
            continue
        k = o["kind"]
        if k == "rib":
            if c.paint(x, y, rx, ry, o["cortex"], angle=ang, soft_mm=0.4, within=-500) is None:
                continue
            c.paint(x, y, rx * o["shell"], ry * o["shell"], o["marrow"], angle=ang, soft_mm=0.4, within=-500)
        elif k == "bowel":
            if c.paint(x, y, rx, ry, o["wall"], angle=ang, soft_mm=0.5, within=-500) is None:
                continue
            ix, iy = max(rx - o["wall_mm"], 1.0), max(ry - o["wall_mm"], 1.0)
            kind = o["content"]
            base = {"fluid": o["fluid"], "contrast": o["oral"], "gas": AIR, "faeces": o["fluid"] + 20,
                    "gas_fluid": o["fluid"]}[kind]
            c.paint(x, y, ix, iy, base, angle=ang, soft_mm=0.5, within=-500)
            if kind == "gas_fluid":  # air-fluid level: gas rises anteriorly (smaller y)
                c.paint(x, y - iy * 0.5, ix * 0.85, iy * 0.5, AIR, soft_mm=0.3, within=-900)
            if kind == "faeces":  # mottled: gas bubbles in soft content
                for bx, by, br, _ in o["bubbles"]:
                    c.paint(x + bx * ix, y + by * iy, br, br, AIR, soft_mm=0.3, within=-500)
        elif k == "organ":
            if c.paint(x, y, rx, ry, o["hu"], angle=ang, soft_mm=1.0, within=-500, below=300) is None:
                continue
            ca, sa = math.cos(ang), math.sin(ang)
            rot = (lambda u, v: (x + (u * rx) * ca - (v * ry) * sa, y + (u * rx) * sa + (v * ry) * ca))
            for u, v, length, width, va, vhu, turn in o["vessels"]:
                px, py = rot(u, v)
                c.paint(px, py, length, width, vhu, angle=va + turn * level, soft_mm=0.4, within=60, below=300)
            for u, v, r, chu in o["cysts"]:
                px, py = rot(u, v)
                c.paint(px, py, r, r, chu, soft_mm=0.6, within=60, below=300)
                centres.append((px, py))
            for pa, pf, r, phu in o["pyramids"]:  # dark medulla inside the enhancing cortex
                px, py = rot(math.cos(pa) * pf, math.sin(pa) * pf)
                c.paint(px, py, r, r * 0.6, phu, angle=pa, soft_mm=1.0, within=60, below=300)
                centres.append((px, py))
        elif k == "vessel":
            if c.paint(x, y, rx, ry, o["hu"], angle=ang, soft_mm=0.5, within=-500, below=300) is None:
                continue
            if o["calc"] is not None:
                c.paint(x + math.cos(o["calc_ang"]) * rx, y + math.sin(o["calc_ang"]) * ry, 0.8, 0.8, o["calc"],
                        within=-500)
        elif k == "calc":
            if c.paint(x, y, rx, ry, o["hu"], within=-500) is None:
                continue
        elif k == "node":
            if c.paint(x, y, rx, ry, o["hu"], angle=ang, soft_mm=0.8, within=-500, below=150) is None:
                continue
        centres.append((x, y))
    for (sx, sy), sa, length, dhu in dist["strands"]:  # fat stranding: thin soft-tissue lines in fat
        c.paint(sx, sy, length, 0.6, FAT + dhu, angle=sa + 0.002 * level, soft_mm=0.5, within=-500, below=-40)


def _texture(img: np.ndarray, dist: dict, level: float, ps: float) -> np.ndarray:
    """Muscle heterogeneity (a smooth field on soft tissue) and beam-hardening streaks between the bones."""
    h, w = img.shape
    tex, amp = dist["muscle_tex"]
    field_ = cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC) * amp
    soft = (img > -30) & (img < 110)
    img = img + field_ * soft
    if dist["beam"]:
        streak = np.zeros((h, w), np.float32)
        for dy, width_mm, slope in dist["beam"]:  # dark bands across the body at the level of the bones
            y0 = h / 2 + (dy + 8 * math.sin(level / 40.0)) / ps
            cv2.line(streak, (0, int(y0)), (w - 1, int(y0 + slope * w)), 1.0, max(1, int(round(width_mm / ps))))
        streak = cv2.GaussianBlur(streak, (0, 0), 1.0)
        img = img - streak * np.float32(60.0) * (img > -500)
    return img


def make_study(seed: int, size: int = 512, n_slices: int | None = None, thickness_mm: float | None = None,
               n_thrombi: int | None = None, n_streaks: int | None = None,
               distractors: float | bool = False) -> Study:
    """Render the phantom study of ``seed`` (same seed -> identical study).

    distractors: probability (True = 1) that the study carries non-venous look-alikes (:func:`_sample_distractors`),
    drawn from a separate generator so the base anatomy, lesions and ground truth of a seed do not change.

    size: H = W in pixels. Pixel spacing is drawn in 0.6-1.0 mm for size 512 and scaled by 512/size otherwise,
    so a small test image keeps the same field of view. Counts default to random draws (0-3 thrombi, 0-2 streaks).
    """
    rng = np.random.default_rng(seed)
    ps = rng.uniform(0.6, 1.0) * 512.0 / size
    dz = float(thickness_mm or rng.choice(THICKNESSES_MM))
    n = int(n_slices or min(MAX_SLICES, int(rng.uniform(100, 260) / dz) + 8))
    a = _sample_anatomy(rng, size * ps)
    extent = (n - 1) * dz
    start = rng.uniform(0, max(1.0, 470 - extent))  # anatomical level of the most cranial slice
    levels = start + extent - np.arange(n) * dz  # index 0 = most caudal (largest level)
    positions = -levels
    lesions: list[Lesion] = []
    nt = int(rng.choice([0, 1, 1, 2, 2, 3]) if n_thrombi is None else n_thrombi)
    ns = int(rng.choice([0, 1, 1, 2]) if n_streaks is None else n_streaks)
    for k in range(nt + ns):
        side = int(rng.choice([-1, 1]))
        if k < nt:
            kind = str(rng.choice(["partial", "occlusive"]))
            length = rng.uniform(3, 60)
            centre = levels[int(rng.integers(0, n))]  # on a slice centre, so every clot hits >= 1 slice
            lo = centre - rng.uniform(0, 1) * length
            params = {"hu": rng.uniform(40, 70), "angle": rng.uniform(0, 2 * math.pi), "drift": rng.uniform(-1, 1),
                      "offset": rng.uniform(0.2, 0.45), "r": rng.uniform(0.42, 0.7),
                      "rim": rng.uniform(100, 140)}
        else:
            kind = "mixing_streak"
            length = rng.uniform(80, 200)
            lo = rng.uniform(start - 40, start + extent - 40)
            params = {"hu": rng.uniform(70, 120), "angle": rng.uniform(0, 2 * math.pi), "period": rng.uniform(25, 60),
                      "len": rng.uniform(0.6, 0.85), "thin": rng.uniform(0.2, 0.35)}
        lesions.append(Lesion(kind, side, (lo, lo + length), params))
    drng = np.random.default_rng([seed, 0xD157])
    distract = None
    if float(distractors) > 0 and drng.random() < float(distractors):
        distract = _sample_distractors(drng, a, size * ps, float(levels.min()), float(levels.max()))
        if distract["negative_only"]:
            lesions = [les for les in lesions if les.kind == "mixing_streak"]
    hu = np.empty((n, size, size), np.float32)
    veins, centres = [], []
    for i in range(n):
        srng = np.random.default_rng([seed, i])
        cs: list = []
        hu[i], masks = _render(a, float(levels[i]), (size, size), ps, lesions, srng, distract, cs)
        centres.append([(x / ps + size / 2, y / ps + size / 2) for x, y in cs])
        for j, m in masks.items():
            box = _box_of(m)
            if box is not None:
                lesions[j].boxes[i] = box
        per = {}
        for s in (-1, 1):
            _, (vx, vy, rv) = _vessel_frame(a, s, float(levels[i]))
            per[s] = (vx / ps + size / 2, vy / ps + size / 2, rv / ps)
        veins.append(per)
    for les in lesions:  # a streak has no mask; record its vein's box per slice (for hard-negative sampling)
        if les.kind == "mixing_streak":
            for i in range(n):
                if les.level_mm[0] <= levels[i] <= les.level_mm[1]:
                    x, y, r = veins[i][les.side]
                    les.boxes[i] = [x - r, y - r, x + r, y + r]
    thrombi = [t for t in lesions if t.kind != "mixing_streak" and t.boxes]
    mimics = [t for t in lesions if t.kind == "mixing_streak" and t.boxes]
    return Study(seed, hu, positions.astype(np.float64), (ps, ps), dz, thrombi, mimics, veins, centres)


def main(argv: list[str] | None = None) -> int:
    from training.ct.phantom_io import write_study

    ap = argparse.ArgumentParser(description="Write synthetic CT venography phantom studies (not for diagnostic use).")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="study i uses seed + i")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--no-nifti", action="store_true", help="skip the NIfTI volume")
    ap.add_argument("--shuffle-names", action="store_true", help="random DICOM file names (readers must sort)")
    args = ap.parse_args(argv)
    for i in range(args.studies):
        t0 = time.perf_counter()
        study = make_study(args.seed + i, size=args.size)
        out = write_study(study, args.out / f"study-{args.seed + i:06d}", nifti=not args.no_nifti,
                          shuffle_names=args.shuffle_names)
        print(f"[{i + 1}/{args.studies}] {out}: {len(study.hu)} slices x {study.thickness_mm:g} mm, "
              f"{len(study.thrombi)} thrombi, {len(study.mimics)} streaks ({time.perf_counter() - t0:.1f} s)",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
