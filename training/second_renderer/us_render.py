"""Frame loop: warp the static tissue by the probe's compression, draw the vessels (walls, lumen, clot),
add acoustic enhancement / edge shadows, depth gain, noise, log compression, and place it on the screen."""

from __future__ import annotations

import cv2
import numpy as np

from training.second_renderer import us_geometry as G
from training.second_renderer.us_params import Scene
from training.second_renderer.us_screen import build_overlay, trapezoid_mask
from training.second_renderer.us_tissue import _gauss_blur, build_tissue, speckle
from training.second_renderer.us_vessels import VesselModel


def _fill(canvas: np.ndarray, poly: np.ndarray, off: tuple[int, int], aa: bool, val: int = 255) -> None:
    pts = np.round((poly - np.array(off, dtype=np.float64) - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pts], val, cv2.LINE_AA if aa else cv2.LINE_8, 4)


class Renderer:
    def __init__(self, scene: Scene):
        self.s = s = scene
        p = s.preset
        self.mm = mm = 1.0 / s.px_mm
        _, _, self.w, self.h = s.region
        self.tissue = build_tissue(s)
        self.vm = VesselModel(s)
        self.rng = np.random.default_rng([s.seed, 2])
        self.cs_art = G.ColumnSquash(self.vm.art_rest, taper=max(2.0 * s.artery["r"], 3 * mm))
        self.cs_vein = G.ColumnSquash(self.vm.vein_rest, taper=2.5 * (np.ptp(self.vm.vein_rest[:, 1]) + 2 * mm))
        h, w = self.h, self.w
        # display chain
        dr = p["dynamic_range_db"]
        u_ref = p["tissue_grey"] ** (1.0 / p["gamma"])
        self.gain_db = u_ref * dr - dr + 7.0  # muscle-like tissue (-7 dB) lands at tissue_grey
        depth_cm = (np.arange(h) + 0.5) * s.px_mm / 10.0
        ripple = np.zeros(h)
        for _ in range(3):
            ripple += p["tgc_ripple_db"] / 2 * np.sin(2 * np.pi * depth_cm / self.rng.uniform(1.0, 3.0) + self.rng.uniform(0, 6))
        focus_cm = p["focus_frac"] * h * s.px_mm / 10.0
        row_db = -p["atten_db_per_cm"] * depth_cm + ripple + p["focus_gain_db"] * np.exp(-0.5 * ((depth_cm - focus_cm) / 0.6) ** 2)
        self.row_gain = (10 ** (row_db / 20.0)).astype(np.float32)[:, None]
        noise_grey = 2.0 + (p["noise_grey_deep"] - 2.0) * (np.arange(h) / h) ** 3.0
        noise_u = (noise_grey / 255.0) ** (1.0 / p["gamma"])
        self.noise_amp = (10 ** ((noise_u * dr - dr - self.gain_db + 2.5) / 20.0)).astype(np.float32)[:, None]
        u = np.linspace(0, 1, 256)
        self.lut = np.clip(np.round(255.0 * u ** p["gamma"]), 0, 255).astype(np.uint8)
        self.dr = dr
        # per-frame noise sources: windows at random offsets into larger fields
        pad = 48
        ax, lat = p["psf_axial_mm"] * mm, p["psf_lateral_mm"] * mm
        n = self.rng.standard_normal((2, h + pad, w + pad)).astype(np.float32)
        nl, na = max(0.7 * lat, 0.6), max(ax, 0.6)  # receiver noise is band-limited like the echoes
        re, im = _gauss_blur(n[0], nl, na), _gauss_blur(n[1], nl, na)
        nrm = np.sqrt(np.mean(re ** 2 + im ** 2))
        self.enoise = (np.hypot(re, im) / nrm).astype(np.float32)
        dec = speckle(self.rng, s, np.ones((h + pad, w + pad), np.float32), None)
        self.decor = (1 + p["speckle_decorrelation"] * (dec / dec.mean() - 1)).astype(np.float32)
        self.fresh_spk = (dec / dec.mean()).astype(np.float32)
        self.pad = pad
        tm = trapezoid_mask(s)
        self.trap = None if tm is None else np.round(tm * 255).astype(np.uint8)
        self.overlay, self.marks = build_overlay(s)
        self.mark_box = None
        ys, xs = np.nonzero(self.marks)
        if ys.size:
            self.mark_box = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        self.xs_out = np.arange(w, dtype=np.float32)[None, :]
        self.prev = None
        self.soft_sig = (0.5 * lat, 0.5 * ax)
        # vessel echo levels
        t = self.tissue
        self.blood_v = t.level_near_vein * 10 ** (-self.rng.uniform(38, 50) / 20)
        self.blood_a = t.level_near_artery * 10 ** (-self.rng.uniform(40, 52) / 20)
        self.iso = t.level_near_vein * self.rng.uniform(0.75, 1.05)
        # clot echo 0 sits at the display's black level at the vein's depth, 1 at the surrounding tissue
        vrow = int(np.clip(self.vm.vein_rest[:, 1].mean(), 0, h - 1))
        self.black_v = max(10 ** ((-self.gain_db - dr + 2.0) / 20) / float(self.row_gain[vrow, 0]), self.blood_v)
        self.enh_db_mm = self.rng.uniform(0.2, 0.55)
        self.enh_decay = self.rng.uniform(12, 40) * mm
        self.edge_shadow = self.rng.uniform(0.0, 0.6) if self.rng.random() < 0.7 else 0.0
        th = np.linspace(0, 2 * np.pi, G.N_POLY, endpoint=False)
        wob = s.artery["wall_wobble"]
        self.wall_profile = 1 + wob * (0.6 * np.cos(2 * th + self.rng.uniform(0, 6)) + 0.4 * np.cos(3 * th + self.rng.uniform(0, 6)))
        self.shadow_w = self.rng.uniform(0.4, 1.0) * mm
        self.shadow_len = self.rng.uniform(8, 25) * mm

    # ---- global motion (probe pressure): superficial layer thins, probe slides a little
    def _g_forward(self, pts: np.ndarray, c: float, shift: float) -> np.ndarray:
        D = self.s.fascia_y
        out = pts.copy()
        y = pts[:, 1]
        out[:, 1] = np.where(y < D, y * (1 - c), y - c * D)
        out[:, 0] += shift
        return out

    def frame(self, k: int):
        s, mm, h, w = self.s, self.mm, self.h, self.w
        p = self.vm.p[k]
        c = s.compress_frac * p
        shift = s.shift_px * p
        art0 = self.vm.artery(k)
        vein0, clot0 = self.vm.vein(k)
        self.cs_art.set_current(art0)
        self.cs_vein.set_current(vein0)
        # the artery rides on the tissue the vein moves, as a whole (it keeps its own shape)
        moved = self.cs_vein.forward_points(art0)
        art = self._g_forward(art0 + np.array([0.0, float(np.mean(moved[:, 1] - art0[:, 1]))]), c, shift)
        vein = self._g_forward(vein0, c, shift)
        clot = None if clot0 is None else self._g_forward(clot0, c, shift)

        # inverse map output -> static canvas
        D = s.fascia_y
        yo = np.arange(h, dtype=np.float32)
        yg = np.where(yo < D * (1 - c), yo / (1 - c), yo + c * D).astype(np.float32)
        map_y = np.repeat(yg[:, None], w, axis=1)
        off = int(round(shift))
        self.cs_vein.inverse_inplace(map_y, off)
        self.cs_art.inverse_inplace(map_y, off)
        spans = [cs.last_cols for cs in (self.cs_vein, self.cs_art) if cs.last_cols is not None]
        map_x = np.broadcast_to(self.xs_out + np.float32(self.tissue.mx - shift), (h, w)).astype(np.float32)
        img = cv2.remap(self.tissue.env, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        # tissue strongly deformed around a vessel decorrelates: mix in fresh speckle where it stretches or shears
        if spans:
            e0, e1 = min(sp[0] for sp in spans), max(sp[1] for sp in spans)
            d = map_y[:, e0:e1] - yg[:, None]
            strain = np.abs(cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3, scale=0.125))
            strain += np.abs(cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3, scale=0.125))
            if float(strain.max()) > 0.05:
                beta = np.clip(2.5 * (strain - 0.04), 0, 0.85)
                img[:, e0:e1] *= 1 + beta * (self._window(self.fresh_spk, h, e1 - e0) - 1)

        # vessels, in a region of interest
        wa, wv = s.artery["wall"], s.vein["wall"]
        allp = np.concatenate([G.offset_poly(art, wa), G.offset_poly(vein, wv)])
        m = int(3 * max(self.soft_sig) + 4)
        x0, y0 = max(0, int(allp[:, 0].min()) - m), max(0, int(allp[:, 1].min()) - m)
        x1, y1 = min(w, int(allp[:, 0].max()) + m + 1), min(h, int(allp[:, 1].max()) + m + 1)
        roi = (slice(y0, y1), slice(x0, x1))
        o = (x0, y0)
        rh_, rw_ = y1 - y0, x1 - x0
        spk = cv2.remap(self.tissue.vspeckle, map_x[roi], map_y[roi], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        fresh = self._window(self.enoise, rh_, rw_)

        def soft(poly, extra=0.0):
            cv_ = np.zeros((rh_, rw_), np.uint8)
            _fill(cv_, poly, o, True)
            sx, sy = self.soft_sig
            return _gauss_blur(cv_.astype(np.float32) * np.float32(1 / 255), np.hypot(sx, extra), np.hypot(sy, extra))

        def hard(poly):
            cv_ = np.zeros((rh_, rw_), np.uint8)
            _fill(cv_, poly, o, False, 1)
            return cv_.astype(bool)

        def angle_factor(poly, power):
            cx, cy = poly[:, 0].mean() - x0, poly[:, 1].mean() - y0
            dy = np.arange(rh_, dtype=np.float32)[:, None] + np.float32(0.5 - cy)
            dx = np.arange(rw_, dtype=np.float32)[None, :] + np.float32(0.5 - cx)
            sn = np.abs(dy) / np.maximum(np.sqrt(dx * dx + dy * dy), np.float32(1e-3))
            return sn ** power

        sub = img[roi]
        # artery: intima (bright thin), media (darker), adventitia (brightest, blends into tissue)
        A = s.artery
        lum = soft(art)
        wt = wa * self.wall_profile  # the wall is not equally thick all round
        l_i, l_m = soft(G.offset_poly(art, 0.15 * wt)), soft(G.offset_poly(art, 0.4 * wt))
        l_o = soft(G.offset_poly(art, wt))
        g_top, g_side = 10 ** (A["wall_gain_db"] / 20), A["wall_side"]
        lvl = self.tissue.level_near_artery * (g_side + (g_top - g_side) * angle_factor(art, 6))
        het = cv2.remap(self.tissue.hetero, map_x[roi], map_y[roi], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        sw = lvl * (0.5 + 0.5 * spk) * het ** 1.5  # patchy along the circumference
        b_i, b_m, b_a = (np.clip(u - v, 0, None) for u, v in ((l_i, lum), (l_m, l_i), (l_o, l_m)))
        blood = self.blood_a + self._haze(art, self.tissue.level_near_artery, rh_, y0)
        sub[:] = (sub * (1 - l_o) + b_a * np.hypot(sub, sw) + b_m * np.hypot(0.5 * sub, A["im_ratio"] * sw)
                  + b_i * np.hypot(0.4 * sub, 0.9 * sw) + lum * blood * fresh)
        # vein: thin faint wall, blood and/or clot
        V = s.vein
        closed = float(np.clip(1.0 - G.poly_area(vein0) / (0.15 * self.vm.rest_area), 0, 1))  # apposed walls
        lum = soft(vein) * np.float32(1.0 - 0.85 * closed ** 2)  # a sub-resolution slit is not seen as dark
        l_o = soft(G.offset_poly(vein, wv))
        g_top = 10 ** ((V["wall_gain_db"] + 8.0 * closed) / 20)
        lvl = self.tissue.level_near_vein * (V["wall_side"] + (g_top - V["wall_side"]) * angle_factor(vein, 4))
        band = np.clip(l_o - lum, 0, None)
        wall = band * np.hypot(0.6 * sub, lvl * (0.4 + 0.6 * spk))
        content = (self.blood_v + self._haze(vein, self.tissue.level_near_vein, rh_, y0)) * fresh
        clot_hard = None
        if clot is not None:
            e = s.clot_echo
            het_c = 1.0 + V["clot_hetero"] / 0.45 * (het - 1.0)
            amp = self.black_v ** (1 - e) * self.iso ** e * np.clip(het_c, 0.2, None) * spk
            cm = soft(clot) if s.clot == "partial" else lum
            if V.get("clot_rim", 0.0) > 0.5 and s.clot == "partial":
                rim = np.clip(cm - soft(G.offset_poly(clot, -0.5 * mm)), 0, None)
                amp = amp * (1 + 1.5 * rim)
            content = content * (1 - cm) + amp * cm
            clot_hard = None  # set after the vein mask
        sub[:] = sub * (1 - l_o) + wall + lum * content

        # masks
        mk = np.zeros((rh_, rw_), np.uint8)
        h_art, h_vein = hard(art), hard(vein)
        mk[h_vein] = 2
        mk[h_art] = 1
        if clot is not None:
            clot_hard = hard(clot) & h_vein  # a clot lies in the vein by definition

        # acoustic enhancement below fluid, refraction shadows at the artery's sides
        mult = np.ones((h - y0, rw_), np.float32)
        rows = np.arange(y0, h, dtype=np.float32)[:, None] + 0.5
        for hm in (h_art, h_vein):
            fluid = hm.astype(np.float32)
            if clot_hard is not None and hm is h_vein:
                fluid = fluid - clot_hard * np.float32(0.85 * (1 - 0.6 * (1 - s.clot_echo)))
            chord = fluid.sum(axis=0) * s.px_mm
            if chord.max() <= 0:
                continue
            chord = cv2.GaussianBlur(chord.astype(np.float32)[None, :], (0, 0), sigmaX=0.8 * mm)[0]
            bottom = np.where(hm.any(axis=0), rh_ - 1 - np.argmax(hm[::-1], axis=0), 0) + y0
            db = np.minimum(self.enh_db_mm * chord, 7.0)
            ramp = np.clip((rows - bottom[None, :]) / mm, 0, 1) * np.exp(-np.clip(rows - bottom[None, :], 0, None) / self.enh_decay)
            mult *= 10 ** (db[None, :] * ramp / 20.0)
        if self.edge_shadow > 0:
            xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
            dy = rows - art[:, 1].mean()
            below = np.clip(dy / (2 * mm), 0, 1) * np.exp(-np.clip(dy, 0, None) / self.shadow_len)
            for xe in (art[:, 0].min(), art[:, 0].max()):
                mult *= 1 - self.edge_shadow * below * np.exp(-(((xs - xe) / self.shadow_w) ** 2))
        img[y0:, x0:x1] *= mult

        # depth gain, speckle decorrelation, electronic noise, log compression
        img *= self.row_gain
        img *= self._window(self.decor, h, w)
        img *= img
        nz = self._window(self.enoise, h, w) * self.noise_amp
        nz *= nz
        img += nz
        np.log10(np.maximum(img, np.float32(1e-24), out=img), out=img)
        # u = (10 log10(power) + gain + DR) / DR, quantised to 8 bits, then the display gamma
        img *= np.float32(10.0 * 255.0 / self.dr)
        img += np.float32((self.gain_db + self.dr) * 255.0 / self.dr)
        np.clip(img, 0, 255, out=img)
        grey = cv2.LUT(img.astype(np.uint8), self.lut)
        pp = s.preset
        if pp["speckle_reduction"] > 0:  # edge-preserving smoothing of the scanner's speckle reduction
            grey = cv2.bilateralFilter(grey, 5, pp["speckle_reduction"], 2.0)
        if pp["post_blur_px"] > 0:
            grey = cv2.GaussianBlur(grey, (0, 0), pp["post_blur_px"])
        if pp["sharpen"] > 0:
            grey = cv2.addWeighted(grey, 1 + pp["sharpen"], cv2.GaussianBlur(grey, (0, 0), 2.0), -pp["sharpen"], 0)
        if pp["persistence"] > 0 and self.prev is not None:
            grey = cv2.addWeighted(grey, 1 - pp["persistence"], self.prev, pp["persistence"], 0)
        self.prev = grey
        if self.trap is not None:
            grey = cv2.multiply(grey, self.trap, scale=1.0 / 255)
        return grey, mk, (y0, x0), clot_hard

    def _haze(self, poly, level, rows, y0):
        """Faint reverberation echoes in the upper part of a lumen: a column vector over the ROI rows."""
        db = self.s.vein["haze_db"]
        if db < -90:
            return np.float32(0.0)
        top, bot = poly[:, 1].min() - y0, poly[:, 1].max() - y0
        r = np.arange(rows, dtype=np.float32)[:, None] + 0.5
        fall = np.exp(-np.clip(r - top, 0, None) / max(0.2 * (bot - top), 1.0))
        return (level * 10 ** (db / 20) * fall).astype(np.float32)

    def _window(self, field: np.ndarray, h: int, w: int) -> np.ndarray:
        oy = int(self.rng.integers(0, field.shape[0] - h + 1))
        ox = int(self.rng.integers(0, field.shape[1] - w + 1))
        return field[oy:oy + h, ox:ox + w]
