"""Limb cross-sections of the second CT phantom renderer: thigh, knee (popliteal fossa) and calf.

Per limb: a perturbed elliptical outline resting on the table, skin, subcutaneous fat of varying thickness,
muscle with fascial planes (fat septa and belly outlines clipped to the muscle), bones (cortex + marrow or
trabecular bone), the neurovascular bundles (fat pad + artery + vein(s)) and superficial veins. Everything
varies smoothly with z (mm, +z = cranial). Side s: -1 = patient right (image left), +1 = patient left; the
medial direction is -s along x, anterior is -y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.ct.second_renderer_draw import THETA, Canvas, Smooth, ellipse, flatten_below, harmonics, radius, smoothstep, star
from training.ct.second_renderer_vessels import Vessel


@dataclass
class Tissues:
    fat: float
    muscle: float
    skin: float
    cortex: float
    marrow: float
    trab: float
    vein: float
    artery: float
    septum: float  # opacity of fascial fat planes


def sample_tissues(rng: np.random.Generator) -> Tissues:
    vein = rng.uniform(140, 300)
    return Tissues(fat=rng.uniform(-120, -80), muscle=rng.uniform(40, 60), skin=rng.uniform(20, 50),
                   cortex=rng.uniform(700, 1200), marrow=rng.uniform(50, 300), trab=rng.uniform(160, 320),
                   vein=vein, artery=float(np.clip(vein + rng.uniform(-20, 180), 150, 450)),
                   septum=rng.uniform(0.25, 0.6))


def U(rng, a, b):
    return float(rng.uniform(a, b))


def med(s: int, ang: float) -> tuple[float, float]:
    """Unit vector at ``ang`` rad from the medial direction towards anterior (negative: towards posterior)."""
    return -s * math.cos(ang), -math.sin(ang)


def pair(rng, name, side, tis, base, a_art, a_vein, phi, z_mid, main=False, vein_hu=None):
    """An artery on ``base`` and its vein beside it along direction ``phi`` (Smooth, image angle)."""
    art = Vessel(name + "_a", "artery", side, tis.artery, Smooth(rng, a_art, 0.2), Smooth(rng, a_art, 0.2),
                 Smooth(rng, 0, 0.3), base=base)
    ar = U(rng, 0.6, 0.92)
    hu = vein_hu if vein_hu is not None else tis.vein + U(rng, -15, 15)
    lay = U(rng, 0, 24)
    vein = Vessel(name + "_v", "vein", side, max(hu, 125 + lay / 2), Smooth(rng, a_vein, 0.12 * a_vein),
                  Smooth(rng, a_vein * ar, 0.1 * a_vein), Smooth(rng, U(rng, 0, math.pi), 0.4, n=2),
                  anchor=art, phi=phi, gap=U(rng, 0.6, 3.0), main=main, layering=lay)
    return art, vein


def node(rng, anchor, side, phi, z0, z1, hu=None, kind="node"):
    r = U(rng, 2.5, 7.0)
    hl = U(rng, 0.3, 0.55) if (kind == "node" and rng.random() < 0.5) else 0.0
    return Vessel("node", "node", side, hu if hu is not None else U(rng, 30, 60), Smooth(rng, r, 0.3),
                  Smooth(rng, r * U(rng, 0.5, 0.85), 0.2), Smooth(rng, U(rng, 0, 3), 0.2), anchor=anchor,
                  phi=phi, gap=U(rng, 0.8, 3.0), z_lo=z0, z_hi=z1, hilum=hl)


class Limb:
    def __init__(self, rng: np.random.Generator, kind: str, side: int, centre, tis: Tissues, table_y: float,
                 z_mid: float, scale: float = 1.0, rx: float | None = None):
        self.kind, self.s, self.tis, self.table_y, self.z_mid = kind, side, tis, table_y, z_mid
        s = side
        self.cx, self.cy = Smooth(rng, centre[0], 4), Smooth(rng, centre[1], 3)
        rx_ref = rx
        if kind == "thigh":
            rx, grow = U(rng, 62, 90) * scale, U(rng, 0.0008, 0.002)
            t0 = U(rng, 5, max(6.0, min(28.0, rx - 52)))
        elif kind == "knee":
            rx, grow, t0 = U(rng, 50, 60) * scale, 0.0005, U(rng, 4, 12)
        else:
            rx, grow, t0 = U(rng, 42, 60) * scale, U(rng, 0.0008, 0.002), U(rng, 4, 16)
        if rx_ref is not None:
            rx = rx_ref
            t0 = min(t0, max(5.0, rx - 52)) if kind == "thigh" else t0
        self.rx, self.ry = rx, rx * U(rng, 0.85, 1.04)
        self.rot, self.grow, self.t0 = s * U(rng, -0.3, 0.15), grow, t0
        self.harm, self.tharm = harmonics(rng, 0.035), harmonics(rng, 0.18, 4)
        self.t_dir = U(rng, 0, 2 * math.pi)
        self.skin_mm = U(rng, 1.2, 2.5)
        self.vessels: list[Vessel] = []
        getattr(self, "_init_" + kind)(rng)

    # ---------------------------------------------------------------- common outline
    def frame(self, z):
        g = 1 + self.grow * (z - self.z_mid)
        cx, cy = self.cx(z), self.cy(z)
        r_o = radius(THETA, self.rx * g, self.ry * g, self.rot, self.harm)
        if self.table_y is not None:  # the limb rests on the table whatever its calibre at this level
            cy = cy + 0.9 * self.ry * (1 - g)
            r_o = flatten_below(r_o, cy, self.table_y - 0.5)
        t = self.t0 * (1 + 0.35 * np.cos(THETA - self.t_dir))
        for k, a, p in self.tharm:
            t = t * (1 + a * np.cos(k * THETA + p))
        r_m = np.maximum(r_o - np.maximum(t, 3.0), 0.35 * r_o)
        return cx, cy, r_o, r_m, g

    def outline(self, cv: Canvas, z):
        cx, cy, r_o, r_m, g = self.frame(z)
        cv.fill(star(cx, cy, r_o), self.tis.skin)
        cv.fill(star(cx, cy, r_o - self.skin_mm), self.tis.fat)
        muscle = star(cx, cy, r_m)
        cv.fill(muscle, self.tis.muscle)
        return cx, cy, r_o, r_m, g, muscle

    def septa(self, cv, lines, muscle, width=None):
        cv.stroke(lines, width or self.sep_w, self.tis.fat, self.tis.septum, clip=muscle)

    def r_at(self, r, ang):
        return float(np.interp(ang, THETA, r, period=2 * math.pi))

    def subcut_vein(self, rng, name, ang_img, depth, a):
        """A superficial vein in the subcutaneous fat at image angle ``ang_img``, ``depth`` of the way out."""
        def base(z, ang=ang_img, d=depth):
            cx, cy, r_o, r_m, _ = self.frame(z)
            rr = self.r_at(r_m, ang) + d * (self.r_at(r_o, ang) - self.r_at(r_m, ang))
            return cx + rr * math.cos(ang), cy + rr * math.sin(ang)
        lay = U(rng, 0, 10)
        return Vessel(name, "vein", self.s, max(self.tis.vein + U(rng, -40, 0), 125 + lay), Smooth(rng, a, 0.3 * a),
                      Smooth(rng, a * U(rng, 0.7, 0.95), 0.2 * a), Smooth(rng, 0, 0.5), base=base, layering=lay)

    # ---------------------------------------------------------------- thigh
    def _init_thigh(self, rng):
        s = self.s
        self.f_off = (s * U(rng, 0, 12), U(rng, -12, 8))
        self.rf, self.f_asp, self.cort = U(rng, 11, 15), U(rng, 0.9, 1.06), U(rng, 3.5, 6.0)
        self.sep_w = U(rng, 0.4, 1.1)
        self.sept_ang = [math.atan2(-math.sin(a), -s * math.cos(a)) for a in
                         (U(rng, 2.6, 3.3), U(rng, 1.9, 2.3), U(rng, -2.4, -1.7), U(rng, -1.0, -0.4), U(rng, 0.9, 1.4))]
        self.sept_bend = rng.uniform(-6, 6, 5)
        self.alpha0, self.alpha_slope = U(rng, 0.25, 0.8), U(rng, 0.002, 0.005)
        _, _, _, r_m, _ = self.frame(self.z_mid)  # keep the bundle inside the muscle, clear of the femur
        ang = math.atan2(-math.sin(self.alpha0), -s * math.cos(self.alpha0))
        room = self.r_at(r_m, ang) - math.hypot(*self.f_off) - 10
        self.dist = float(np.clip(self.rf + U(rng, 16, 28), self.rf + 11, max(room, self.rf + 11)))
        self.sept_ang.sort()
        self.arcs = [(int(k), U(rng, 0.35, 0.75), U(rng, -8, 12))
                     for k in rng.choice(5, int(rng.integers(1, 4)), replace=False)]
        t = self.tis

        def fem(z):
            cx, cy = self.cx(z), self.cy(z)
            return cx + self.f_off[0], cy + self.f_off[1]

        def art_base(z):
            fx, fy = fem(z)
            dx, dy = med(s, self.alpha0 + self.alpha_slope * (z - self.z_mid))
            return fx + self.dist * dx, fy + self.dist * dy

        self.fem, self.art_base = fem, art_base
        beta0 = U(rng, 0.6, 1.3)  # the vein lies medial-posterior of the artery, turning posterior distally
        phi = Smooth(rng, math.atan2(math.sin(beta0), -s * math.cos(beta0)), 0.25, slope=-s * 0.002)
        a, v = pair(rng, "sfa", s, t, art_base, U(rng, 3.0, 4.5), U(rng, 4.0, 7.0), phi, self.z_mid, main=True)
        self.vessels += [a, v]
        self.main = v
        if rng.random() < 0.55:  # profunda femoris pair, posteromedial to the femur
            gam = U(rng, 0.5, 1.1)

            def pbase(z, g=gam, d=self.rf + U(rng, 6, 12)):
                fx, fy = fem(z)
                dx, dy = med(s, -g)
                return fx + d * dx, fy + d * dy
            self.vessels += list(pair(rng, "pfa", s, t, pbase, U(rng, 2.0, 3.2), U(rng, 2.5, 4.0),
                                      Smooth(rng, U(rng, 0, 6.28), 0.3), self.z_mid))
        if rng.random() < 0.7:
            self.vessels.append(self.subcut_vein(rng, "gsv", math.atan2(-math.sin(g := U(rng, -0.2, 0.6)),
                                                                         -s * math.cos(g)), U(rng, 0.35, 0.65),
                                                 U(rng, 1.6, 3.0)))
        if rng.random() < 0.35:
            zc = self.z_mid + U(rng, -40, 40)
            anchor = a if rng.random() < 0.5 else v
            ang = 1.2 if anchor is a else 0.3  # away from the partner vessel and from the femur
            pa = Smooth(rng, math.atan2(-math.sin(ang), -s * math.cos(ang)), 0.3)
            kind = "node" if rng.random() < 0.6 else "slip"
            self.vessels.append(node(rng, anchor, s, pa, zc - U(rng, 5, 12), zc + U(rng, 5, 12),
                                     hu=t.muscle if kind == "slip" else None))

    def _draw_thigh(self, cv, z, cx, cy, r_o, r_m, g, muscle):
        s, t = self.s, self.tis
        fx, fy = self.fem(z)
        lines = []
        for k, ang in enumerate(self.sept_ang):
            end = self.r_at(r_m, ang) + 3
            p0 = (fx + (self.rf + 1) * math.cos(ang), fy + (self.rf + 1) * math.sin(ang))
            p2 = (cx + end * math.cos(ang), cy + end * math.sin(ang))
            b = self.sept_bend[k]
            p1 = ((p0[0] + p2[0]) / 2 - b * math.sin(ang), (p0[1] + p2[1]) / 2 + b * math.cos(ang))
            lines.append(np.array([p0, p1, p2]))
        for k, f, bow in self.arcs:  # compartment boundaries joining neighbouring septa
            a, b = lines[k], lines[(k + 1) % len(lines)]
            pa, pb = a[0] + f * (a[2] - a[0]), b[0] + f * (b[2] - b[0])
            mid = (pa + pb) / 2
            out = mid - np.array([fx, fy])
            mid = mid + bow * out / max(float(np.linalg.norm(out)), 1e-6)
            tt = np.linspace(0, 1, 9)[:, None]
            lines.append((1 - tt) ** 2 * pa + 2 * tt * (1 - tt) * mid + tt ** 2 * pb)
        self.septa(cv, lines, muscle)
        ax, ay, *_ = self.vessels[0].geom(z)
        vx, vy, *_ = self.vessels[1].geom(z)
        mx, my = (ax + vx) / 2, (ay + vy) / 2
        half = math.hypot(vx - ax, vy - ay) / 2
        cv.fill(ellipse(mx, my, half + 9, 9, math.atan2(vy - ay, vx - ax)), t.fat, 0.85)
        sx, sy = med(s, 0.9)  # sartorius over the bundle, outlined by its fascia
        cv.stroke([ellipse(mx + (half + 14) * sx, my + (half + 14) * sy, 13, 7, math.atan2(sy, sx) + 1.57)],
                  self.sep_w, t.fat, t.septum, closed=True, clip=muscle)
        cv.bone(ellipse(fx, fy, self.rf, self.rf * self.f_asp, self.rot), self.cort, t.cortex, t.marrow)
        cv.fill(ellipse(fx + s * 1.0, fy + self.rf * self.f_asp * 0.95, 2.4, 3.0), t.cortex)  # linea aspera
        return [(fx, fy, self.rf)]

    # ---------------------------------------------------------------- knee / popliteal fossa
    def _init_knee(self, rng):
        s, t = self.s, self.tis
        self.sep_w = U(rng, 0.8, 1.8)
        self.z_joint = self.z_mid + U(rng, -40, 40)
        self.b_off = (s * U(rng, -4, 6), U(rng, -6, 2))
        self.rs, self.wc, self.apc = U(rng, 13, 16), U(rng, 34, 41), U(rng, 25, 31)
        self.wt, self.apt = U(rng, 33, 39), U(rng, 22, 27)
        self.cort = U(rng, 1.2, 2.2)
        self.pat = (U(rng, 18, 23), U(rng, 8, 11), U(rng, 10, 15))
        self.ry = self.apc + U(rng, 30, 38)  # room for the patella in front and the fossa behind
        self.rx = max(self.rx, self.wc + U(rng, 10, 18))

        def art_base(z):
            cx, cy = self.cx(z), self.cy(z)
            return cx + self.b_off[0] + s * 4, cy + self.b_off[1] + self.apc + U_off(z)
        U_off = Smooth(rng, U(rng, 6, 13), 2.5)
        phi = Smooth(rng, math.atan2(math.cos(0.35), s * math.sin(0.35)), 0.25)
        a, v = pair(rng, "pop", s, t, art_base, U(rng, 2.6, 3.8), U(rng, 4.0, 7.0), phi, self.z_mid, main=True)
        nerve = node(rng, v, s, Smooth(rng, math.atan2(math.cos(0.8), s * math.sin(0.8)), 0.2), -1e4, 1e4,
                     hu=U(rng, 25, 45), kind="nerve")
        nerve.a, nerve.b = Smooth(rng, U(rng, 2.2, 3.2), 0.2), Smooth(rng, U(rng, 1.8, 2.6), 0.2)
        self.vessels += [a, v, nerve]
        self.main = v
        self.vessels.append(self.subcut_vein(rng, "gsv", math.atan2(0.2, -s), U(rng, 0.3, 0.6), U(rng, 1.5, 2.5)))
        if rng.random() < 0.6:
            self.vessels.append(self.subcut_vein(rng, "ssv", math.pi / 2 + s * 0.1, U(rng, 0.3, 0.6), U(rng, 1.2, 2.2)))
        if rng.random() < 0.4:
            zc = self.z_joint + U(rng, -20, 40)
            self.vessels.append(node(rng, v, s, Smooth(rng, math.atan2(0.6, -s), 0.3), zc - 6, zc + 6))

    def _draw_knee(self, cv, z, cx, cy, r_o, r_m, g, muscle):
        s, t = self.s, self.tis
        u = z - self.z_joint
        bx, by = cx + self.b_off[0], cy + self.b_off[1]
        bones = []
        ax, ay, *_ = self.vessels[0].geom(z)
        fw = 16 + 8 * float(smoothstep((40 - abs(u)) / 40))  # popliteal fossa fat
        cv.fill(ellipse(ax + s * 3, ay + 6, fw, 14), t.fat, 0.9)
        # posterior muscle bellies (gastrocnemius heads / hamstrings) with fascial outlines
        lines = [ellipse(bx + sg * 24, by + self.apc + 22, 14, 16, sg * 0.4) for sg in (-1, 1)]
        self.septa(cv, lines, muscle)
        if -20 < u < 25:  # Hoffa fat pad
            cv.fill(ellipse(bx, by - self.apc - 5, 20, 9), t.fat, 0.8 * float(smoothstep((25 - abs(u)) / 10)))
        if u > 2:  # femur: shaft -> metaphysis -> condyles with the intercondylar notch
            w = float(smoothstep((70 - u) / 50))
            rx, ry = self.rs + w * (self.wc - self.rs), self.rs + w * (self.apc - self.rs)
            notch = 0.35 * float(smoothstep((28 - u) / 20))
            groove = 0.12 * float(smoothstep(min(u - 8, 60 - u) / 12))
            r = radius(THETA, rx, ry) * (1 - notch * np.exp(-((THETA - math.pi / 2) / 0.3) ** 2)
                                         - groove * np.exp(-((THETA + math.pi / 2) / 0.35) ** 2))
            fade = float(smoothstep((u - 2) / 5))
            r = r * (0.6 + 0.4 * fade)
            inner = self.cort + (1 - w) * 3.5
            cv.bone(star(bx, by, r), inner, t.cortex * (0.75 + 0.25 * (1 - w)), t.trab * w + t.marrow * (1 - w))
            bones.append((bx, by, min(rx, ry)))
        if u < -2:  # tibia: plateau -> shaft
            w = float(smoothstep((u + 80) / 55))
            rx, ry = 16 + w * (self.wt - 16), 15 + w * (self.apt - 15)
            fade = float(smoothstep((-2 - u) / 5))
            r = radius(THETA, rx, ry) * (0.6 + 0.4 * fade)
            ty = by + (1 - w) * -4
            cv.bone(star(bx, ty, r), self.cort + (1 - w) * 3, t.cortex * (0.75 + 0.25 * (1 - w)),
                    t.trab * w + t.marrow * (1 - w))
            bones.append((bx, ty, min(rx, ry)))
        if -48 < u < -12:  # fibular head, posterolateral
            q = 1 - ((u + 30) / 18) ** 2
            rf = 11 * math.sqrt(max(q, 0))
            if rf > 1:
                cv.bone(ellipse(bx + s * (self.wt * 0.82), by + self.apt * 0.55, rf, rf * 0.9), 1.5, t.cortex, t.trab)
        pw, ph, pd = self.pat
        w = float(smoothstep((70 - u) / 50))
        front = by - (self.rs + w * (self.apc - self.rs))  # anterior surface of the femur
        if 10 < u < 58:  # patella in front of the trochlea
            q = 1 - ((u - 34) / 24) ** 2
            if q > 0:
                k = math.sqrt(q)
                cv.bone(ellipse(bx, front - 2.5 - ph * k, pw * k, ph * k, 0.15 * s), 1.5, t.cortex, t.trab)
        if u >= 52:  # quadriceps tendon
            cv.fill(ellipse(bx, front - 8, 16, 3.5), 90.0)
        elif -35 < u <= 10:  # patellar ligament in front of the fat pad
            cv.fill(ellipse(bx, by - self.apc - 14, 13, 2.6), 95.0)
        return bones

    # ---------------------------------------------------------------- calf
    def _init_calf(self, rng):
        s, t = self.s, self.tis
        self.sep_w = U(rng, 0.5, 1.2)
        self.sept_keep = [0, 3] + [k for k in (1, 2, 4, 5) if rng.random() < 0.6]
        self.r_tib, self.cort = U(rng, 11, 14.5), U(rng, 4.0, 6.0)
        self.tib_off = (-s * self.rx * U(rng, 0.12, 0.25), -self.ry * U(rng, 0.38, 0.48))
        self.fib_off = (s * self.rx * U(rng, 0.45, 0.55), self.ry * U(rng, 0.22, 0.36))
        self.r_fib = U(rng, 5.5, 7.5)
        self.ry *= 1.05

        def tib(z):
            return self.cx(z) + self.tib_off[0], self.cy(z) + self.tib_off[1] + self.r_tib

        def fib(z):
            tx, ty = tib(z)
            return tx + self.fib_off[0], ty + self.fib_off[1]
        self.tib, self.fib = tib, fib

        def at(fn, dx, dy):
            return lambda z: (fn(z)[0] + dx, fn(z)[1] + dy)
        pt = at(tib, s * self.rx * U(rng, 0.04, 0.15), self.ry * U(rng, 0.48, 0.58))
        pe = at(fib, -s * self.rx * U(rng, 0.14, 0.2), self.ry * U(rng, 0.16, 0.24))
        self.sheath = U(rng, 0.45, 0.85)
        ant = lambda z: (0.45 * tib(z)[0] + 0.55 * fib(z)[0], 0.45 * tib(z)[1] + 0.55 * fib(z)[1] - 5)
        self.main = None
        for name, base, big in (("pt", pt, True), ("per", pe, False), ("at", ant, False)):
            av = U(rng, 2.6, 4.5) if big else U(rng, 1.5, 2.8)
            phi0 = U(rng, 0, math.pi)
            a, v1 = pair(rng, name, s, t, base, U(rng, 1.1, 1.9), av, Smooth(rng, phi0, 0.4), self.z_mid, main=big)
            hu2 = v1.hu + U(rng, -10, 10)
            v2 = pair(rng, name + "2", s, t, base, 1, av * U(rng, 0.7, 1.0), Smooth(rng, phi0 + math.pi, 0.4),
                      self.z_mid, vein_hu=hu2)[1]
            v2.anchor = a
            self.vessels += [a, v1, v2]
            if big:
                self.main = v1
        for _ in range(int(rng.integers(0, 3))):  # soleal / gastrocnemius sinus veins
            dx, dy = U(rng, -0.4, 0.4) * self.rx, U(rng, 0.25, 0.55) * self.ry
            sv = self.subcut_vein(rng, "soleal", 0, 0, U(rng, 2.0, 4.0))
            sv.base = (lambda z, dx=dx, dy=dy: (self.cx(z) + dx, self.cy(z) + dy))
            self.vessels.append(sv)
        self.vessels.append(self.subcut_vein(rng, "gsv", math.atan2(-0.3, -s), U(rng, 0.3, 0.6), U(rng, 1.2, 2.2)))
        if rng.random() < 0.6:
            self.vessels.append(self.subcut_vein(rng, "ssv", math.pi / 2 + s * 0.15, U(rng, 0.3, 0.6),
                                                 U(rng, 1.0, 2.0)))

    def _draw_calf(self, cv, z, cx, cy, r_o, r_m, g, muscle):
        s, t = self.s, self.tis
        tx, ty = self.tib(z)
        fx, fy = self.fib(z)
        rt = self.r_tib
        pm = (tx - s * rt * 0.7, ty + rt * 0.55)  # posteromedial border of the tibia
        pl = (tx + s * rt * 0.75, ty + rt * 0.45)
        lines = [np.array([pl, (fx - s * self.r_fib, fy)]),  # interosseous membrane
                 np.array([(fx, fy - self.r_fib), (fx + s * 14, fy - 22),
                           (cx + s * self.r_at(r_m, -0.6) * 1.1, fy - 40)]),
                 np.array([(fx + s * self.r_fib, fy), (fx + s * 20, fy + 12), (fx + s * 45, fy + 20)]),
                 np.array([pm, ((tx + fx) / 2, ty + 36), (fx, fy + self.r_fib + 5)]),  # transverse septum
                 np.array([(cx - s * 80, cy + 0.35 * self.ry), (cx, cy + 0.42 * self.ry + 6),
                           (cx + s * 80, cy + 0.3 * self.ry)]),  # soleus / gastrocnemius
                 np.array([(cx, cy + 0.45 * self.ry), (cx + s * 2, cy + self.ry * 1.2)])]
        self.septa(cv, [lines[k] for k in self.sept_keep], muscle)
        for a in self.vessels[0:6:3]:  # thin fat sheath along the posterior tibial and peroneal bundles
            ax, ay, *_ = a.geom(z)
            ends = [(v.geom(z)[:2], v.rmax(z)) for v in self.vessels if v.anchor is a and v.kind == "vein"]
            (p1, r1), (p2, r2) = ends[0], ends[-1]
            d = max(math.hypot(p1[0] - ax, p1[1] - ay) + r1, math.hypot(p2[0] - ax, p2[1] - ay) + r2)
            cv.fill(ellipse(ax, ay, d + 1.5, max(r1, r2) + 1.5, math.atan2(p1[1] - ay, p1[0] - ax)), t.fat,
                    self.sheath)
        tri = radius(THETA, rt, rt * 0.95, -math.pi / 2, [(3, 0.07, 0.0), (2, 0.05, 0.0)])
        cv.bone(star(tx, ty, tri), self.cort, t.cortex, t.marrow)
        cv.bone(ellipse(fx, fy, self.r_fib, self.r_fib * 0.85, 0.5), self.r_fib * 0.55, t.cortex, t.marrow)
        return [(tx, ty, rt), (fx, fy, self.r_fib)]

    def draw(self, cv: Canvas, z: float):
        cx, cy, r_o, r_m, g, muscle = self.outline(cv, z)
        return getattr(self, "_draw_" + self.kind)(cv, z, cx, cy, r_o, r_m, g, muscle)
