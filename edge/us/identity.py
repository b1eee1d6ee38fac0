"""Which tracked vessel is the artery and which the vein: decided from behaviour over time, not one frame.

Why: a segmentation model labels each frame from texture, and texture differs between scanners; a real
carotid looked like our phantom veins to the first model. Clinicians tell the two apart by behaviour:
the artery pulsates (its cross-section swells with every heartbeat) and is round with a thick wall; the
vein does not pulsate, is larger or oval, and narrows under pressure.

How: during the first ``evidence_s`` of the stream (before pressure, at least one heartbeat at 60 bpm),
vessel components of EITHER label are followed by position (:class:`IdentityJudge`), regardless of the
label the model gave them, and per track we record the area, the shape and the label votes. Then
:func:`decide_identity` (a pure function) compares two witnesses:

* labels: the area-weighted share of artery pixels per track;
* physiology: pulsatility (:func:`pulsatility`, relative fluctuation of the area around its trend) and
  roundness (minor/major axis in screen units). A fluctuation counts as a pulse only when it is smooth over
  frames (:func:`smoothness` >= ``pulse_smoothness``): a flickering outline is segmentation noise.

Outcomes (``Identity.basis``): ``labels`` (physiology silent), ``labels+physiology`` (they agree),
``physiology`` (labels missing for one vessel, or strongly contradicted: a round vessel that clearly
pulsates is the artery whatever a frame's labels said), ``doubt`` (they contradict and physiology is not
strong enough to overrule: the verdict becomes ``indeterminate`` with that reason).

After the decision every frame's vessel components are relabelled by the track they belong to
(:meth:`IdentityJudge.relabel`), so the vein tracker downstream sees consistent identities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.us.postprocess import ARTERY, VEIN, blobs


@dataclass(frozen=True)
class IdentityConfig:
    evidence_s: float = 1.0  # decide after this much of the stream (one heartbeat at 60 bpm)
    min_evidence_s: float = 0.5  # ... or earlier, once pressure starts, but never before this
    press_drop: float = 0.75  # a track's area below this x its running max: pressure has started
    gate: float = 0.12  # max centroid distance (fraction of grid width) to continue a track
    min_area: float = 12.0  # model-grid px
    min_presence: float = 0.5  # share of window frames a track must be seen in to be a candidate
    pulse_min: float = 0.06  # relative area fluctuation that counts as a pulse
    pulse_margin: float = 0.04  # ... and by this much more than the other vessel's
    # to CONTRADICT the labels the pulse must be clearer: the window may catch the start of the press,
    # and a vein narrowing under the probe leaves a residual a small, faint artery's pulse does not
    contradict_min: float = 0.12
    contradict_margin: float = 0.08
    round_margin: float = 0.1  # a pulsating artery is at least this much rounder than the vein ...
    round_floor: float = 0.75  # ... or round in itself (minor/major >= this), for "strong" physiology
    # a heartbeat swells the area smoothly over several frames: a sinusoid at 120 bpm sampled at 10 fps has a
    # lag-1 autocorrelation of cos(72 deg) = 0.31, slower beats or faster frames more. A fluctuation below
    # this is a flickering outline (segmentation noise), not a pulse, and counts as no pulsation at all
    pulse_smoothness: float = 0.3

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class VesselTrack:
    """One vessel followed by position over the evidence window (label-agnostic)."""

    id: int
    centroid: tuple[float, float]  # model-grid (x, y), latest
    t: list[float] = field(default_factory=list)
    area: list[float] = field(default_factory=list)  # model-grid px (all blobs of this vessel on that frame)
    artery_px: list[float] = field(default_factory=list)
    roundness: list[float] = field(default_factory=list)  # minor/major axis in screen units

    def vote(self) -> float:
        """Area-weighted share of pixels the model labelled artery (0 = always vein, 1 = always artery)."""
        total = sum(self.area)
        return sum(self.artery_px) / total if total > 0 else 0.5


@dataclass(frozen=True)
class TrackEvidence:
    id: int
    presence: float
    mean_area: float
    vote: float
    pulsatility: float
    roundness: float
    smoothness: float = float("nan")  # lag-1 autocorrelation of the area around its trend (see pulse_smoothness)

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Identity:
    artery: int | None  # track id
    vein: int | None
    basis: str  # "labels" | "labels+physiology" | "physiology" | "doubt" | "none"
    reason: str
    evidence: tuple[TrackEvidence, ...] = ()

    @property
    def doubt(self) -> bool:
        return self.basis == "doubt"

    def to_json(self) -> dict:
        return {"artery_track": self.artery, "vein_track": self.vein, "basis": self.basis, "reason": self.reason,
                "evidence": [e.to_json() for e in self.evidence]}


def _detrended(t: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(the seen areas, the same around their slow trend: quadratic fit, linear under 8 samples); NaN entries
    (not seen) are dropped; None with fewer than 4 values."""
    t, area = np.asarray(t, float), np.asarray(area, float)
    ok = np.isfinite(area) & np.isfinite(t)
    if ok.sum() < 4:
        return None
    tt, aa = t[ok], area[ok]
    if np.ptp(tt) > 0:
        deg = 2 if len(tt) >= 8 else 1
        return aa, aa - np.polyval(np.polyfit(tt - tt.mean(), aa, deg), tt - tt.mean())
    return aa, aa - aa.mean()


def smoothness(t: np.ndarray, area: np.ndarray) -> float:
    """Lag-1 autocorrelation of the area around its trend: near 1 for a pulse sampled over several frames,
    near 0 or negative for frame-to-frame flicker; nan with fewer than 4 values or no fluctuation."""
    got = _detrended(t, area)
    return float("nan") if got is None else _smoothness_of(got[1])


def _smoothness_of(resid: np.ndarray) -> float:
    if np.std(resid[:-1]) == 0 or np.std(resid[1:]) == 0:
        return float("nan")
    return float(np.corrcoef(resid[:-1], resid[1:])[0, 1])


def pulsatility(t: np.ndarray, area: np.ndarray) -> float:
    """Relative fluctuation of a vessel's area around its slow trend: (p90 - p10) of the residual over
    the median area. The trend is a quadratic fit (linear under 8 samples), which absorbs the start of a
    press but not a heartbeat's sharp upstroke. NaN entries (not seen) are ignored; nan with fewer than 4
    values. An artery's diameter swings 4-10% with each beat (area ~8-20%); a vein's barely moves."""
    got = _detrended(t, area)
    return float("nan") if got is None else _pulsatility_of(*got)


def _pulsatility_of(seen: np.ndarray, resid: np.ndarray) -> float:
    med = float(np.median(seen))
    if med <= 0:
        return float("nan")
    return float((np.percentile(resid, 90) - np.percentile(resid, 10)) / med)


def _evidence(track: VesselTrack, frames: int) -> TrackEvidence:
    got = _detrended(np.array(track.t), np.array(track.area))  # one trend fit serves both measures
    return TrackEvidence(
        id=track.id, presence=len(track.t) / max(frames, 1), mean_area=float(np.mean(track.area)),
        vote=track.vote(), pulsatility=float("nan") if got is None else _pulsatility_of(*got),
        roundness=float(np.nanmedian(track.roundness)) if track.roundness else float("nan"),
        smoothness=float("nan") if got is None else _smoothness_of(got[1]),
    )


def _pulse(e: TrackEvidence, cfg: IdentityConfig) -> float:
    """A track's pulsatility, or 0 when its fluctuation is flicker rather than a smooth pulse."""
    if not math.isfinite(e.pulsatility):
        return 0.0
    if not (math.isfinite(e.smoothness) and e.smoothness >= cfg.pulse_smoothness):
        return 0.0
    return e.pulsatility


def _physiology(a: TrackEvidence, b: TrackEvidence, cfg: IdentityConfig,
                pulse_min: float | None = None, margin: float | None = None) -> tuple[TrackEvidence | None, bool]:
    """(the vessel physiology calls the artery or None, whether that call is strong)."""
    pulse_min = cfg.pulse_min if pulse_min is None else pulse_min
    margin = cfg.pulse_margin if margin is None else margin
    pa, pb = _pulse(a, cfg), _pulse(b, cfg)
    hi, lo = (a, b) if pa >= pb else (b, a)
    p_hi, p_lo = max(pa, pb), min(pa, pb)
    if p_hi < pulse_min or p_hi - p_lo < margin:
        return None, False
    r_hi = hi.roundness if math.isfinite(hi.roundness) else 0.0
    r_lo = lo.roundness if math.isfinite(lo.roundness) else 0.0
    strong = r_hi >= r_lo + cfg.round_margin or (r_hi >= cfg.round_floor and r_hi >= r_lo)
    return hi, strong


def decide_identity(tracks: list[VesselTrack], frames: int, cfg: IdentityConfig | None = None) -> Identity:
    """Artery and vein among ``tracks`` (seen over ``frames`` window frames); see the module docstring."""
    cfg = cfg or IdentityConfig()
    ev = [_evidence(tr, frames) for tr in tracks if tr.t]
    cands = sorted((e for e in ev if e.presence >= cfg.min_presence), key=lambda e: e.mean_area, reverse=True)[:3]
    if not cands:
        return Identity(None, None, "none", "no vessel was seen steadily", tuple(ev))
    arteries = [e for e in cands if e.vote >= 0.5]
    veins = [e for e in cands if e.vote < 0.5]
    art_l = max(arteries, key=lambda e: (e.vote, e.mean_area)) if arteries else None
    vein_l = veins[0] if veins else None
    if art_l is not None and vein_l is not None:
        pair = (art_l, vein_l)
    elif len(cands) >= 2:
        pair = (cands[0], cands[1])
    else:
        only = cands[0]
        return Identity(only.id if art_l else None, None if art_l else only.id, "labels",
                        "one vessel seen: identity from the model's labels", tuple(ev))
    phys, strong = _physiology(pair[0], pair[1], cfg)
    if art_l is not None and vein_l is not None:
        if phys is None:
            return Identity(art_l.id, vein_l.id, "labels", "no pulsation told the vessels apart: identity from labels",
                            tuple(ev))
        if phys.id == art_l.id:
            return Identity(art_l.id, vein_l.id, "labels+physiology",
                            "the vessel labelled artery is the one that pulsates", tuple(ev))
        phys, strong = _physiology(pair[0], pair[1], cfg, cfg.contradict_min, cfg.contradict_margin)
        if phys is None:
            return Identity(art_l.id, vein_l.id, "labels", "a faint pulse in the vessel labelled vein is not enough "
                            "to overrule the labels", tuple(ev))
        if strong:
            return Identity(vein_l.id, art_l.id, "physiology",
                            "the vessel labelled vein pulsates and is round: taken as the artery", tuple(ev))
        return Identity(art_l.id, vein_l.id, "doubt",
                        "identity in doubt: the vessel labelled vein pulsates, the one labelled artery does not",
                        tuple(ev))
    # one label for both vessels (e.g. both called vein): only physiology can tell them apart
    if phys is not None and strong:
        other = pair[1] if phys.id == pair[0].id else pair[0]
        return Identity(phys.id, other.id, "physiology",
                        "both vessels had one label; the round one that pulsates is taken as the artery", tuple(ev))
    single = pair[0]
    return Identity(single.id if art_l else None, None if art_l else single.id, "labels",
                    "vessels share one label and no clear pulsation: identity from labels", tuple(ev))


class IdentityJudge:
    """Per-stream state: collects the evidence window, then relabels every frame by vessel track.

    Call :meth:`observe` with each frame's model-grid labels until :meth:`ready`; then :meth:`decide`
    once; then :meth:`relabel` for every frame (including the buffered window frames, in order)."""

    def __init__(self, grid_hw: tuple[int, int], anisotropy: float = 1.0, config: IdentityConfig | None = None):
        self.cfg = config or IdentityConfig()
        self.grid_hw = grid_hw
        self.anisotropy = anisotropy
        self.gate_px = self.cfg.gate * grid_hw[1]
        self.tracks: list[VesselTrack] = []
        self.frames = 0
        self.t0: float | None = None
        self.t_last: float | None = None
        self.identity: Identity | None = None
        self._pos: dict[int, tuple[float, float]] = {}  # track id -> latest centroid, after the decision

    def _roundness(self, b) -> float:
        """Minor/major axis in screen units from the blob's grid aspect and the grid's anisotropy."""
        a = b.aspect_vh * self.anisotropy if math.isfinite(b.aspect_vh) else float("nan")
        if not math.isfinite(a) or a <= 0:
            return float("nan")
        return min(a, 1.0 / a)

    def _vessels(self, labels: np.ndarray) -> list:
        return blobs(labels, ARTERY, self.cfg.min_area) + blobs(labels, VEIN, self.cfg.min_area)

    def observe(self, labels: np.ndarray, t: float) -> None:
        if self.t0 is None:
            self.t0 = t
        self.t_last = t
        self.frames += 1
        per: dict[int, list] = {}
        for b in self._vessels(labels):
            near = [tr for tr in self.tracks if math.dist(tr.centroid, b.centroid) <= self.gate_px]
            if near:
                tr = min(near, key=lambda tr: math.dist(tr.centroid, b.centroid))
            else:
                tr = VesselTrack(len(self.tracks), b.centroid)
                self.tracks.append(tr)
            per.setdefault(tr.id, []).append(b)
        for tid, bs in per.items():
            tr = self.tracks[tid]
            area = sum(b.area for b in bs)
            big = max(bs, key=lambda b: b.area)
            tr.centroid = (sum(b.centroid[0] * b.area for b in bs) / area, sum(b.centroid[1] * b.area for b in bs) / area)
            tr.t.append(t)
            tr.area.append(area)
            tr.artery_px.append(sum(b.area for b in bs if b.label == ARTERY))
            tr.roundness.append(self._roundness(big))

    def ready(self) -> bool:
        if self.t0 is None or self.t_last is None:
            return False
        span = self.t_last - self.t0
        if span >= self.cfg.evidence_s:
            return True
        if span < self.cfg.min_evidence_s:
            return False
        for tr in self.tracks:  # pressure has started: a big vessel shrank well below its size so far
            if len(tr.area) >= 3 and tr.area[-1] < self.cfg.press_drop * max(tr.area) and len(tr.t) >= self.frames // 2:
                return True
        return False

    def decide(self) -> Identity:
        self.identity = decide_identity(self.tracks, self.frames, self.cfg)
        self._pos = {tr.id: tr.centroid for tr in self.tracks}
        return self.identity

    def relabel(self, labels: np.ndarray) -> np.ndarray:
        """A copy of ``labels`` with each vessel component labelled by the track it belongs to (artery
        track -> 1, vein track -> 2); components near neither keep the model's label."""
        ident = self.identity
        if ident is None:
            raise RuntimeError("relabel() before decide()")
        roles = {k: v for k, v in ((ident.artery, ARTERY), (ident.vein, VEIN)) if k is not None}
        if len(roles) < 2:
            return labels
        out = labels.copy()
        moved: dict[int, list] = {}
        for b in self._vessels(labels):
            near = [(math.dist(self._pos[k], b.centroid), k) for k in roles if k in self._pos]
            near = [nk for nk in near if nk[0] <= 1.5 * self.gate_px]
            if not near:
                continue
            k = min(near)[1]
            out[b.mask] = roles[k]
            moved.setdefault(k, []).append(b)
        for k, bs in moved.items():
            area = sum(b.area for b in bs)
            self._pos[k] = (sum(b.centroid[0] * b.area for b in bs) / area, sum(b.centroid[1] * b.area for b in bs) / area)
        return out
