"""Non-venous look-alike structures for the CT phantom (domain randomisation against false findings)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.ct.anatomy import AIR, FAT, _Canvas, _vessel_frame


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
    w = a["width"]
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
