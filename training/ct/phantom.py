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
Clots drawn in the same vein whose boxes overlap on a slice are one lesion (:func:`merge_overlapping`): one
filling defect on the image, one ground-truth box per slice; merged lesions can be longer than 60 mm.

CLI: ``python -m training.ct.phantom --out DIR --studies N --seed S [--size 512]`` writes, per study, a DICOM
series, a NIfTI volume and ``ground_truth.json`` (see :mod:`training.ct.phantom_io`). The :class:`Study` and
:class:`Lesion` records this renderer fills (and the writers and the second renderer share) are in
:mod:`training.ct.study`.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import cv2
import numpy as np

from training.ct.anatomy import AIR, FAT, _Canvas, _interp, _sample_anatomy, _thigh_r, _vessel_frame
from training.ct.distractors import _draw_distractors, _sample_distractors, _texture
from training.ct.study import Lesion, Study, box_of

THICKNESSES_MM = (1.0, 2.0, 3.0, 5.0)
MAX_SLICES = 120  # keeps a study's memory and render time bounded (1 mm slices cover 120 mm)


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


def _widen(a: dict, rng: np.random.Generator, fov_mm: float) -> dict:
    """Widened randomisation (``make_study(wide=P)``, its own generator so a seed's base study is unchanged):
    venous contrast 120-450 HU (arteries 0.8-1.5x), vein calibre x0.6-1.3, and a region crop (a circle or a
    rectangle of 45-130 mm around one vessel bundle, air outside) in half of the studies. Returns the crop spec
    (or None in the dict under "crop")."""
    v = rng.uniform(120, 450)
    a["vein"] = v
    a["vein_hu"] = {s: v * rng.uniform(0.93, 1.07) for s in (-1, 1)}
    a["artery"] = float(np.clip(v * rng.uniform(0.8, 1.5), 150, 600))
    f = rng.uniform(0.6, 1.3)
    a["vein_r"] = {s: r * f for s, r in a["vein_r"].items()}
    if rng.random() < 0.5:
        return {"side": int(rng.choice([-1, 1])), "r": rng.uniform(45, 130), "rect": bool(rng.random() < 0.5),
                "aspect": rng.uniform(0.6, 1.0), "dx": rng.uniform(-20, 20), "dy": rng.uniform(-20, 20)}
    return None


def _crop_mask(crop: dict, a: dict, level: float, shape, ps: float) -> np.ndarray:
    _, (vx, vy, _) = _vessel_frame(a, crop["side"], 150.0)  # fixed window (a reconstruction field)
    h, w = shape
    xs = (np.arange(w, dtype=np.float32) + 0.5 - w / 2) * ps - (vx + crop["dx"])
    ys = (np.arange(h, dtype=np.float32) + 0.5 - h / 2) * ps - (vy + crop["dy"])
    r, ry = crop["r"], crop["r"] * crop["aspect"]
    if crop["rect"]:
        return (np.abs(xs)[None, :] <= r) & (np.abs(ys)[:, None] <= ry)
    return (xs[None, :] / r) ** 2 + (ys[:, None] / ry) ** 2 <= 1.0


def _box_of(mask) -> list[float] | None:
    return None if isinstance(mask, tuple) else box_of(mask)



def make_study(seed: int, size: int = 512, n_slices: int | None = None, thickness_mm: float | None = None,
               n_thrombi: int | None = None, n_streaks: int | None = None,
               distractors: float | bool = False, wide: float | bool = False) -> Study:
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
    wrng = np.random.default_rng([seed, 0x51DE])
    crop = None
    if float(wide) > 0 and wrng.random() < float(wide):
        crop = _widen(a, wrng, size * ps)
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
        if crop is not None:  # a region crop: only a window of the body was reconstructed / is in the field
            keep = _crop_mask(crop, a, float(levels[i]), (size, size), ps)
            hu[i][~keep] = AIR + srng.standard_normal(int((~keep).sum())).astype(np.float32) * 4.0
            masks = {j: m * keep for j, m in masks.items()}
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
    thrombi = merge_overlapping([t for t in lesions if t.kind != "mixing_streak" and t.boxes])
    mimics = [t for t in lesions if t.kind == "mixing_streak" and t.boxes]
    return Study(seed, hu, positions.astype(np.float64), (ps, ps), dz, thrombi, mimics, veins, centres)


def merge_overlapping(thrombi: list[Lesion]) -> list[Lesion]:
    """Thrombi whose boxes overlap on any slice become ONE ground-truth lesion (boxes: the union per slice).

    Two clots drawn in the same vein at the same level form one filling defect on the image: a reader boxes
    it once, and a detector with NMS can only find it once. Kept apart, they put two near-identical boxes on
    the slice, one of which no detector could ever match (12% of all ground-truth boxes on 24 phantom studies
    before this rule). Only the ground truth changes; the rendered HU do not.
    """
    parent = list(range(len(thrombi)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(len(thrombi)):
        for b in range(a + 1, len(thrombi)):
            ta, tb = thrombi[a], thrombi[b]
            if ta.side == tb.side and any(_overlap(ta.boxes[i], tb.boxes[i]) for i in ta.boxes.keys() & tb.boxes.keys()):
                parent[root(b)] = root(a)
    groups: dict[int, list[Lesion]] = {}
    for i, t in enumerate(thrombi):
        groups.setdefault(root(i), []).append(t)
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        boxes: dict[int, list[float]] = {}
        for t in members:
            for i, b in t.boxes.items():
                c = boxes.get(i)
                boxes[i] = list(b) if c is None else [min(c[0], b[0]), min(c[1], b[1]), max(c[2], b[2]), max(c[3], b[3])]
        kind = "occlusive" if any(t.kind == "occlusive" for t in members) else "partial"
        level = (min(t.level_mm[0] for t in members), max(t.level_mm[1] for t in members))
        out.append(Lesion(kind, members[0].side, level, {**members[0].params, "merged_from": len(members)}, boxes))
    return out


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


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
