"""Vessel outlines over time: the pulsating, slightly flattening artery; the vein that collapses (normal),
barely narrows (occlusive clot) or whose residual lumen closes onto an eccentric clot (partial clot)."""

from __future__ import annotations

import numpy as np

from training.second_renderer import us_geometry as G
from training.second_renderer.us_params import Scene


class VesselModel:
    def __init__(self, scene: Scene):
        self.s = scene
        a = scene.artery
        self.art_rest = G.shape_poly(a["cx"], a["cy"], a["r"], a["r"] * a["aspect"])
        v = scene.vein
        self.vein_rest = v["rest"]
        top, bot = self.vein_rest[:, 1].min(), self.vein_rest[:, 1].max()
        self.v_cx = float(self.vein_rest[:, 0].mean())
        self.v_y0 = float(top + v["anchor"] * (bot - top))
        self.rest_area = G.poly_area(self.vein_rest)
        # heart phase with a little rate variability
        t = scene.t
        hz = a["hr_bpm"] / 60.0
        wobble = a["hr_jitter"] * np.sin(2 * np.pi * 0.23 * t + 7 * a["phase0"]) / (2 * np.pi * 0.23)
        self.phase = a["phase0"] + hz * t + hz * wobble
        self.pulse = G.pulse_waveform(self.phase, a["upstroke"], a["tau"], a["notch"])
        self.p = scene.p_max * scene.q
        if scene.clot == "partial":
            self._setup_partial()

    # ---- partial clot: polar description about the clot centre
    def _setup_partial(self):
        v = self.s.vein
        rest = self.vein_rest
        c_v = G.poly_centroid(rest)
        th = np.linspace(0, 2 * np.pi, G.N_POLY, endpoint=False)
        d = v["clot_dir"]
        r_dir = G.ray_radii(rest, c_v, np.array([d]))[0]
        c_c = c_v + v["clot_ecc"] * r_dir * np.array([np.cos(d), np.sin(d)])
        self.c_c = c_c
        self.th = th
        self.R_v = G.ray_radii(rest, c_c, th)
        ea, eb, ang = v["clot_axes"]
        mean_r = np.sqrt(self.rest_area / np.pi)

        def clot_r(k):
            a_, b_ = k * ea * mean_r, k * eb * mean_r
            ct, st = np.cos(th - ang), np.sin(th - ang)
            return np.minimum(self.R_v, 1.0 / np.sqrt((ct / a_) ** 2 + (st / b_) ** 2))

        lo, hi = 0.05, 6.0
        for _ in range(40):  # clot ellipse size giving the drawn lumen fraction
            k = 0.5 * (lo + hi)
            if G.poly_area(self._polar(clot_r(k))) / self.rest_area < self.s.clot_fraction:
                lo = k
            else:
                hi = k
        self.R_c = clot_r(0.5 * (lo + hi))
        # how far the residual lumen may close: never below the outline floor
        floor = v["outline_floor"]
        g = v["residual_g"]
        if self._partial_area(g, 1.0) < floor:
            lo, hi = g, 1.0
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if self._partial_area(mid, 1.0) < floor else (lo, mid)
            g = hi
        self.g_min = g

    def _polar(self, R, c=None):
        c = self.c_c if c is None else c
        return np.stack([c[0] + R * np.cos(self.th), c[1] + R * np.sin(self.th)], axis=1)

    def _partial_polys(self, g: float, p: float):
        sq = 1.0 - self.s.vein["clot_squash"] * p
        outline = self._polar(self.R_c + (self.R_v - self.R_c) * g)
        clot = self._polar(self.R_c)
        cy = self.c_c[1]
        return G.squash(outline, self.c_c[0], cy, 1.0, sq), G.squash(clot, self.c_c[0], cy, 1.0, sq)

    def _partial_area(self, g: float, p: float) -> float:
        return G.poly_area(self._partial_polys(g, p)[0]) / self.rest_area

    # ---- per frame
    def artery(self, k: int) -> np.ndarray:
        a = self.s.artery
        scale = 1.0 + a["pulse_amp"] * (2.0 * self.pulse[k] - 1.0)
        flat = a["flatten_max"] * self.p[k] ** 1.5
        sy, sx = (1.0 - flat) ** 0.7, (1.0 - flat) ** -0.3
        return G.shape_poly(a["cx"], a["cy"], a["r"] * scale * sx, a["r"] * a["aspect"] * scale * sy)

    def vein(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(outline incl. clot, clot outline or None) in rest-frame image pixels."""
        v, s = self.s.vein, self.s
        p = self.p[k]
        resp = 1.0 + v["resp_amp"] * np.sin(2 * np.pi * s.t[k] / v["resp_period"] + v["resp_phase"])
        if s.clot == "partial":
            g = 1.0 - (1.0 - self.g_min) * min(p, 1.0) ** 0.8
            out, clot = self._partial_polys(g, p)
            return G.squash(out, self.c_c[0], self.c_c[1], resp, resp), G.squash(clot, self.c_c[0], self.c_c[1], resp, resp)
        if s.clot == "occlusive":
            a = 1.0 - (1.0 - v["dvt_min"]) * min(p, 1.0)
            sx = 1.0 + 0.25 * (1.0 - a)
        else:
            a = v["a_min"] + (1.0 - v["a_min"]) * max(0.0, 1.0 - p / v["p_c"]) ** v["kappa"]
            a = max(a, 0.004)
            sx = 1.0 + v["widen"] * (1.0 - a)
        out = G.squash(self.vein_rest, self.v_cx, self.v_y0, sx * resp, a / sx * resp)
        return out, (out if s.clot == "occlusive" else None)
