"""Anatomical plausibility of a thrombus candidate: a DVT is a filling defect INSIDE a contrast-filled vein.

Pure numpy functions on one HU slice and one detection box (original pixel grid, [x0, y0, x1, y1], x1/y1
exclusive). The detector only sees a soft-tissue window (W400/L140, i.e. everything >= 340 HU is white), so it
cannot tell a bone ring (rib, spinous process, cortex ~ 500-2000 HU) around darker marrow from an enhancing
vein around a clot, nor a gas/fat hole from a clot. These rules look at the HU the window threw away.

Features of a candidate (:func:`features`):
- ``core_hu``: median HU of the box's central region (the box shrunk by a quarter on each side, >= 1 pixel):
  the would-be clot.
- ``ring``: the pixels within ``ring_mm`` outside the box (the would-be vein lumen / wall and its neighbours).
  ``bone_frac`` = fraction of ring pixels >= ``bone_hu``; ``ring_p98`` = 98th percentile HU of the ring (the lumen or
  the enhancing rim, even when thin).

Rules (:func:`judge_candidate`), each with its basis:
1. bone ring: ``bone_frac > max_bone_frac`` rejects. Cortical bone is 500-2000 HU; venous contrast in a CT
   venogram is 150-300 HU (arteries < 450 HU in the venous phase), so ``bone_hu`` = 500 HU separates them by
   physics. A deep vein runs beside bone but is never encircled by it; a rib or a vertebral process is.
2. defect density: ``core_hu`` outside [``defect_lo_hu``, ``defect_hi_hu``] rejects. A thrombus is blood clot,
   20-90 HU (acute clot is denser than blood, ~50-80 HU; subacute/chronic lower); partial-volume and noise
   widen it. Fat (-100 HU), gas (-1000 HU) and positive oral/IV contrast or bone (> 200 HU) are not clot.
3. filling defect: ``ring_p98 - core_hu < min_contrast_hu`` rejects. A filling defect is by definition darker
   than the opacified lumen (or the enhancing wall, "rim sign") around it; a low-contrast blob inside
   homogeneous soft tissue (liver, muscle, bowel wall) is not one.

The numeric thresholds that are not fixed by physics (``max_bone_frac``, the HU limits' margins and
``min_contrast_hu``) are chosen on PHANTOM VALIDATION studies (``training.ct.plausibility_fit``) so that the
ground-truth thrombus boxes keep passing (lesion-level sensitivity preserved); the chosen values and the
command live in the model spec (``extra["plausibility"]``) and its card. Defaults below are those values'
fallback for a spec without the block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PlausibilityParams:
    ring_mm: float = 3.0  # about one vein-wall + lumen margin around a defect box (femoral vein radius 5-8 mm)
    bone_hu: float = 500.0  # cortical bone; above venous (150-300 HU) and venous-phase arterial contrast
    max_bone_frac: float = 0.25
    defect_lo_hu: float = -10.0
    defect_hi_hu: float = 130.0
    min_contrast_hu: float = 20.0
    enabled: bool = True

    @classmethod
    def from_spec(cls, spec) -> "PlausibilityParams":
        """The spec's ``extra["plausibility"]`` block (missing keys take the defaults); disabled if absent."""
        block = (getattr(spec, "extra", None) or {}).get("plausibility")
        if not isinstance(block, dict):
            return cls(enabled=False)
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: (bool(v) if k == "enabled" else float(v)) for k, v in block.items() if k in keys})

    def to_json(self) -> dict:
        return asdict(self)


def features(hu: np.ndarray, box, pixel_spacing_mm: tuple[float, float], ring_mm: float = 3.0,
             bone_hu: float = 500.0) -> dict:
    """{core_hu, ring_p98, bone_frac, ring_n} of one box on one HU slice (see the module doc)."""
    h, w = hu.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    c0, c1 = int(np.floor(max(x0, 0))), int(np.ceil(min(x1, w)))
    r0, r1 = int(np.floor(max(y0, 0))), int(np.ceil(min(y1, h)))
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    bw, bh = c1 - c0, r1 - r0
    qc0, qc1 = c0 + bw // 4, c1 - bw // 4
    qr0, qr1 = r0 + bh // 4, r1 - bh // 4
    core = hu[qr0:max(qr1, qr0 + 1), qc0:max(qc1, qc0 + 1)]
    sy, sx = (float(v) for v in pixel_spacing_mm)
    mx, my = max(1, int(round(ring_mm / sx))), max(1, int(round(ring_mm / sy)))
    R0, R1, C0, C1 = max(r0 - my, 0), min(r1 + my, h), max(c0 - mx, 0), min(c1 + mx, w)
    outer = hu[R0:R1, C0:C1]
    inside = np.zeros(outer.shape, bool)
    inside[r0 - R0:r1 - R0, c0 - C0:c1 - C0] = True
    ring = outer[~inside]
    if ring.size == 0 or core.size == 0:
        return {"core_hu": float("nan"), "ring_p98": float("nan"), "bone_frac": 0.0, "ring_n": int(ring.size)}
    return {"core_hu": float(np.median(core)), "ring_p98": float(np.percentile(ring, 98)),
            "bone_frac": float(np.mean(ring >= bone_hu)), "ring_n": int(ring.size)}


def judge_candidate(feat: dict, p: PlausibilityParams) -> str | None:
    """None when the candidate is plausible, else the reason: ``"<code>: <detail>"`` with code ``bone_ring``,
    ``density`` or ``no_defect`` (the first rule that fails, in module order)."""
    if not p.enabled:
        return None
    core, ring_hi, bone = feat["core_hu"], feat["ring_p98"], feat["bone_frac"]
    if not np.isfinite(core):
        return None  # nothing to measure (box off the image): keep it, never drop silently on bad geometry
    if bone > p.max_bone_frac:
        return f"bone_ring: {bone:.0%} of the surround >= {p.bone_hu:.0f} HU"
    if not p.defect_lo_hu <= core <= p.defect_hi_hu:
        return f"density: core {core:.0f} HU outside {p.defect_lo_hu:.0f}..{p.defect_hi_hu:.0f} HU (not clot)"
    if ring_hi - core < p.min_contrast_hu:
        return f"no_defect: surround p98 {ring_hi:.0f} HU vs core {core:.0f} HU"
    return None


def check(hu: np.ndarray, box, pixel_spacing_mm: tuple[float, float], p: PlausibilityParams) -> str | None:
    """:func:`judge_candidate` of :func:`features` (None = plausible)."""
    if not p.enabled:
        return None
    return judge_candidate(features(hu, box, pixel_spacing_mm, p.ring_mm, p.bone_hu), p)
