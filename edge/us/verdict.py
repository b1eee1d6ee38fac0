"""The three-state verdict: compressible / non_compressible / indeterminate. Never confident from bad data.

Rules, in order (thresholds in :class:`VerdictConfig`; reasons in docs/design.md):
1. indeterminate - too short: fewer than ``min_duration_s`` of frames.
2. indeterminate - vein not found: no vein area, or a baseline below ``min_vein_area_px``.
3. indeterminate - vein lost: no vein in more than ``max_lost_fraction`` of the frames since it was found.
3b. indeterminate - identity in doubt: the labels and the physiology disagree about which vessel is the
   artery (``edge.us.identity``), or the vessel taken as the artery collapsed under pressure (by more
   than ``max_artery_collapse``: an artery keeps its lumen), so nothing measured on "the vein" is trusted.
4. compressible - compressibility >= ``compressible_min``: the vein (nearly) closed; full closure under
   pressure also proves the pressure was enough, so no pressure check is needed. SAFETY RULE: only when
   the vein was identified with confidence (identity not in doubt, an artery identified beside it, the
   model's vessel confidence inside the vein >= ``min_vein_confidence``, and the open vein not much
   smaller than the artery: >= ``min_vein_to_artery`` x the artery's resting area, since at the femoral
   and popliteal levels the vein is as large as its artery or larger, and a small region that vanishes
   under pressure is more likely a fragment than the vein), and the vein's outline steady before it closed
   (median frame-to-frame area change <= ``max_vein_jitter`` of its baseline: a vein narrows smoothly, a
   segmentation that flickers by a fifth of the area can "close" a clot-filled vein); otherwise indeterminate. A
   clot-filled vein called compressible is the worst error this software can make.
5. non_compressible - compressibility < ``compressible_min`` while the artery flattened by
   >= ``adequate_flattening`` (adequate pressure) - and, while the stream is live, that pressure has been
   held for ``hold_s`` without the vein closing, so a normal vein still collapsing is not flagged.
6. indeterminate - too little pressure: the artery never flattened enough to judge a vein that stayed open.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edge.us.measure import Measurements
from edge.us.types import Verdict, VerdictKind


@dataclass(frozen=True)
class VerdictConfig:
    compressible_min: float = 0.80  # Chen et al. measured 0.86 on a normal vein; a thrombosed one stays well below
    adequate_flattening: float = 0.08  # 8% drop of the artery's height/width aspect
    hold_s: float = 0.5  # live only: adequate pressure held this long with the vein open
    min_duration_s: float = 1.0
    min_vein_area_px: float = 150.0  # screen px; smaller "veins" are noise or a wrong vessel
    max_lost_fraction: float = 0.25
    max_artery_collapse: float = 0.6  # the artery's area may shrink this much under pressure, no more
    min_vein_confidence: float = 0.6  # mean p(vessel) inside the vein before it closed
    min_vein_to_artery: float = 0.5  # open vein area / artery resting area, below it the "vein" is suspect
    max_vein_jitter: float = 0.025  # median frame-to-frame vein-area change / baseline above which a closure is not
    # trusted. Chosen on validation clips only (880000+, wide 890000+): correct closures 0.002-0.028 (1 of 29 above
    # 0.025), DVT veins wrongly seen to close 0.029-0.19 (all 3 above it)

    def to_json(self) -> dict:
        return asdict(self)


def too_short_reason(duration_s: float, need_s: float) -> str:
    """The "too short" reason. The duration is rounded down (0.97 s shows as 0.97, never as the 1.0 it
    lacks), so the message never reads as if the clip had what it needs."""
    shown = math.floor(max(duration_s, 0.0) * 100) / 100
    return f"too short: {shown:.2f} s of frames, less than the {need_s:g} s needed"


def decide(m: Measurements, cfg: VerdictConfig, *, final: bool, identity=None) -> Verdict:
    """Apply the rules above to measurements ``m``. ``final`` is True once the clip/stream has ended.
    identity: the :class:`edge.us.identity.Identity` decided for the stream, or None while undecided (or
    when the caller has no identity judge: the identity checks are then skipped)."""

    def out(verdict: VerdictKind, reason: str, adequate: bool | None = None) -> Verdict:
        return Verdict(verdict, reason, m.compressibility, m.baseline_area, m.min_area,
                       m.artery_flattening, adequate, final)

    adequate = None if m.artery_flattening is None else m.artery_flattening >= cfg.adequate_flattening
    if m.duration_s < cfg.min_duration_s:
        return out(VerdictKind.INDETERMINATE, too_short_reason(m.duration_s, cfg.min_duration_s))
    if m.baseline_area is None or m.baseline_area < cfg.min_vein_area_px:
        return out(VerdictKind.INDETERMINATE, "vein not found: no vein of plausible size was segmented")
    if m.lost_fraction > cfg.max_lost_fraction:
        return out(VerdictKind.INDETERMINATE, f"vein lost in {m.lost_fraction:.0%} of frames: hold the probe steady",
                   adequate)
    if identity is not None and identity.doubt:
        return out(VerdictKind.INDETERMINATE, identity.reason, adequate)
    if m.artery_collapse is not None and m.artery_collapse > cfg.max_artery_collapse:
        return out(VerdictKind.INDETERMINATE, f"identity in doubt: the vessel taken as the artery collapsed "
                                              f"({m.artery_collapse:.0%}) under pressure; re-scan", adequate)
    if m.compressibility is not None and m.compressibility >= cfg.compressible_min:
        if identity is not None and identity.artery is None:
            return out(VerdictKind.INDETERMINATE, "vein closed, but no artery was identified beside it: not "
                                                  "confident it was the vein", adequate)
        if m.vein_confidence is not None and m.vein_confidence < cfg.min_vein_confidence:
            return out(VerdictKind.INDETERMINATE, f"vein closed, but the model was unsure of it "
                                                  f"({m.vein_confidence:.0%} vessel confidence): re-scan", adequate)
        if m.vein_jitter is not None and m.vein_jitter > cfg.max_vein_jitter:
            return out(VerdictKind.INDETERMINATE, f"vein closed, but its outline jumped by {m.vein_jitter:.0%} of its "
                                                  "area between frames before it closed (a vein narrows smoothly): "
                                                  "re-scan", adequate)
        if (m.artery_rest_area is not None and m.baseline_area is not None
                and m.baseline_area < cfg.min_vein_to_artery * m.artery_rest_area):
            return out(VerdictKind.INDETERMINATE, f"vein closed, but the vessel taken as the vein was "
                                                  f"{m.baseline_area / m.artery_rest_area:.0%} of the artery's area "
                                                  "(a femoral/popliteal vein is as large or larger): re-scan", adequate)
        return out(VerdictKind.COMPRESSIBLE, f"vein closed to {1 - m.compressibility:.0%} of its area under pressure",
                   True)
    if adequate:
        held = m.adequate_since_s or 0.0
        if final or held >= cfg.hold_s:
            return out(VerdictKind.NON_COMPRESSIBLE,
                       f"vein stayed open ({m.compressibility:.0%} compressed) while the artery flattened "
                       f"{m.artery_flattening:.0%}: suspect DVT", True)
        return out(VerdictKind.INDETERMINATE, "pressing: keep the pressure", True)
    return out(VerdictKind.INDETERMINATE, "too little pressure: the artery did not deform, press firmer",
               adequate)
