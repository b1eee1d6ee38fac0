"""An independent second renderer of lower-extremity CT venography phantoms, for EVALUATION ONLY.

Research software, not for diagnostic use. It shares only the ``Lesion`` / ``Study`` containers and the writers
with :mod:`training.ct.phantom` and was written without reading that renderer, so a detector trained on the first
renderer meets different shapes, textures, noise and artefacts here. Never train or tune on these studies.

Regions (``region``): "thighs" (both thighs, air between), "pelvis" (one body outline, iliac bones, bladder,
iliac vessels), "crop" (one thigh or knee / popliteal fossa, field of view 150-250 mm), "calf" (both calves with
paired tibial / peroneal veins). Geometry as the writers (:mod:`training.ct.phantom_io`) expect: pixel column c has
its centre at x = (c + 0.5 - W/2) * ps mm (x = patient left, y = posterior), slices ascend in z (index 0 = most
caudal). Each slice averages sub-slice renders over its thickness (background at 1-3 positions, vessels holding a
clot or streak every ~0.4 mm, other vessels at 3), then gets a Gaussian PSF (sometimes a sharp kernel),
beam-hardening bands/streaks between dense bones and in-plane correlated noise.

Ground truth: the clot coverage of each pixel is averaged over the slice thickness and blurred by the image's
in-plane PSF; a thrombus box on a slice is the bounding box of the pixels >= 50 % clot, given only where the defect
is visible (>= 2 pixels >= 80 % clot, i.e. near clot density); boxes are [x0, y0, x1, y1], x1/y1 exclusive.
Clots in one vein whose boxes overlap on a slice are merged into one lesion (union box). Mixing streaks are
``mimics`` with the vein's box on each slice they visibly span. ``veins``: per slice {side: (x, y, radius)} pixels
(box coordinates: pixel c spans [c, c + 1)) of the main vein; the circle encloses its lumen over the slice.

CLI: ``python -m training.ct.second_renderer --out DIR --studies N --seed S [--size 512]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from training.ct.second_renderer_draw import Canvas, Smooth, Texture, beam_hardening, blur, correlated_noise
from training.ct.second_renderer_limbs import Limb, U, sample_tissues
from training.ct.second_renderer_pelvis import Pelvis
from training.ct.second_renderer_vessels import Clot, Streak, composite, mask_box, render_vessel
from training.ct.study import Lesion, Study

REGIONS = ("thighs", "pelvis", "crop", "calf")
THICKNESSES_MM = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
MAX_SLICES = 120
CORE = 0.8  # a defect is visible on a slice when >= 2 pixels are >= 80 % clot (box: pixels >= 50 % clot)
SITES = {"sfa": "femoral", "pop": "popliteal", "eia": "external_iliac", "pt": "posterior_tibial"}


class Layout:
    """The anatomy of one study: body parts, vessels, main veins, field of view and image-formation settings."""

    def __init__(self, rng: np.random.Generator, region: str, z_lo: float, z_hi: float):
        self.region, z_mid = region, (z_lo + z_hi) / 2
        tis = sample_tissues(rng)
        self.site = region
        if region == "pelvis":
            fov = U(rng, 380, 500)
            cov = z_hi - z_lo
            z_ref = z_lo - U(rng, -35, max(-34.0, 165 - cov))
            self.parts = [Pelvis(rng, tis, z_ref, fov)]
            self.table_y = self.parts[0].table_y
            noise, self.bh = U(rng, 14, 28), U(rng, 15, 45)
        elif region == "crop":
            fov, kind, side = U(rng, 150, 250), ("thigh" if rng.random() < 0.5 else "knee"), int(rng.choice([-1, 1]))
            self.site = "crop-" + kind
            cy = U(rng, -15, 15)
            limb = Limb(rng, kind, side, (U(rng, -15, 15), cy), tis, None, z_mid)
            limb.table_y = cy + limb.ry * U(rng, 0.95, 1.05)
            self.parts, self.table_y = [limb], limb.table_y
            noise, self.bh = U(rng, 10, 25), U(rng, 0, 10)
        else:
            kind = "thigh" if region == "thighs" else "calf"
            cy = U(rng, -10, 25)
            self.parts = []
            for s in (-1, 1):  # legs of similar calibre
                ref = self.parts[0].rx * U(rng, 0.9, 1.12) if self.parts else None
                self.parts.append(Limb(rng, kind, s, (0.0, cy), tis, None, z_mid, rx=ref))
            gmax = max(1 + p.grow * (z_hi + 3 - z_mid) for p in self.parts)
            half = max(p.rx for p in self.parts) * gmax * 1.12
            gap = U(rng, 4, 30)
            need = 2 * (2 * half + gap / 2) + 16
            if need > 500:
                k = (500 - 16 - gap) / (4 * half)
                for p in self.parts:
                    p.rx, p.ry, p.t0 = p.rx * k, p.ry * k, p.t0 * k
                half *= k
            fov = float(np.clip(2 * (2 * half + gap / 2) + 16 + U(rng, 0, 60), 310, 500))
            ry = max(p.ry for p in self.parts) * gmax
            self.table_y = cy + ry * 0.97
            for p in self.parts:
                p.cx.base = p.s * (half + gap / 2)
                p.table_y = self.table_y
            noise, self.bh = (U(rng, 8, 20), U(rng, 8, 25)) if kind == "thigh" else (U(rng, 8, 18), U(rng, 5, 15))
        self.fov, self.noise = fov, noise
        self.mains = {s: v for p in self.parts for s, v in (getattr(p, "mains", None) or {p.s: p.main}).items()}
        self.vessels = self._without_collisions([v for p in self.parts for v in p.vessels], z_lo, z_hi)
        self.noise_mm = U(rng, 0.45, 0.85)
        self.noise_aniso = U(rng, 1.0, 1.35)
        self.psf_mm = U(rng, 0.3, 0.55)
        self.sharp = U(rng, 0.3, 0.7) if rng.random() < 0.3 else 0.0
        self.tex_amp, self.bone_tex = U(rng, 3, 8), U(rng, 20, 45)
        self.table = (U(rng, 60, 260), U(rng, 10, 25), U(rng, 0.0, 0.0008), U(rng, 2.0, 4.0))
        self.bh_vals = rng.random(16)

    def _without_collisions(self, vessels, z_lo, z_hi):
        """Drop minor vessels / nodes that would overlap a kept one anywhere in the study (mains always kept)."""
        zs = np.linspace(z_lo - 3, z_hi + 3, 13)
        keep = [v for v in vessels if v.main or any(v is m.anchor for m in self.mains.values())]
        for v in vessels:
            if any(v is k for k in keep):
                continue
            ok = True
            for z in zs:
                if v.extent(z) <= 0:
                    continue
                x, y, *_ = v.geom(z)
                for k in keep:
                    if k.extent(z) > 0:
                        kx, ky, *_ = k.geom(z)
                        if math.hypot(x - kx, y - ky) < v.rmax(z) + k.rmax(z) + 1.0:
                            ok = False
                            break
                if not ok:
                    break
            if ok:
                keep.append(v)
        order = {id(v): i for i, v in enumerate(vessels)}
        return sorted(keep, key=lambda v: order[id(v)])

    def draw(self, cv: Canvas, z: float):
        bones = []
        for p in self.parts:
            bones += p.draw(cv, z)
        hu, drop, curv, w = self.table
        xs = np.linspace(-self.fov / 2, self.fov / 2, 60)
        for dy, ww in ((1.0 + w / 2, w), (1.0 + drop, 1.5)):
            cv.stroke([np.stack([xs, self.table_y + dy + curv * xs ** 2], 1)], ww, hu)
        return bones


def _sample_lesions(rng, lay: Layout, n_thrombi, z_lo, z_hi, region):
    """Clots and mixing streaks attached to the main veins; returns the list of clots."""
    sides = sorted(lay.mains)
    n = int(rng.choice([0, 1, 2, 3], p=[0.25, 0.4, 0.25, 0.1])) if n_thrombi is None else int(n_thrombi)
    cov = z_hi - z_lo
    clots = []
    for k in range(n):
        v = lay.mains[sides[int(rng.integers(len(sides)))]]
        kind = "occlusive" if rng.random() < 0.4 else "partial"
        length = U(rng, 10, 60)
        z0 = U(rng, z_lo + 1, z_hi - 1 - length) if length + 2 < cov else z_lo - (length - cov) / 2 + U(rng, -1, 1)
        style = str(rng.choice(["central", "mural", "blob"], p=[.35, .45, .2]))
        frac = U(rng, 0.3, {"central": 0.6, "mural": 0.72, "blob": 0.65}[style])  # a polo mint keeps its rim
        c = Clot(kind, z0, z0 + length, U(rng, 15, 70), style, frac, Smooth(rng, U(rng, 0, 2 * math.pi), 0.6),
                 U(rng, 0.0, 0.2), U(rng, 0.45, 1.0),
                 U(rng, 2, 5), U(rng, 3, 12) if kind == "occlusive" else U(rng, 2, 6), U(rng, 1.1, 1.6),
                 U(rng, 0.5, 1.2) if rng.random() < 0.5 else 0.0, U(rng, 100, 140), U(rng, 2, 8), ident=k)
        c.taper_lo, c.taper_hi = min(c.taper_lo, length / 3), min(c.taper_hi, length / 3)
        v.clots.append(c)
        clots.append((c, v))
    if rng.random() < {"pelvis": 0.6, "calf": 0.1}.get(region, 0.35):  # mixing at large-vein confluences
        for _ in range(10):
            v = lay.mains[sides[int(rng.integers(len(sides)))]]
            vis = min(60.0, cov)
            if rng.random() < 0.4:
                z0, z1 = z_lo - 60, z_hi + 60
            else:
                ls = U(rng, 60, 160)
                z0 = U(rng, z_lo - ls + vis, z_hi - vis)
                z1 = z0 + ls
            if any(c.z0 - 10 < z1 and z0 < c.z1 + 10 for c in v.clots):
                continue
            v.streaks.append(Streak(z0, z1, U(rng, 0, 2 * math.pi), float(rng.choice([-1, 1])) * U(rng, 0.05, 0.15),
                                    Smooth(rng, U(rng, -0.3, 0.3), 0.15, pmin=30, pmax=90), U(rng, 0.18, 0.35),
                                    U(rng, -0.4, 0.4), min(U(rng, 60, 120), v.hu - 30)))
            break
    return clots


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def merge_lesions(lesions: list[tuple[Lesion, str]]) -> list[Lesion]:
    """Merge lesions of one vein whose boxes overlap on a shared slice (union box per slice)."""
    items = list(lesions)
    changed = True
    while changed:
        changed = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                (a, va), (b, vb) = items[i], items[j]
                if va != vb or not any(_overlap(a.boxes[k], b.boxes[k]) for k in set(a.boxes) & set(b.boxes)):
                    continue
                boxes = dict(a.boxes)
                for k, bb in b.boxes.items():
                    o = boxes.get(k)
                    boxes[k] = bb if o is None else [min(o[0], bb[0]), min(o[1], bb[1]),
                                                     max(o[2], bb[2]), max(o[3], bb[3])]
                kind = "occlusive" if "occlusive" in (a.kind, b.kind) else "partial"
                params = dict(a.params, merged=a.params.get("merged", 1) + b.params.get("merged", 1))
                lv = (min(a.level_mm[0], b.level_mm[0]), max(a.level_mm[1], b.level_mm[1]))
                items[i] = (Lesion(kind, a.side, lv, params, dict(sorted(boxes.items()))), va)
                del items[j]
                changed = True
                break
            if changed:
                break
    return [label for label, _ in items]


def make_study(seed: int, size: int = 512, n_slices: int | None = None, thickness_mm: float | None = None,
               n_thrombi: int | None = None, region: str | None = None) -> Study:
    """Render one study (deterministic per seed); see the module docstring."""
    meta = np.random.default_rng([seed, 20260, 0])
    region = region or str(meta.choice(REGIONS, p=[0.35, 0.25, 0.2, 0.2]))
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, not {region!r}")
    th = float(thickness_mm or meta.choice(THICKNESSES_MM, p=[.12, .1, .1, .2, .13, .15, .2]))
    spacing = round(th * float(meta.choice([1.0, 1.0, 1.0, 0.8, 0.5])), 3)
    spacing = th if spacing < 0.5 else spacing
    if n_slices is None:
        n_slices = int(np.clip(round(meta.uniform(60, 200) / spacing), 8, MAX_SLICES))
    pos = round(meta.uniform(-600, -150), 1) + spacing * np.arange(n_slices)
    z_lo, z_hi = float(pos[0]), float(pos[-1])
    lay = Layout(np.random.default_rng([seed, 20260, 1]), region, z_lo, z_hi)
    clots = _sample_lesions(np.random.default_rng([seed, 20260, 2]), lay, n_thrombi, z_lo, z_hi, region)
    nrng = np.random.default_rng([seed, 20260, 3])
    ps = lay.fov / size
    tex = Texture(nrng, z_lo - th, z_hi + th, size)
    btex = Texture(nrng, z_lo - th, z_hi + th, size, cells=min(size, max(16, int(lay.fov / 1.3))), dz=2.0)
    nb = 1 if th <= 1.5 else (2 if th <= 3 else 3)
    ns = max(4, int(math.ceil(th / 0.4)))  # vessels holding clots / streaks: ~0.4 mm sub-slices
    zb_off = th * ((np.arange(nb) + 0.5) / nb - 0.5)
    zv_off = th * ((np.arange(ns) + 0.5) / ns - 0.5)
    zs_off = th * ((np.arange(3) + 0.5) / 3 - 0.5)  # plain tubes and nodes vary slowly along z
    c = (np.arange(size) + 0.5 - size / 2) * ps
    X, Y = np.meshgrid(c.astype(np.float32), c.astype(np.float32))
    amap = 1.0
    if region == "pelvis":
        p = lay.parts[0]
        amap = (0.85 + 0.3 * np.exp(-(X / (0.7 * p.rx)) ** 2 - ((Y - p.cy) / (0.7 * p.ry)) ** 2)).astype(np.float32)
    hu = np.empty((n_slices, size, size), np.float32)
    veins, boxes, sboxes = [], {id(c): {} for c, _ in clots}, {}
    for i, zc in enumerate(pos):
        img = np.zeros((size, size), np.float32)
        bones = []
        for zb in zc + zb_off:
            cv = Canvas(size, ps)
            bones = lay.draw(cv, float(zb))
            img += cv.img
        img *= np.float32(1.0 / nb)
        soft = (img > -250) & (img < 200)
        img += soft * (tex.at(zc) * np.float32(lay.tex_amp))
        bone = img > 150
        bone[max(0, int(lay.table_y / ps + size / 2)):] = False  # not the table
        img += bone * (btex.at(zc) * np.float32(lay.bone_tex))  # trabecular grain
        body = img > -400
        per = {}
        for v in lay.vessels:
            p = render_vessel(v, zc + (zv_off if v.clots or v.streaks else zs_off), size, ps, float(v.side))
            if p is None:
                continue
            composite(img, p)
            if v.main:
                cx, cy, r = p.centre
                per[v.side] = (cx / ps + size / 2, cy / ps + size / 2, r / ps)
                for cl in v.clots:  # truth on the clot coverage after the same in-plane PSF as the image
                    b = mask_box(blur(p.clots[cl.ident], lay.psf_mm / ps), p.bb, 0.5, 2, CORE)
                    if b is not None:
                        boxes[id(cl)][i] = b
                if v.streaks and p.streak >= 0.3:
                    b = mask_box(p.lumen, p.bb)
                    if b is not None:
                        sboxes.setdefault(id(v), {})[i] = b
        veins.append(per)
        if lay.bh > 0 and bones:
            img += beam_hardening(size, ps, bones, lay.bh_vals, lay.bh) * body
        sig = lay.psf_mm / ps
        out = blur(img, sig)
        if lay.sharp:
            out = out + lay.sharp * (out - blur(out, 2 * sig))
        sx = max(lay.noise_mm * lay.noise_aniso / ps, 0.35)
        sy = max(lay.noise_mm / ps, 0.35)
        noise = correlated_noise(nrng, (size, size), sx, sy) * np.float32(lay.noise)
        if region == "pelvis":
            noise += correlated_noise(nrng, (size, size), 3 * sx + 1, 0.5 * sy) * np.float32(0.35 * lay.noise)
        hu[i] = np.clip(out + noise * amap, -1024, 3071)
    top = float(pos[-1])
    found = []
    for cl, v in clots:
        if not boxes[id(cl)]:
            continue
        zc = 0.5 * (cl.z0 + cl.z1)
        d = 2 * math.sqrt(v.a(zc) * v.b(zc))
        part = cl.kind == "partial"
        params = {"hu": round(cl.hu, 1), "region": lay.site, "vein_diameter_mm": round(d, 2),
                  "vessel": SITES.get(v.name.split("_")[0], v.name), "style": cl.style if part else "occlusive",
                  "length_mm": round(cl.z1 - cl.z0, 1), "lumen_fraction": round(cl.frac, 2) if part else 1.0,
                  "distension": 1.0 if part else round(cl.distend, 2)}
        found.append((Lesion(cl.kind, v.side, (top - cl.z1, top - cl.z0), params, boxes[id(cl)]), v.name + str(v.side)))
    thrombi = merge_lesions(found)
    mimics = []
    for v in lay.mains.values():
        for s in v.streaks:
            b = sboxes.get(id(v), {})
            if b:
                zc = float(np.clip(0.5 * (s.z0 + s.z1), z_lo, z_hi))
                mimics.append(Lesion("mixing_streak", v.side, (top - s.z1, top - s.z0),
                                     {"hu": round(s.low_hu, 1), "region": lay.site,
                                      "vein_diameter_mm": round(2 * math.sqrt(v.a(zc) * v.b(zc)), 2)}, b))
    return Study(seed, hu, pos.astype(np.float64), (ps, ps), th, thrombi, mimics, veins, [])


def main(argv=None) -> int:
    from training.ct.phantom_io import write_study

    ap = argparse.ArgumentParser(description="Second (independent) CT venography phantom renderer, for evaluation "
                                             "only (not for diagnostic use).")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--studies", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--region", choices=REGIONS, default=None, help="default: drawn per study")
    ap.add_argument("--slices", type=int, default=None, help="slices per study (default: 60-200 mm, <= 120)")
    args = ap.parse_args(argv)
    for k in range(args.studies):
        t0 = time.perf_counter()
        st = make_study(args.seed + k, size=args.size, n_slices=args.slices, region=args.region)
        d = write_study(st, args.out / f"study-{k:04d}")
        print(f"[{k + 1}/{args.studies}] seed {args.seed + k}: {len(st.hu)} slices x {st.thickness_mm:g} mm, "
              f"{len(st.thrombi)} thrombi, {len(st.mimics)} mimics, {time.perf_counter() - t0:.1f} s -> {d}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
