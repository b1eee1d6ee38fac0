"""Pelvis level of the second CT phantom renderer: one body outline from the groin up to the iliac wings.

Level u = z - z_ref (mm above the femoral head centres). Bones follow u: femoral heads (spheres), necks and
greater trochanters below, acetabula around the heads, pubic rami / symphysis and ischia low, the acetabular roof,
iliac wings and sacrum high. Soft tissue: gluteal and iliopsoas muscles, pelvic fat, bladder (dome-shaped along
z), rectum, a few bowel loops high up. Vessels: external iliac / common femoral artery and vein per side, the vein
medial, turning posterior higher up; nodes of the iliac chain beside them; small pelvic side-wall vessels.
"""

from __future__ import annotations

import math

import numpy as np

from training.ct.second_renderer_draw import THETA, Canvas, Smooth, ellipse, flatten_below, harmonics, radius, star
from training.ct.second_renderer_limbs import Tissues, U, node, pair
from training.ct.second_renderer_vessels import Vessel


def _poly_path(rng, us, vals, jitter):
    """A smooth function of u through noisy control values (cubic least-squares fit)."""
    c = np.polyfit(us, np.asarray(vals) + rng.uniform(-jitter, jitter, len(vals)), 3)
    return lambda u: float(np.polyval(c, u))


def _sector(cx, cy, r_in, r_out, a_mid, half, n=40):
    a = np.linspace(a_mid - half, a_mid + half, n)
    outer = np.stack([cx + r_out * np.cos(a), cy + r_out * np.sin(a)], 1)
    inner = np.stack([cx + r_in * np.cos(a[::-1]), cy + r_in * np.sin(a[::-1])], 1)
    return np.concatenate([outer, inner], 0)


class Pelvis:
    kind = "pelvis"

    def __init__(self, rng: np.random.Generator, tis: Tissues, z_ref: float, fov: float):
        self.tis, self.z_ref = tis, z_ref
        self.rx = min(U(rng, 150, 190), (fov - 30) / 2)
        self.ry = self.rx * U(rng, 0.64, 0.76)
        self.cy = U(rng, -10, 20)
        self.table_y = self.cy + self.ry
        self.harm, self.charm = harmonics(rng, 0.03), harmonics(rng, 0.06, 4)
        self.strands = [(U(rng, -1, 1), U(rng, -1, 1)) for _ in range(int(rng.integers(2, 7)))]
        self.xh = self.rx * U(rng, 0.48, 0.54)
        self.yh = self.cy + U(rng, -8, 8)
        self.rh = U(rng, 21, 25.5)
        self.t0 = min(U(rng, 8, 34), self.rx - self.xh - 62)
        self.skin_mm = U(rng, 1.5, 2.5)
        self.acet = U(rng, 7, 11)
        self.cort = U(rng, 1.5, 2.5)
        self.sep_w = U(rng, 1.0, 2.5)
        self.bladder = (U(rng, -8, 8), self.yh - U(rng, 8, 22), U(rng, 25, max(26, self.xh - 62)), U(rng, 22, 40),
                        U(rng, -28, -12), U(rng, 40, 100), U(rng, 0, 18))
        self.rectum = (U(rng, -8, 8), U(rng, 11, 19), rng.random() < 0.6)
        lx = max(5.0, self.xh - 75)
        self.loops = [(U(rng, -lx, lx), self.yh + U(rng, -45, 5), U(rng, 8, 16), U(rng, 50, 160),
                       float(rng.choice([-900.0, 15.0, -30.0], p=[0.3, 0.45, 0.25])), U(rng, 0, 3))
                      for _ in range(int(rng.integers(1, 8)))]
        xh, yh, rh = self.xh, self.yh, self.rh
        self.vessels: list[Vessel] = []
        self.mains = {}
        us = [-40, 0, 40, 100, 170]
        for s in (-1, 1):
            fx = _poly_path(rng, us, [xh - 2, xh - 12, xh - 28, xh - 36, xh - 46], 3)
            fy = _poly_path(rng, us, [yh - rh - 27, yh - rh - 25, yh - 36, yh - 14, yh + 6], 3)
            base = (lambda z, fx=fx, fy=fy, s=s: (s * fx(z - z_ref), fy(z - z_ref)))
            beta = U(rng, 0.1, 0.5)  # vein medial at the groin, turning posterior higher up
            phi = Smooth(rng, math.atan2(math.sin(beta), -s * math.cos(beta)), 0.15, slope=-s * 0.006)
            phi.base += s * 0.006 * (z_ref + 20)  # the turn is centred near the inguinal ligament
            a, v = pair(rng, "eia", s, tis, base, U(rng, 3.4, 5.0), U(rng, 5.0, 8.0), phi, z_ref, main=True)
            self.vessels += [a, v]
            self.mains[s] = v
            for _ in range(int(rng.integers(0, 3))):
                zc = z_ref + U(rng, -30, 120)
                anchor = v if rng.random() < 0.6 else a
                pa = math.atan2(U(rng, -0.8, 0.6), -s) if anchor is v else math.atan2(-0.6, s * U(rng, -1, 1))
                self.vessels.append(node(rng, anchor, s, Smooth(rng, pa, 0.3), zc - U(rng, 4, 10), zc + U(rng, 4, 10)))
            for _ in range(int(rng.integers(0, 3))):  # small side-wall (internal iliac) vessels, unpaired
                dx, dy, zs = U(rng, 30, 45), U(rng, 20, 45), U(rng, 40, 120)
                sm = Vessel("iliac_br", "vein" if rng.random() < 0.5 else "artery", s,
                            tis.vein if rng.random() < 0.5 else tis.artery, Smooth(rng, U(rng, 1.5, 3.0), 0.3),
                            Smooth(rng, 2.0, 0.3), Smooth(rng, 0, 0.5),
                            base=(lambda z, dx=dx, dy=dy, s=s: (s * (xh - dx), yh + dy - 0.1 * (z - z_ref))),
                            z_lo=z_ref + zs, z_hi=z_ref + 400)
                self.vessels.append(sm)

    def _art(self, s, z):
        return self.mains[s].anchor.geom(z)

    def draw(self, cv: Canvas, z: float):
        t, u = self.tis, z - self.z_ref
        xh, yh, rh, cy = self.xh, self.yh, self.rh, self.cy
        rx = self.rx * (1 - 0.0004 * u)
        r_o = flatten_below(radius(THETA, rx, self.ry, 0.0, self.harm), cy, self.table_y - 0.5)
        tf = self.t0 * (1 + 0.45 * np.clip(-np.sin(THETA), 0, 1) - 0.35 * np.abs(np.cos(THETA)))
        cv.fill(star(0, cy, r_o), t.skin)
        cv.fill(star(0, cy, r_o - self.skin_mm), t.fat)
        r_m = np.maximum(r_o - np.maximum(tf, 4), 0.4 * r_o)
        muscle = star(0, cy, r_m)
        cv.fill(muscle, t.muscle)
        # pelvic cavity (fat): narrow between the obturator muscles low down, wide between the iliac wings above
        w = float(np.clip((u - 20) / 40, 0, 1))
        crx = (1 - w) * (xh - rh - 13) * (0.6 + 0.4 * float(np.clip((u + 40) / 40, 0, 1))) + w * (xh - 6 + 0.1 * u)
        cry = self.ry * ((1 - w) * 0.36 + w * 0.62)
        r_c = np.minimum(radius(THETA, crx, cry, 0.0, self.charm), r_m - 10 - 8 * np.clip(-np.sin(THETA), 0, 1))
        cv.fill(star(0, yh + (1 - w) * 6 - w * 0.12 * self.ry, r_c), t.fat + 15, 0.95)
        for k, (a, b) in enumerate(self.strands):  # fine strands / small vessels in the pelvic fat
            cv.stroke([np.array([(a * crx * 0.8, yh - 0.3 * cry), (b * crx * 0.8, yh + 0.4 * cry)])], 0.6, t.muscle,
                      0.35, clip=star(0, yh, r_c * 0.9))
        for s in (-1, 1):
            ax, ay, aa, ab, _ = self._art(s, z)
            vx, vy, *_ = self.mains[s].geom(z)
            if u < 25:  # femoral triangle fat around the bundle
                cv.fill(ellipse((ax + vx) / 2, (ay + vy) / 2, math.hypot(vx - ax, vy - ay) / 2 + 11, 10,
                                math.atan2(vy - ay, vx - ax)), t.fat, 0.8 * float(np.clip((25 - u) / 10, 0, 1)))
            rp = 13 + 0.06 * max(u, 0)  # psoas / iliopsoas lateral to the vessels
            cv.fill(ellipse(ax + s * (rp + max(aa, ab) + 5), ay + 0.35 * rp, rp, rp * 0.8, s * 0.3), t.muscle - 3)
        tt = np.linspace(0, 1, 9)[:, None]
        lines = [(1 - tt) ** 2 * np.array([s * (xh + 20), yh + 10]) + 2 * tt * (1 - tt) * np.array(
            [s * (xh + 10), cy + 0.8 * self.ry]) + tt ** 2 * np.array([s * 25, cy + 0.75 * self.ry]) for s in (-1, 1)]
        cv.stroke(lines, self.sep_w, t.fat, t.septum, clip=muscle)
        bones = []
        for s in (-1, 1):
            bones += self._bones(cv, s, u, z)
        self._viscera(cv, u)
        return bones + self._sacrum(cv, u)

    def _bones(self, cv, s, u, z):
        t, xh, yh, rh = self.tis, self.xh, self.yh, self.rh
        out = []
        hx = s * xh
        if 22 < u:  # iliac wing from the sacroiliac joint to the anterior spine, iliacus on its inner face
            w = float(np.clip((u - 22) / 90, 0, 1))
            k = float(np.clip((u - 22) / 8, 0, 1))
            ws = min(22 + 0.35 * (u - 35), 56) if u > 35 else 22
            ys = self.cy + 0.5 * self.ry
            tt = np.linspace(0, 1, 14)[:, None]
            p0 = np.array([s * (ws + 4), ys - 4])
            p1 = np.array([s * (xh + 6 + 0.1 * u), yh + 16])
            p2 = np.array([s * (xh + 12 + 0.15 * u), yh - 0.22 * self.ry])
            pts = (1 - tt) ** 2 * p0 + 2 * tt * (1 - tt) * p1 + tt ** 2 * p2
            half = k * (np.interp(tt[:, 0], [0, 0.25, 0.6, 1], [10, 6, 3.2, 4.8]) * (1 + 0.9 * (1 - w))) + 0.5
            inner = pts + np.array([-s * 0.9, -0.45]) * (half[:, None] + 7)
            cv.stroke([inner[3:]], 11 + 5 * w, t.muscle - 3, k)
            cv.tapered(pts, half, self.cort, t.cortex, t.trab)
            out.append((float(pts[6, 0]), float(pts[6, 1]), float(half[6])))
        if rh - 8 < u < 48:  # acetabular roof
            k = float(np.clip(min(u - rh + 8, 48 - u) / 10, 0, 1))
            cv.bone(ellipse(hx - s * 3, yh + 2, (rh + 4) * k + 2, (rh + 2) * k + 2), self.cort, t.cortex, t.trab)
            out.append((hx, yh, (rh + 2) * k))
        q = rh * rh - u * u
        rs = math.sqrt(q) if q > 0 else 0.0
        if -14 < u < rh + 6:  # acetabulum around the head, thicker posteriorly
            r_in = max(rs, 8) + 2.5
            a_mid = math.atan2(math.sin(0.5), -s * math.cos(0.5))
            cv.bone(_sector(hx, yh, r_in, r_in + self.acet, a_mid, 1.6), 1.2, t.cortex, t.trab)
            cv.bone(ellipse(hx - s * 6, yh + r_in + 6, 9, 7), 1.2, t.cortex, t.trab)
        if rs > 1:  # femoral head
            cv.bone(ellipse(hx, yh, rs, rs), self.cort * 0.8, t.cortex * 0.8, t.trab)
            out.append((hx, yh, rs))
        if -34 < u < 2:  # femoral neck towards the trochanter
            k = float(np.clip(min(u + 34, 2 - u) / 8, 0, 1))
            cv.bar(np.array([(hx, yh), (s * (xh + 30), yh + 6)]), 22 * k + 1, self.cort, t.cortex, t.trab)
        if -55 < u < 10:  # greater trochanter
            q2 = 1 - ((u + 22) / 33) ** 2
            if q2 > 0:
                k = math.sqrt(q2)
                cv.bone(ellipse(s * (xh + 36), yh + 8, 15 * k, 19 * k), self.cort, t.cortex, t.trab)
                out.append((s * (xh + 36), yh + 8, 15 * k))
        if u < -26:  # proximal femoral shaft
            k = float(np.clip((-26 - u) / 10, 0, 1))
            cv.bone(ellipse(s * (xh + 26), yh + 4, 6 + 10 * k, 6 + 10 * k), 2 + 2 * k, t.cortex, t.marrow)
            out.append((s * (xh + 26), yh + 4, 6 + 10 * k))
        if -16 < u < 10:  # superior pubic ramus
            k = float(np.clip(min(u + 16, 10 - u) / 6, 0, 1))
            cv.bar(np.array([(s * (xh - rh - 2), yh - 10), (s * 30, yh - rh - 14), (s * 5, yh - rh - 22)]),
                   6 + 9 * k, self.cort, t.cortex, t.trab)
        if -42 < u <= -16:  # symphysis body and inferior ramus
            k = float(np.clip(min(u + 42, -16 - u) / 6, 0, 1))
            cv.bone(ellipse(s * 11, yh - rh - 16, 8 * k + 1, 15 * k + 1), self.cort, t.cortex, t.trab)
            cv.bar(np.array([(s * 14, yh - rh - 8), (s * (xh - 30), yh + rh + 12)]), 5 + 7 * k, self.cort, t.cortex,
                   t.trab)
        if -44 < u < 16:  # ischium / posterior column
            k = float(np.clip(min(u + 44, 16 - u) / 8, 0, 1))
            cv.bar(np.array([(s * (xh - 6), yh + rh + 2), (s * (xh - 20), yh + rh + 26)]), 8 + 12 * k, self.cort,
                   t.cortex, t.trab)
        return out

    def _sacrum(self, cv, u):
        t = self.tis
        ys = self.cy + 0.5 * self.ry
        if u > 32:
            k = float(np.clip((u - 32) / 8, 0, 1))
            ws = min(22 + 0.35 * (u - 35), 56)
            x = np.linspace(-ws, ws, 15)
            pts = np.stack([x, ys - 7 * (x / ws) ** 2 + 2], 1)
            half = k * np.interp(np.abs(x) / ws, [0, 0.35, 1], [14 + 0.03 * u, 11, 9]) + 1
            cv.tapered(pts, half, self.cort, t.cortex, t.trab)
            cv.fill(ellipse(0, ys + 6, 9 * k + 1, 5 * k + 1), 20.0)  # sacral canal
            for sg in (-1, 1):  # anterior sacral foramina
                cv.fill(ellipse(sg * 0.42 * ws, ys - 4, 2.5 * k + 0.5, 2 * k + 0.5), -20.0)
            return [(0.0, ys, min(ws, 16.0))]
        if 0 < u <= 32:
            cv.bone(ellipse(0, ys + 6, 7, 6), 1.5, t.cortex, t.trab)
        return []

    def _viscera(self, cv, u):
        t = self.tis
        bx, by, brx, bry, u0, u1, bhu = self.bladder
        if u0 < u < u1:
            uc, h = (u0 + u1) / 2, (u1 - u0) / 2
            k = math.sqrt(max(1 - ((u - uc) / h) ** 2, 0)) ** 0.6
            if k > 0.05:
                cv.fill(ellipse(bx, by, brx * k + 2.5, bry * k + 2.5), t.muscle - 5)
                cv.fill(ellipse(bx, by, brx * k, bry * k), bhu)
        if -42 < u < -8:  # prostate / vaginal vault behind the symphysis
            k = math.sqrt(max(1 - ((u + 25) / 17) ** 2, 0))
            cv.fill(ellipse(0, self.yh - self.rh + 4, 19 * k + 1, 15 * k + 1), t.muscle - 10)
        rx_, rr, air = self.rectum
        if -30 < u < 140:
            ys = self.cy + 0.5 * self.ry - 20 - rr
            cv.fill(ellipse(rx_, ys, rr + 3, rr * 0.8 + 3), t.muscle - 8)
            cv.fill(ellipse(rx_, ys, rr, rr * 0.8), -40.0)
            if air:
                cv.fill(ellipse(rx_, ys - rr * 0.35, rr * 0.6, rr * 0.35), -950.0)
        for lx, ly, lr, lu, content, rot in self.loops:  # bowel loops: wall + fluid, gas or faeces
            if u > lu:
                k = float(np.clip((u - lu) / 10, 0.2, 1))
                cv.fill(ellipse(lx, ly, lr * k + 2.5, lr * 0.75 * k + 2.5, rot), t.muscle + 10)
                cv.fill(ellipse(lx, ly, lr * k, lr * 0.75 * k, rot), content)
