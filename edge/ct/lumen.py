"""Vessel-lumen candidates: a DARK filling defect inside a BRIGHT contrast-filled lumen (numpy + OpenCV only).

The learned detector (``ctdet-k3``) keys partly on the appearance of the scenes it was trained on. This stage
encodes the radiological sign itself, in HU, so it does not depend on how a scene was drawn:

1. **Lumen** (per slice, HU smoothed by a Gaussian of ``smooth_mm``): pixels with ``bright_lo_hu <= HU <=
   bright_hi_hu`` (opacified blood, 150-500 HU), fragments closer than ~2 x ``group_mm`` grouped into one lumen (a
   crescent of contrast broken by noise). A group is a vessel cross-section when its convex hull (the lumen as if
   it were filled) has an equivalent diameter of ``min_diam_mm``..``max_diam_mm`` and elongation <= ``max_aspect``,
   and it is not bone: within ``bone_margin_mm`` of it, pixels >= ``bone_hu`` make up <= ``max_bone_frac`` of it
   (cortex around marrow; calcified dots on a wall are allowed). ``L`` = the group's median HU: the
   series' own contrast level; every "dark" test below is relative to it: ``defect_lo_hu <= HU <=
   min(defect_hi_hu, L - min_drop_hu)`` (clot 15-70 HU plus noise and partial volume; fat and gas are not clot).
2. **Partial defect**: dark pixels inside the hull that are not bright, in regions >= ``min_defect_mm2`` that see
   bright lumen in >= ``min_enclosure`` of 8 directions on average (within one lumen diameter): a hole in the
   filled lumen, or a bite wrapped by a crescent of contrast (>= 5 of 8 directions), not tissue between two
   separate vessels (about 2 of 8).
3. **Occlusive defect** (a track over slices): the lumen a vessel had on the slice received just before (bright
   pixels plus accepted defects, on a track seen over >= ``track_min_mm``) is read on the current slice; its
   largest part that is no longer bright and reads dark is a candidate when it covers >= ``occl_min_frac`` of that
   lumen, is >= ``occl_min_radius_mm`` thick (a lumen that merely shifted leaves a thin crescent) and is a
   structure of its own: at most ``occl_max_ring_clot`` of a ``occl_ring_mm`` ring around it reads clot HU (fat,
   a rim or contrast around it - not a patch of a larger soft-tissue mass). The dark region is then carried slice
   by slice while it stays dark, up to ``occl_max_mm`` from the last bright slice. With a window of >= 5 slices
   (not the shipped k = 3) a lumen on the next two slices of the far side (a tube) is read the same way, without
   carrying: the other end of a stretch. "Received before" makes the
   track follow the stream: a series received head-to-feet starts its stretches from above, so findings can
   differ at a stretch's ends, not in substance.
4. **Score** (0..1, geometric mean of linear ramps, no learned weights): contrast drop (``min_drop_hu`` .. +100
   HU), enclosure (partial) or thickness (occlusive), share of the lumen, size, clot HU (partial: 70 HU and below
   score full); x ``lone_factor`` when nothing overlaps it on an adjacent slice (the
   sign is continuous over slices). :func:`fuse` combines it with the learned heatmap (``heat_weight``,
   ``fusion``: a mean, where either may carry a candidate, or a geometric gate, where both must) and keeps
   candidates >= ``score_threshold`` as detections on the detector's scale.

``edge.ct.detector.ModelDetector`` runs the stage when the model spec's ``extra["lumen"]`` block is enabled (or
``ct scan --lumen on``). Every threshold not fixed by physics is chosen on VALIDATION data only (first-renderer
phantoms and aorta lesion/clean pairs, ``training.ct.lumen_calibrate``); the block's values override these
defaults. Boxes are [x0, y0, x1, y1] original pixels, x1/y1 exclusive, like every detection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from edge.ct.types import CTSlice, Detection
from edge.errors import ConfigError


@dataclass(frozen=True)
class LumenParams:
    enabled: bool = True
    smooth_mm: float = 0.8
    group_mm: float = 1.0  # bright fragments closer than ~2x this are one lumen
    bright_lo_hu: float = 130.0  # opacified lumen floor (venous contrast 150-500 HU, minus noise)
    bright_hi_hu: float = 800.0  # above: cortical bone / calcium, not contrast
    bone_hu: float = 900.0
    bone_margin_mm: float = 2.0
    max_bone_frac: float = 0.25
    defect_lo_hu: float = -30.0  # clot 15-70 HU; fat (-100) and gas are not clot
    defect_hi_hu: float = 110.0
    min_drop_hu: float = 70.0  # a defect reads at least this far below its own lumen
    min_diam_mm: float = 4.0
    max_diam_mm: float = 40.0
    max_aspect: float = 3.0
    min_defect_mm2: float = 3.0
    min_enclosure: float = 0.6
    occlusion: bool = True
    occl_min_frac: float = 0.3
    occl_min_radius_mm: float = 1.5
    occl_ring_mm: float = 1.5
    occl_max_ring_clot: float = 0.5
    occl_max_mm: float = 60.0
    track_min_mm: float = 3.0
    lone_factor: float = 0.7
    heat_weight: float = 0.0  # w: how much the learned heatmap (max over the box) counts in the fused score
    fusion: float = 0.0  # 0: fused = (1 - w) * lumen + w * heat (either may carry it); 1: lumen^(1 - w) * heat^w (both must)
    score_threshold: float = 0.5

    @classmethod
    def from_spec(cls, spec) -> "LumenParams":
        """The spec's ``extra["lumen"]`` block (missing keys take the defaults); disabled if absent."""
        block = (getattr(spec, "extra", None) or {}).get("lumen")
        if not isinstance(block, dict):
            return cls(enabled=False)
        return cls.from_dict(block, f"model '{getattr(spec, 'name', '?')}' lumen block")

    @classmethod
    def from_dict(cls, block: dict, where: str = "lumen parameters") -> "LumenParams":
        out = {}
        for k, v in block.items():
            if k not in cls.__dataclass_fields__:
                continue
            try:
                out[k] = bool(v) if k in ("enabled", "occlusion") else float(v)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {k}={v!r} is not a number") from exc
        return cls(**out)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Section:
    """A lumen cross-section on one slice: hull footprint (bool, on ``bbox``), contrast level, track length."""

    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 pixels (exclusive)
    hull: np.ndarray
    level_hu: float
    track_mm: float = 0.0
    origin_mm: float | None = None  # for an occluded footprint: position of the last bright slice
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # tight box of the hull (original pixels)
    lumen: np.ndarray | None = None  # what was lumen: bright pixels + accepted defects (default: the hull)

    def __post_init__(self):
        ys, xs = np.nonzero(self.hull)
        x0, y0 = self.bbox[:2]
        self.box = (float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1))


@dataclass
class SliceLumen:
    """What the stage keeps of one slice (:func:`analyse_slice`; ``occluded`` is filled by :class:`LumenStage`)."""

    index: int
    position_mm: float
    smooth: np.ndarray
    bright: np.ndarray
    sections: list[Section]
    partial: list[tuple[tuple[float, float, float, float], float]]
    occluded: list[Section] = field(default_factory=list)
    feats: list = field(default_factory=list)  # per partial candidate: its measurements (calibration, debugging)


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else float(x >= lo)


def _gmean(*r: float) -> float:
    """Geometric mean of ramps in [0, 1]: 0 when any is 0, less compressed than their product."""
    return float(np.prod(r) ** (1.0 / len(r)))


def _overlap(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _disc(radius_px: int) -> np.ndarray:
    r = max(int(radius_px), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _aspect(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    if ys.size < 3:
        return 1.0
    ev = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(np.float64)) + 1e-6 * np.eye(2))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-6)))


_DIRS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))


def _enclosure_map(comp: np.ndarray, reach_px: int) -> np.ndarray:
    """Per pixel: the fraction of 8 directions in which ``comp`` is met within ``reach_px`` pixels.

    A defect inside a lumen sees contrast on most sides (>= 5 of 8 even for a bite touching the wall); tissue between
    two separate vessels sees it on about two."""
    h, w = comp.shape
    count = np.zeros((h, w), np.uint8)
    for dy, dx in _DIRS:
        hit = np.zeros((h, w), bool)
        for k in range(1, reach_px + 1):
            oy, ox = dy * k, dx * k
            if abs(oy) >= h or abs(ox) >= w:
                break
            # hit[y, x] |= comp[y + oy, x + ox]
            ys, yd = (slice(0, h - oy), slice(oy, h)) if oy >= 0 else (slice(-oy, h), slice(0, h + oy))
            xs, xd = (slice(0, w - ox), slice(ox, w)) if ox >= 0 else (slice(-ox, w), slice(0, w + ox))
            hit[ys, xs] |= comp[yd, xd]
        count += hit
    return count / 8.0


def analyse_slice(hu: np.ndarray, pixel_spacing_mm: tuple[float, float], p: LumenParams, index: int = 0,
                  position_mm: float = 0.0) -> SliceLumen:
    """Lumen sections and partial-defect candidates of one HU slice (module doc, steps 1-2)."""
    hu = np.asarray(hu)
    if hu.ndim != 2:
        raise ValueError(f"slice {index}: expected a 2-D HU array, got shape {hu.shape}")
    sy, sx = (float(v) for v in pixel_spacing_mm)
    if not (sy > 0 and sx > 0):
        raise ValueError(f"slice {index}: pixel spacing {pixel_spacing_mm} must be positive")
    mm = (sy + sx) / 2
    px_area = sy * sx
    sig = max(p.smooth_mm / mm, 0.3)
    smooth = cv2.GaussianBlur(hu.astype(np.float32, copy=False), (0, 0), sig)
    bright = (smooth >= p.bright_lo_hu) & (smooth <= p.bright_hi_hu)
    bone = smooth >= p.bone_hu
    bone = bone if bone.any() else None
    h, w = hu.shape
    min_area = np.pi * (p.min_diam_mm / 2) ** 2 / px_area * 0.5  # hull >= the min diameter: group at least half
    max_area = 2 * np.pi * (p.max_diam_mm / 2) ** 2 / px_area
    pad = 4
    sections, partial, feats = [], [], []

    def roi(x, y, bw, bh):
        return max(x - pad, 0), max(y - pad, 0), min(x + bw + pad, w), min(y + bh + pad, h)

    def consider(comp: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> str:
        """Add ``comp`` (bright pixels of one lumen, on the ROI) as a section with its defects: 'ok', 'size' or 'no'."""
        if comp.sum() < min_area:
            return "no"
        if bone is not None:  # cortex around marrow (its partial volume is "bright"); calcified dots are not bone
            near = cv2.dilate(comp.astype(np.uint8), _disc(round(p.bone_margin_mm / mm))).astype(bool)
            nb = int(bone[y0:y1, x0:x1][near].sum())
            if nb > p.max_bone_frac * (nb + comp.sum()):
                return "no"
        pts = cv2.findNonZero(comp.astype(np.uint8))
        hull = np.zeros(comp.shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(pts), 1)
        hull = hull.astype(bool) | comp
        d_mm = 2 * np.sqrt(hull.sum() * px_area / np.pi)
        if not p.min_diam_mm <= d_mm <= p.max_diam_mm or _aspect(hull) > p.max_aspect:
            return "size"
        sm = smooth[y0:y1, x0:x1]
        level = float(np.median(sm[comp]))
        sec = Section((x0, y0, x1, y1), hull, level, lumen=comp.copy())
        sections.append(sec)
        dark_hi = min(p.defect_hi_hu, level - p.min_drop_hu)
        dark = hull & ~comp & (sm >= p.defect_lo_hu) & (sm <= dark_hi)
        if dark.sum() * px_area < p.min_defect_mm2:
            return "ok"
        m, dl, dst, _ = cv2.connectedComponentsWithStats(dark.astype(np.uint8), connectivity=4)
        enc = None
        for j in range(1, m):
            if dst[j, 4] * px_area < p.min_defect_mm2:
                continue
            if enc is None:
                enc = _enclosure_map(comp, max(int(round(d_mm / mm)), 2))
            dj = dl == j
            enclosure = float(enc[dj].mean())
            if enclosure < p.min_enclosure:
                continue
            sec.lumen |= dj
            drop = level - float(np.median(sm[dj]))
            frac = dst[j, 4] / hull.sum()
            med = float(np.median(sm[dj]))
            score = _gmean(_ramp(drop, p.min_drop_hu, p.min_drop_hu + 100), _ramp(enclosure, p.min_enclosure, 0.95),
                           _ramp(dst[j, 4] * px_area, p.min_defect_mm2, p.min_defect_mm2 + 20), _ramp(frac, 0.02, 0.15),
                           1.0 - _ramp(med, 70.0, p.defect_hi_hu))
            bx, by, bw2, bh2 = (int(v) for v in dst[j, :4])
            partial.append(((float(x0 + bx), float(y0 + by), float(x0 + bx + bw2), float(y0 + by + bh2)), float(score)))
            feats.append({"level": level, "drop": drop, "frac": float(frac), "enclosure": enclosure, "d_mm": d_mm,
                          "thick_mm": float(cv2.distanceTransform(comp.astype(np.uint8), cv2.DIST_L2, 3).max()) * mm,
                          "p95": float(np.percentile(sm[comp], 95)), "std_defect": float(np.std(hu[y0:y1, x0:x1][dj])),
                          "std_lumen": float(np.std(hu[y0:y1, x0:x1][comp])),
                          "defect_med": float(np.median(sm[dj])), "area_mm2": float(dst[j, 4] * px_area)})
        return "ok"

    # fragments of one lumen (a crescent of contrast broken by noise) are grouped by a small dilation; a group that
    # is no vessel cross-section (two touching vessels, a vessel and an organ) falls back to its fragments
    b8 = bright.astype(np.uint8)
    raw = None  # the fragments' labels, computed when a group first falls back to them
    grown = cv2.dilate(b8, _disc(round(p.group_mm / mm))) if p.group_mm > 0 else b8
    n, lab, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    for c in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[c])
        if area < min_area:
            continue
        x0, y0, x1, y1 = roi(x, y, bw, bh)
        comp = (lab[y0:y1, x0:x1] == c) & bright[y0:y1, x0:x1]
        if area <= max_area and consider(comp, x0, y0, x1, y1) != "size":
            continue
        if raw is None:
            raw = cv2.connectedComponentsWithStats(b8, connectivity=8)
        _, rlab, rstats, _ = raw
        for r in np.unique(rlab[y0:y1, x0:x1][comp]):
            rx, ry, rbw, rbh, rarea = (int(v) for v in rstats[r])
            if min_area <= rarea <= max_area:
                rx0, ry0, rx1, ry1 = roi(rx, ry, rbw, rbh)
                consider(rlab[ry0:ry1, rx0:rx1] == r, rx0, ry0, rx1, ry1)
    out = SliceLumen(index, float(position_mm), smooth, bright, sections, partial)
    out.feats = feats
    return out


def _lost_region(cur: SliceLumen, sec: Section, p: LumenParams, mm: float):
    """(score, Section of the dark region) when part of ``sec``'s lumen footprint has turned clot-dark on ``cur``.

    The region is the largest 4-connected part of the footprint that is no longer bright and reads clot HU
    relative to that lumen's level; it must cover >= ``occl_min_frac`` of the footprint and be >= ``occl_min_radius_mm``
    thick (a lumen that merely shifted between slices leaves a thin crescent, not a round region)."""
    x0, y0, x1, y1 = sec.bbox
    sm, br = cur.smooth[y0:y1, x0:x1], cur.bright[y0:y1, x0:x1]
    was = sec.lumen if sec.lumen is not None else sec.hull
    if sm.shape != was.shape:
        return None
    dark_hi = min(p.defect_hi_hu, sec.level_hu - p.min_drop_hu)
    lost = was & ~br & (sm >= p.defect_lo_hu) & (sm <= dark_hi)
    n, lab, st, _ = cv2.connectedComponentsWithStats(lost.astype(np.uint8), connectivity=4)
    if n < 2:
        return None
    j = 1 + int(np.argmax(st[1:, 4]))
    reg = lab == j
    frac = float(reg.sum() / max(was.sum(), 1))
    thick = float(cv2.distanceTransform(reg.astype(np.uint8), cv2.DIST_L2, 3).max()) * mm
    if frac < p.occl_min_frac or thick < p.occl_min_radius_mm:
        return None
    # a round structure of its own (fat, a rim or contrast around it), not a patch of a larger soft-tissue mass
    ring = cv2.dilate(reg.astype(np.uint8), _disc(round(p.occl_ring_mm / mm))).astype(bool) & ~reg
    if ring.any():
        clot_like = (sm[ring] >= p.defect_lo_hu) & (sm[ring] <= dark_hi)
        if clot_like.mean() > p.occl_max_ring_clot:
            return None
    drop = sec.level_hu - float(np.median(sm[reg]))
    score = _gmean(_ramp(drop, p.min_drop_hu, p.min_drop_hu + 100), _ramp(frac, p.occl_min_frac, p.occl_min_frac + 0.4),
                   _ramp(thick, p.occl_min_radius_mm, p.occl_min_radius_mm + 2))
    return score, Section(sec.bbox, reg, sec.level_hu, sec.track_mm, lumen=reg)


def _nms(cands: list[tuple[tuple, float]], iou: float = 0.3) -> list[tuple[tuple, float]]:
    keep = []
    for b, s in sorted(cands, key=lambda c: -c[1]):
        if all(_overlap(b, k[0]) <= iou for k in keep):
            keep.append((b, s))
    return keep


class LumenStage:
    """The vessel-lumen candidate stage over a slice stream (module doc). One instance per detector; ``reset()``
    between series. :meth:`detect` takes the same (window, centre) as a ``SliceDetector`` and returns
    (box, lumen score) pairs for the centre slice; each slice is analysed once and kept while a window or the
    occlusion track can still use it."""

    def __init__(self, params: LumenParams | None = None):
        self.p = params or LumenParams()
        self._cache: dict[int, SliceLumen] = {}
        self._last: int | None = None
        self.timing: list[float] = []

    def reset(self) -> None:
        self._cache.clear()
        self._last = None
        self.timing = []

    def _get(self, s: CTSlice) -> SliceLumen:
        r = self._cache.get(s.index)
        if r is None:
            r = analyse_slice(s.hu, s.pixel_spacing_mm, self.p, s.index, s.position_mm)
            self._cache[s.index] = r
        return r

    def _link_tracks(self, cur: SliceLumen, prev: SliceLumen | None) -> None:
        """Track length of each bright section on ``cur`` (continued from an overlapping one on ``prev``)."""
        for sec in cur.sections:
            sec.track_mm = 0.0
            if prev is None:
                continue
            dz = abs(cur.position_mm - prev.position_mm)
            for q in prev.sections + prev.occluded:
                if _overlap(sec.box, q.box) >= 0.2 and q.origin_mm is None:
                    sec.track_mm = max(sec.track_mm, q.track_mm + dz)

    def detect(self, window: list[CTSlice], centre: CTSlice) -> list[tuple[tuple[float, float, float, float], float]]:
        """(box, lumen score) candidates on ``centre``; ``window`` in ascending position, ``window[len//2] is centre``."""
        import time

        t0 = time.perf_counter()
        p = self.p
        h = len(window) // 2
        if window[h] is not centre:
            raise ValueError(f"slice {centre.index}: the window's middle slice is not the centre slice")
        cur = self._get(centre)
        mm = (float(centre.pixel_spacing_mm[0]) + float(centre.pixel_spacing_mm[1])) / 2
        idx = [s.index for s in window]
        prev = self._cache.get(self._last) if self._last is not None else None
        side = 0
        if prev is not None and h > 0 and prev.index in (idx[h - 1], idx[h + 1]) and prev.index != centre.index:
            side = -1 if prev.index == idx[h - 1] else 1  # where the track comes from
        else:
            prev = None  # not adjacent (a new series, or the first slice): no track continues
        self._link_tracks(cur, prev)
        neigh = [self._get(window[h + d]) for d in (-1, 1) if 0 <= h + d < len(window) and idx[h + d] != centre.index]
        cands = list(cur.partial)
        if p.occlusion:
            sources = []
            if prev is not None:  # bright lumens of the slice before, and stretches that are still dark
                sources += [(q, prev.position_mm, True) for q in prev.sections if q.track_mm >= p.track_min_mm]
                sources += [(q, q.origin_mm, True) for q in prev.occluded]
            for d in ((-side,) if side else (-1, 1)):  # the far end of a stretch, in the window: a tube there
                far = [window[h + d * j] for j in range(1, h + 1) if window[h + d * j].index != centre.index]
                far = list({s.index: s for s in far}.values())
                if len(far) >= 2:
                    a1, a2 = self._get(far[0]), self._get(far[1])
                    sources += [(q, a1.position_mm, False) for q in a1.sections
                                if any(_overlap(q.box, r.box) >= 0.2 for r in a2.sections)]
            for q, origin, carry in sources:
                if origin is not None and abs(cur.position_mm - origin) > p.occl_max_mm:
                    continue
                r = _lost_region(cur, q, p, mm)
                if r is None:
                    continue
                carried = r[1]
                carried.origin_mm = origin
                cands.append((carried.box, r[0]))
                if carry:
                    cur.occluded.append(carried)
        # continuity: a candidate with nothing overlapping on an adjacent slice is weaker
        out = []
        for b, s in cands:
            near = any(_overlap(b, nb_b) > 0.1 for nb in neigh for nb_b, _ in nb.partial) or \
                any(_overlap(b, q.box) > 0.1 for nb in neigh for q in nb.occluded)
            out.append((b, s if near else s * p.lone_factor))
        self._last = centre.index
        for i in [i for i in self._cache if abs(i - centre.index) > len(window) + 1]:
            del self._cache[i]
        self.timing.append((time.perf_counter() - t0) * 1e3)
        return _nms(out)


def heat_max(heat: np.ndarray, box, to_model) -> float:
    """Max of a probability map ``heat`` (model grid at stride ``to_model[2]``) over an original-pixel ``box``.

    to_model: ((scale_x, scale_y), (offset_x, offset_y), stride) from ``edge.ct.decode.grid_transform``.
    """
    (sx, sy), (ox, oy), stride = to_model
    hh, hw = heat.shape
    c0 = int(np.clip(np.floor((box[0] * sx - ox) / stride), 0, hw - 1))
    c1 = int(np.clip(np.ceil((box[2] * sx - ox) / stride), c0 + 1, hw))
    r0 = int(np.clip(np.floor((box[1] * sy - oy) / stride), 0, hh - 1))
    r1 = int(np.clip(np.ceil((box[3] * sy - oy) / stride), r0 + 1, hh))
    return float(heat[r0:r1, c0:c1].max())


def fuse(model_dets: list[Detection], lumen: list[tuple[tuple, float]], heat: list[float], p: LumenParams,
         threshold: float, slice_index: int) -> list[Detection]:
    """Union of the learned detections and the lumen candidates (fused score >= ``p.score_threshold``).

    fused = (1 - w) * lumen score + w * heatmap max over the box (``fusion`` 0), or lumen^(1 - w) * heat^w
    (``fusion`` 1: a gate, both must agree), with w = ``heat_weight``. A kept candidate is
    reported on the detector's scale, at or above its operating ``threshold``: ``threshold + (1 - threshold) *
    (fused - t) / (1 - t)`` with ``t = p.score_threshold``, so linking, the plausibility rule and the report take it
    like any detection. Where a learned detection overlaps a lumen candidate (IoU > 0.3) the higher score is kept.
    """
    t = p.score_threshold
    extra = []
    for (b, s), hm in zip(lumen, heat):
        w = p.heat_weight
        f = (1 - w) * s + w * hm if p.fusion < 0.5 else float(max(s, 0.0) ** (1 - w) * max(hm, 0.0) ** w)
        if f >= t:
            extra.append(Detection(slice_index, tuple(float(v) for v in b),
                                   float(threshold + (1 - threshold) * (f - t) / max(1 - t, 1e-6))))
    out = list(model_dets)
    for d in extra:
        clash = [i for i, m in enumerate(out) if _overlap(m.box, d.box) > 0.3]
        if not clash:
            out.append(d)
        elif all(out[i].score < d.score for i in clash):
            out = [m for i, m in enumerate(out) if i not in clash] + [d]
    return sorted(out, key=lambda d: -d.score)
