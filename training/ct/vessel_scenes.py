"""Randomised vessel scenes: training data in which the filling-defect sign is the only constant (training only).

The detector trained on ``phantom.py`` (and one real crop) learned that renderer's thighs and pelvis: on studies
drawn by somebody else it found few clots (issue 10). These scenes take the scene away. Every study is drawn from
wide ranges with no fixed anatomy:

- a field of view that is a body (one large section), one or two limbs, or a crop with tissue to the edges; fat and
  muscle mixed by smooth random textures that change along z; bones (cortex 500-1400 HU around marrow of -80-250 HU:
  a bright ring around something darker, the classic false positive), organs, lymph nodes beside vessels;
- 2-8 tubes of 5-18 mm (oval, oblique, wavy), contrast 130-480 HU (``wide``: also trunks of 16-30 mm, tubes running
  steeply oblique near the slice plane, contrast up to 600 HU), some in artery-vein pairs touching each other,
  some branching (the tissue wedge of a bifurcation), some unopacified (a dark tube with no bright lumen anywhere);
  thin bright or faint walls, calcified plaques;
- filling defects (the label) in 70% of studies: **partial** (a clot of 15-75 HU inside the lumen, central with
  contrast all round or adherent to the wall with a crescent of contrast, tapered ends) or **occlusive** (the lumen
  filled over 10-80 mm, often distended, sometimes with an enhancing rim, rounded tips with contrast around them);
- look-alikes that are not labelled: mixing streaks (soft, swirling, partly mixed blood, >= 60 mm), beam-hardening
  streaks across the field, the dark wedge where vessels meet or touch, bone rings, nodes;
- physics: every slice is averaged over its thickness (0.8-5 mm, partial volume along z), blurred by a random in-plane
  point-spread function, and given noise of random level (6-35 HU) and grain.

Written for this purpose: not ``phantom.py`` (the first renderer, whose scenes it is meant to break) and not the
second renderer (``second_renderer*.py``, kept for evaluation only; nothing here reads or imitates it).

    python -m training.ct.vessel_scenes --out DIR --studies 4 --seed 31000   # DICOM + NIfTI + ground truth, to look at
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from training.ct.scene_geometry import Canvas, Defect, Tube, blend_inside, random_field
from training.ct.study import Lesion, Study, box_of

AIR = -1000.0
THICKNESSES_MM = (0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
MAX_SLICES = 90


class Scene:
    """A randomised study: layout, tissue textures, bones, tubes, defects, look-alikes, scanner."""

    def __init__(self, seed: int, size: int = 512, wide: bool = False):
        rng = self.rng = np.random.default_rng([seed, 0x5CE4E])
        self.seed, self.wide = seed, wide
        self.ps = float(rng.uniform(0.55, 1.0))
        fov = float(rng.uniform(200, 460))
        self.size = int(min(size, max(256, round(fov / self.ps / 16) * 16)))
        self.dz = float(rng.choice(THICKNESSES_MM))
        extent = float(rng.uniform(50, 170))
        self.n = int(np.clip(round(extent / self.dz), 24, MAX_SLICES))
        self.z = np.arange(self.n) * self.dz
        half = self.size * self.ps / 2
        self.layout = str(rng.choice(["body", "limbs", "field"], p=[0.35, 0.4, 0.25]))
        self.bodies = self._bodies(half)
        self.fat_hu, self.muscle_hu = float(rng.uniform(-125, -60)), float(rng.uniform(25, 70))
        self.fat_share = float(rng.uniform(-1.2, 0.6))  # texture threshold: higher = less intermuscular fat
        self.tex = [random_field(rng, self.size, rng.uniform(12, 40)) for _ in range(3)]
        for _ in range(2):  # drawn and unused: kept so every seed still gives the studies the shipped ctdet-k3 trained on
            random_field(rng, self.size, rng.uniform(2, 5))
        self.tex_period = float(rng.uniform(40, 160))
        self.bones = self._bones()
        self.organs = self._organs()
        self.tubes = self._tubes()
        self.defects = self._defects()
        self.nodes = self._nodes()
        self.calcs = [(int(rng.integers(len(self.tubes))), float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(400, 900)),
                       float(rng.uniform(0.6, 1.6)), float(rng.uniform(self.z[0], self.z[-1])), float(rng.uniform(4, 20)))
                      for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.4 else 0)]
        self.streaks = [(float(rng.uniform(0, math.pi)), float(rng.uniform(-0.6, 0.6) * half), float(rng.uniform(-90, 60)),
                         float(rng.uniform(0.6, 2.5))) for _ in range(int(rng.integers(1, 6)) if rng.random() < 0.35 else 0)]
        self.noise_hu = float(rng.uniform(6, 35))
        self.noise_grain = float(rng.uniform(0.4, 1.3))
        self.psf_mm = float(rng.uniform(0.35, 1.0))
        self.cupping = float(rng.uniform(-25, 25)) if rng.random() < 0.4 else 0.0

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        """mm (0 at the centre) -> pixel coordinates."""
        return x / self.ps + self.size / 2, y / self.ps + self.size / 2

    # ----- layout ------------------------------------------------------------------------------------------------
    def _bodies(self, half: float) -> list[tuple]:
        rng = self.rng
        if self.layout == "field":
            return []
        if self.layout == "body":
            return [(rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(0.6, 1.05) * half, rng.uniform(0.45, 0.85) * half,
                     rng.uniform(-0.2, 0.2), rng.uniform(8, 35))]
        n = int(rng.integers(1, 3))
        r = rng.uniform(0.28, 0.5) * half if n == 2 else rng.uniform(0.4, 0.8) * half
        gap = rng.uniform(1.0, 1.25) * r
        out = []
        for i in range(n):
            x = (i - (n - 1) / 2) * 2 * gap + rng.uniform(-10, 10)
            out.append((x, rng.uniform(-15, 15), r * rng.uniform(0.85, 1.1), r * rng.uniform(0.8, 1.05),
                        rng.uniform(-0.4, 0.4), rng.uniform(5, 25)))
        return out

    def _inside(self, x: float, y: float, margin: float) -> bool:
        half = self.size * self.ps / 2
        if abs(x) > half - margin or abs(y) > half - margin:
            return False
        if not self.bodies:
            return True
        for bx, by, rx, ry, ang, fat in self.bodies:
            c, s = math.cos(ang), math.sin(ang)
            u, v = ((x - bx) * c + (y - by) * s) / (rx - fat - margin), (-(x - bx) * s + (y - by) * c) / (ry - fat - margin)
            if rx - fat - margin > 0 and ry - fat - margin > 0 and u * u + v * v < 1:
                return True
        return False

    def _point(self, margin: float) -> tuple[float, float]:
        half = self.size * self.ps / 2
        for _ in range(200):
            x, y = self.rng.uniform(-half, half, 2)
            if self._inside(float(x), float(y), margin):
                return float(x), float(y)
        return 0.0, 0.0

    def _bones(self) -> list[tuple]:
        rng = self.rng
        n = int(rng.integers(0, 3 if self.layout != "body" else 4))
        out = []
        for _ in range(n):
            r = float(rng.uniform(6, 24))
            x, y = self._point(r + 5)
            out.append((x, y, r, r * rng.uniform(0.75, 1.0), rng.uniform(0, math.pi), rng.uniform(1.5, 6), rng.uniform(500, 1400),
                        rng.uniform(-80, 250), rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15)))
        return out

    def _organs(self) -> list[tuple]:
        rng = self.rng
        if self.layout != "body" or rng.random() < 0.4:
            return []
        out = []
        for _ in range(int(rng.integers(1, 4))):
            x, y = self._point(20)
            out.append((x, y, rng.uniform(15, 60), rng.uniform(12, 45), rng.uniform(0, math.pi), rng.uniform(45, 140)))
        return out

    def _clear(self, x: float, y: float, r: float, placed: list[tuple[float, float, float]]) -> bool:
        return all(math.hypot(x - px, y - py) > r + pr + 1.0 for px, py, pr in placed)

    def _tubes(self) -> list[Tube]:
        rng, zc = self.rng, float(self.z[len(self.z) // 2])
        placed = [(b[0], b[1], b[2] + 2) for b in self.bones]
        tubes: list[Tube] = []
        want = int(rng.integers(2, 9))
        tries = 0
        while len(tubes) < want and tries < 200:
            tries += 1
            r = float(rng.uniform(2.5, 9.0)) if rng.random() < 0.85 else float(rng.uniform(1.5, 3.0))
            if self.wide and rng.random() < 0.3:  # a large trunk: iliac vein, IVC, a central artery (8-15 mm radius)
                r = float(rng.uniform(8.0, 15.0))
            x, y = self._point(r + 4)
            if not self._clear(x, y, r, placed):
                continue
            slope = (float(rng.uniform(-0.45, 0.45)), float(rng.uniform(-0.45, 0.45))) if rng.random() < 0.5 else (0.0, 0.0)
            if self.wide and rng.random() < 0.25:  # steeply oblique, near the slice plane (iliac, branches): a band
                a, m = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.6, 2.2))
                slope = (m * math.cos(a), m * math.sin(a))
            wob = (float(rng.uniform(0, 6)), float(rng.uniform(0, 6)), float(rng.uniform(50, 220)), float(rng.uniform(0, 6.3)))
            opac = rng.random() > 0.1
            hu = float(rng.uniform(130, 480)) if opac else float(rng.uniform(20, 75))
            if self.wide and opac:  # arterial-phase or pulmonary-angiography contrast as well
                hu = float(rng.uniform(130, 600))
            t = Tube(x, y, zc, slope, wob, r, float(rng.uniform(0.55, 1.0)), float(rng.uniform(0, math.pi)), hu,
                     float(rng.uniform(-40, 120)) if rng.random() < 0.5 else 0.0, float(rng.uniform(0.5, 1.5)), opac,
                     sweep=float(rng.uniform(-0.004, 0.004)))
            tubes.append(t)
            placed.append((x, y, r))
            if rng.random() < 0.45 and len(tubes) < want:  # a companion running alongside (artery-vein pair)
                r2 = float(rng.uniform(2.5, 8.0))
                a = float(rng.uniform(0, 2 * math.pi))
                d = r + r2 + float(rng.uniform(0.3, 4.0))
                x2, y2 = x + d * math.cos(a), y + d * math.sin(a)
                if self._inside(x2, y2, r2 + 2) and self._clear(x2, y2, r2, placed[:-1]):
                    opac2 = rng.random() > 0.08
                    tubes.append(Tube(x2, y2, zc, slope, wob, r2, float(rng.uniform(0.55, 1.0)),
                                      float(rng.uniform(0, math.pi)), float(rng.uniform(130, 480)) if opac2 else float(rng.uniform(20, 75)),
                                      float(rng.uniform(-40, 120)) if rng.random() < 0.5 else 0.0, float(rng.uniform(0.5, 1.5)),
                                      opac2))
                    placed.append((x2, y2, r2))
        if rng.random() < 0.35:  # a branch: the dark tissue wedge where two lumens part
            cand = [i for i, t in enumerate(tubes) if t.opacified and t.parent is None]
            if cand:
                p = int(rng.choice(cand))
                a = float(rng.uniform(0, 2 * math.pi))
                sp = float(rng.uniform(0.15, 0.5))
                zb = float(rng.uniform(self.z[0], self.z[-1]))
                tubes.append(Tube(0.0, 0.0, zb, (sp * math.cos(a), sp * math.sin(a)), (0.0, 0.0, 100.0, 0.0),
                                  tubes[p].r * float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.7, 1.0)), 0.0,
                                  tubes[p].hu * float(rng.uniform(0.9, 1.1)), tubes[p].wall, tubes[p].wall_mm, True, parent=p))
        return tubes

    def _defects(self) -> list[Defect]:
        rng = self.rng
        cand = [i for i, t in enumerate(self.tubes) if t.opacified and t.parent is None and t.r >= 2.5]
        out: list[Defect] = []
        z0, z1 = float(self.z[0]), float(self.z[-1])
        n = 0 if (rng.random() < 0.3 or not cand) else int(rng.integers(1, 4))
        for _ in range(n):
            ti = int(rng.choice(cand))
            if rng.random() < 0.6:
                length = float(rng.uniform(6, 70))
                c = float(rng.uniform(z0 - 0.3 * length, z1 + 0.3 * length))
                out.append(Defect(ti, "partial", c - length / 2, c + length / 2, float(rng.uniform(15, 75)), {
                    "offset": float(rng.uniform(0, 0.55)), "angle": float(rng.uniform(0, 2 * math.pi)),
                    "drift": float(rng.uniform(-1.2, 1.2)), "f": float(rng.uniform(0.3, 0.75)),
                    "aspect": float(rng.uniform(0.7, 1.3)), "spin": float(rng.uniform(0, math.pi))}))
            else:
                length = float(rng.uniform(10, 80))
                c = float(rng.uniform(z0 - 0.3 * length, z1 + 0.3 * length))
                out.append(Defect(ti, "occlusive", c - length / 2, c + length / 2, float(rng.uniform(15, 75)), {
                    "distend": float(rng.uniform(1.0, 1.5)), "cap": float(rng.uniform(2, 10)),
                    "rim": float(rng.uniform(90, 170)) if rng.random() < 0.6 else None,
                    "rim_mm": float(rng.uniform(0.6, 1.5))}))
        taken = {d.tube for d in out}
        for i, t in enumerate(self.tubes):  # mixing streaks in clot-free opacified tubes: look-alikes, not labelled
            if t.opacified and i not in taken and t.parent is None and rng.random() < 0.25:
                length = float(rng.uniform(60, 200))
                c = float(rng.uniform(z0, z1))
                out.append(Defect(i, "mixing_streak", c - length / 2, c + length / 2,
                                  float(t.hu - rng.uniform(0.25, 0.55) * (t.hu - 40)), {
                                      "angle": float(rng.uniform(0, 2 * math.pi)), "period": float(rng.uniform(25, 70)),
                                      "len": float(rng.uniform(0.6, 0.9)), "thin": float(rng.uniform(0.2, 0.4))}))
        return out

    def _nodes(self) -> list[tuple]:
        rng = self.rng
        out = []
        for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.5 else 0):
            t = self.tubes[int(rng.integers(len(self.tubes)))]
            a = float(rng.uniform(0, 2 * math.pi))
            r = float(rng.uniform(3, 10))
            d = t.r + r + float(rng.uniform(0, 3))
            zc = float(rng.uniform(self.z[0], self.z[-1]))
            out.append((t, d * math.cos(a), d * math.sin(a), r, float(rng.uniform(10, 60)), zc, float(rng.uniform(8, 30))))
        return out

    # ----- drawing -----------------------------------------------------------------------------------------------
    def background(self, i: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """Tissue, bones and organs of slice i (HU) and the centres (mm) of look-alikes drawn on it."""
        z = float(self.z[i])
        n, ps = self.size, self.ps
        th = 2 * math.pi * z / self.tex_period
        tex = math.cos(th) * self.tex[0] + math.sin(th) * self.tex[1]
        fat_mix = np.clip((tex - self.fat_share) * 1.5 + 0.5, 0, 1)
        tissue = self.muscle_hu + (self.fat_hu - self.muscle_hu) * fat_mix + 6 * self.tex[2]
        img = np.full((n, n), AIR, np.float32)
        if not self.bodies:
            img[:] = tissue
        else:
            cv = Canvas(np.zeros((n, n), np.float32), ps)
            inner = Canvas(np.zeros((n, n), np.float32), ps)
            for bx, by, rx, ry, ang, fat in self.bodies:
                s = 1 + 0.06 * math.sin(z / 50 + bx)
                cv.paint(bx, by, rx * s, ry * s, ang, 1.0)
                inner.paint(bx, by, max(rx * s - fat, 5), max(ry * s - fat, 5), ang, 1.0)
            body, core = np.clip(cv.img, 0, 1), np.clip(inner.img, 0, 1)
            sub = self.fat_hu + 5 * self.tex[2]
            img = AIR + body * (sub - AIR)
            img += core * (tissue - img)
        cv = Canvas(img, ps)
        looks = []
        for x, y, rx, ry, ang, hu in self.organs:
            cv.paint(x, y, rx * (1 + 0.1 * math.sin(z / 30)), ry, ang, hu)
        for x, y, rx, ry, ang, cort, chu, mhu, sx, sy in self.bones:
            cx, cy = x + sx * (z - self.z[0]), y + sy * (z - self.z[0])
            cv.paint(cx, cy, rx, ry, ang, chu)
            cv.paint(cx, cy, max(rx - cort, 1), max(ry - cort, 1), ang, mhu)
            looks.append((cx, cy))
        for t, dx, dy, r, hu, zc, half in self.nodes:
            if abs(z - zc) < half:
                tx, ty = t.centre(z, self.tubes)
                k = math.sqrt(max(0.0, 1 - ((z - zc) / half) ** 2))
                cv.paint(tx + dx, ty + dy, r * k, r * k * 0.8, 0.0, hu)
                looks.append((tx + dx, ty + dy))
        return img, looks

    def vessels(self, cv: Canvas, z: float, masks: dict[int, np.ndarray], weight: float) -> None:
        """Paint every tube (and its defects) at height z onto cv; accumulate defect coverage x weight."""
        tubes = self.tubes
        for ti, t in enumerate(tubes):
            if not t.exists(z):
                continue
            x, y = t.centre(z, tubes)
            rx, ry, ang = t.axes(z)
            occ = [d for d in self.defects if d.tube == ti and d.kind == "occlusive" and d.z_lo <= z <= d.z_hi]
            if occ:
                d = occ[0]
                e = min(z - d.z_lo, d.z_hi - z)
                grow = 1 + (d.params["distend"] - 1) * min(1.0, e / 8)
                rx, ry = rx * grow, ry * grow
            if t.wall:
                cv.paint(x, y, rx + t.wall_mm, ry + t.wall_mm, ang, t.hu + t.wall)
            cv.paint(x, y, rx, ry, ang, t.hu)
            for j, d in enumerate(self.defects):
                if d.tube != ti or not d.z_lo <= z <= d.z_hi:
                    continue
                u = (z - d.z_lo) / max(d.z_hi - d.z_lo, 1e-6)
                p = d.params
                if d.kind == "mixing_streak":
                    a = p["angle"] + 2 * math.pi * (z - d.z_lo) / p["period"]
                    got = cv.alpha(x + math.cos(a) * 0.25 * rx, y + math.sin(a) * 0.25 * ry, rx * p["len"], rx * p["thin"], a)
                    lum = cv.alpha(x, y, rx * 0.95, ry * 0.95, ang)
                    if got is not None and lum is not None:
                        blend_inside(cv, got, lum, d.hu, soft=True)
                    continue
                if d.kind == "partial":
                    taper = min(1.0, max(0.25, min(u, 1 - u) / 0.2)) ** 0.5
                    ca = p["angle"] + p["drift"] * u
                    off = p["offset"] * min(rx, ry)
                    cx, cy = x + math.cos(ca) * off, y + math.sin(ca) * off
                    f = min(0.9, max(p["f"] * taper, 1.2 / min(rx, ry)))  # >= 1.2 mm: a clot, not a speck
                    got = cv.alpha(cx, cy, f * rx, f * ry * p["aspect"], p["spin"] + ang)
                    lum = cv.alpha(x, y, rx * 0.98, ry * 0.98, ang)
                else:
                    e = min(z - d.z_lo, d.z_hi - z)
                    frac = math.sqrt(min(1.0, e / p["cap"]))  # a rounded tip: contrast flows round it
                    if p["rim"] is not None and frac >= 1.0:
                        cv.paint(x, y, rx + p["rim_mm"], ry + p["rim_mm"], ang, p["rim"])
                    got = cv.alpha(x, y, rx * frac, ry * frac, ang)
                    lum = cv.alpha(x, y, rx, ry, ang)
                if got is None or lum is None:
                    continue
                m = blend_inside(cv, got, lum, d.hu)
                if m is not None:
                    win, a = m
                    masks.setdefault(j, np.zeros(cv.img.shape, np.float32))[win] += a * weight
        for ti, ang0, hu, r, zc, half in self.calcs:
            t = tubes[ti]
            if abs(z - zc) < half and t.exists(z):
                x, y = t.centre(z, tubes)
                rx, ry, ang = t.axes(z)
                cv.paint(x + math.cos(ang0) * rx, y + math.sin(ang0) * ry, r, r, 0.0, hu)

    def render(self, i: int) -> tuple[np.ndarray, dict[int, np.ndarray], list[tuple[float, float]]]:
        """Slice i in HU, the defect coverage per defect index (fraction of the slab, original pixels) and the
        centres (mm) of the look-alikes drawn on it."""
        bg, looks = self.background(i)
        z = float(self.z[i])
        m = int(np.clip(round(self.dz / 0.6), 1, 6))
        offs = (np.arange(m) + 0.5) / m - 0.5
        acc = np.zeros_like(bg)
        masks: dict[int, np.ndarray] = {}
        for o in offs:
            cv = Canvas(bg.copy(), self.ps)
            self.vessels(cv, z + float(o) * self.dz, masks, 1.0 / m)
            acc += cv.img
        img = acc / m
        n, ps = self.size, self.ps
        if self.streaks:
            layer = np.zeros((n, n), np.float32)
            for ang, off, hu, w in self.streaks:
                c, s = math.cos(ang), math.sin(ang)
                px, py = n / 2 + off / ps * -s, n / 2 + off / ps * c
                p0 = (int(px - c * n), int(py - s * n))
                p1 = (int(px + c * n), int(py + s * n))
                cv2.line(layer, p0, p1, hu, max(1, int(round(w / ps))), lineType=cv2.LINE_AA)
            img += cv2.GaussianBlur(layer, (0, 0), 1.0) * (img > -500)
        if self.cupping:
            yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
            rr = ((xx - n / 2) ** 2 + (yy - n / 2) ** 2) / (n / 2) ** 2
            img += np.float32(self.cupping) * (1 - rr) * (img > -500)
        img = cv2.GaussianBlur(img, (0, 0), self.psf_mm / ps)
        for j in list(masks):  # label what can be seen: the defect reads at least halfway from lumen to clot
            d, sel = self.defects[j], masks[j] > 0.5
            lumen = self.tubes[d.tube].hu
            if sel.sum() < 2 or float(img[sel].mean()) > lumen - 0.5 * (lumen - d.hu):
                del masks[j]
        srng = np.random.default_rng([self.seed, 0x5CE4E, i])
        noise = cv2.GaussianBlur(srng.standard_normal((n, n)).astype(np.float32), (0, 0), self.noise_grain)
        noise *= self.noise_hu / max(float(noise.std()), 1e-6)
        body = img > -500
        img += noise * np.where(body, np.float32(1.0), np.float32(0.3))
        return img.astype(np.float32), masks, looks

    def study(self) -> Study:
        n, ps, size = self.n, self.ps, self.size
        hu = np.empty((n, size, size), np.float32)
        thrombi = [Lesion(d.kind, j + 1, (d.z_lo, d.z_hi), {"hu": d.hu, **d.params})
                   for j, d in enumerate(self.defects)]
        veins, looks = [], []
        for i in range(n):
            hu[i], masks, lk = self.render(i)
            for j, m in masks.items():
                box = box_of(m)
                if box is not None:
                    thrombi[j].boxes[i] = box
            z = float(self.z[i])
            per: dict[int, tuple[float, float, float]] = {}
            for ti, t in enumerate(self.tubes):
                if t.opacified and t.exists(z):
                    x, y = t.centre(z, self.tubes)
                    px, py = self.to_px(x, y)
                    if 0 <= px < size and 0 <= py < size:
                        per[ti] = (px, py, t.radius(z) / ps)
            while len(per) < 2:
                per[-len(per) - 1] = (size / 2, size / 2, 4.0)
            veins.append(per)
            pts = [self.to_px(x, y) for x, y in lk]
            for t in self.tubes:  # where a branch parts: the dark wedge between two lumens
                if t.parent is not None and 0 <= z - t.z0 < 15:
                    x, y = t.centre(z, self.tubes)
                    pts.append(self.to_px(x, y))
            looks.append([p for p in pts if 0 <= p[0] < size and 0 <= p[1] < size])
        for j, d in enumerate(self.defects):  # a streak is not a lesion: its tube's box per slice (hard negatives)
            if d.kind == "mixing_streak":
                for i in range(n):
                    if d.z_lo <= self.z[i] <= d.z_hi and d.tube in veins[i]:
                        x, y, r = veins[i][d.tube]
                        thrombi[j].boxes[i] = [x - r, y - r, x + r, y + r]
        real = [t for t in thrombi if t.kind != "mixing_streak" and t.boxes]
        mimics = [t for t in thrombi if t.kind == "mixing_streak" and t.boxes]
        return Study(self.seed, hu, self.z.astype(np.float64), (ps, ps), self.dz, real, mimics, veins, looks)


def make_scene(seed: int, size: int = 512, wide: bool = False) -> Study:
    """One randomised vessel-scene study (deterministic per seed and ``wide``); see the module docstring. ``wide``
    adds large trunks (8-15 mm radius), steeply oblique tubes near the slice plane and contrast up to 600 HU; the
    default draws exactly what it always drew (the validation scenes stay the same)."""
    return Scene(seed, size, wide).study()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.ct.vessel_scenes",
                                 description="Write randomised vessel-scene studies (training data; not for diagnostic use).")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=4)
    ap.add_argument("--seed", type=int, default=31000)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    from training.ct.phantom_io import write_study

    for i in range(args.studies):
        st = make_scene(args.seed + i, args.size)
        out = args.out / f"scene-{args.seed + i}"
        write_study(st, out)
        print(f"[{i + 1}/{args.studies}] {out}: {len(st.hu)} slices x {st.thickness_mm:g} mm, {st.hu.shape[1]} px at "
              f"{st.pixel_spacing_mm[0]:.2f} mm, {len(st.thrombi)} thrombi, {len(st.mimics)} streaks", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
