"""Follow the vein (and its landmark, the artery) through a compression manoeuvre.

Why the artery: a healthy vein disappears under pressure, so "no vein blob" must be told apart from
"vein lost". The artery stays visible (it barely deforms), so the tracker anchors the vein to it: the
vein's offset from the artery is learned while both are seen and predicts where the vein should be.
When no vein blob is near that prediction, the vein counts as COLLAPSED only if it was seen shrinking
just before (its last seen area was below ``collapse_fraction`` of its baseline, within
``collapse_memory_s``); otherwise it is LOST. A vein never jumps from full size to nothing between
frames at 15-60 fps; a segmentation dropout does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.us.postprocess import ARTERY, VEIN, blobs
from edge.us.types import Blob, TrackState, VeinStatus


@dataclass(frozen=True)
class TrackerConfig:
    min_blob_area: float = 12.0  # model-grid px; smaller components are noise
    gate: float = 0.18  # max centre jump per frame, as a fraction of the model grid width
    collapse_fraction: float = 0.5  # last seen area below this x baseline -> a disappearance is a collapse
    collapse_memory_s: float = 0.6  # ... if that last sighting is this recent
    offset_smoothing: float = 0.2  # EMA weight of the newest artery->vein offset


def _dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


class VesselTracker:
    """Per-stream state: create one per manoeuvre/stream; call :meth:`update` once per frame in order."""

    def __init__(self, grid_hw: tuple[int, int], px_per_model_px: float, config: TrackerConfig | None = None,
                 anisotropy: float = 1.0):
        """grid_hw: model grid (H, W). px_per_model_px: screen pixels per model-grid pixel (area).
        anisotropy: (screen px per grid row) / (screen px per grid column), to turn grid aspects into screen ones."""
        self.cfg = config or TrackerConfig()
        self.anisotropy = anisotropy
        self.grid_hw = grid_hw
        self.px = px_per_model_px
        self.gate_px = self.cfg.gate * grid_hw[1]
        self.artery_pos: tuple[float, float] | None = None
        self.vein_pos: tuple[float, float] | None = None
        self.offset: tuple[float, float] | None = None  # vein centroid - artery centroid
        self.vein_peak_area = 0.0  # largest vein area seen (model px): the running baseline
        self.last_vein_area = 0.0
        self.last_vein_t: float | None = None

    def _pick_artery(self, arteries: list[Blob]) -> Blob | None:
        if not arteries:
            return None
        if self.artery_pos is None:
            return arteries[0]
        near = [b for b in arteries if _dist(b.centroid, self.artery_pos) <= self.gate_px]
        return min(near, key=lambda b: _dist(b.centroid, self.artery_pos)) if near else None

    def _predicted_vein(self, artery: Blob | None) -> tuple[float, float] | None:
        if artery is not None and self.offset is not None:
            return artery.centroid[0] + self.offset[0], artery.centroid[1] + self.offset[1]
        return self.vein_pos

    def _pick_vein(self, veins: list[Blob], artery: Blob | None) -> Blob | None:
        if not veins:
            return None
        predicted = self._predicted_vein(artery)
        if predicted is None:  # first acquisition: the largest vein, preferring one beside the artery
            if artery is not None:
                beside = [v for v in veins if _dist(v.centroid, artery.centroid) <= 2.5 * self.gate_px]
                if beside:
                    return beside[0]
            return veins[0]
        # a shrinking vein's centroid moves little; a larger gate when re-acquiring after a collapse
        gate = self.gate_px * (1.5 if self.last_vein_area < self.cfg.collapse_fraction * self.vein_peak_area else 1.0)
        near = [v for v in veins if _dist(v.centroid, predicted) <= gate]
        return min(near, key=lambda v: _dist(v.centroid, predicted)) if near else None

    def update(self, labels, t: float) -> TrackState:
        """Track on one frame's model-grid label map at monotonic/media time ``t`` seconds."""
        arteries = blobs(labels, ARTERY, self.cfg.min_blob_area)
        veins = blobs(labels, VEIN, self.cfg.min_blob_area)
        artery = self._pick_artery(arteries)
        if artery is not None:
            self.artery_pos = artery.centroid
        aspect = None if artery is None or not math.isfinite(artery.aspect_vh) else artery.aspect_vh * self.anisotropy
        vein = self._pick_vein(veins, artery)
        if vein is not None:
            self.vein_pos = vein.centroid
            if artery is not None:
                new = (vein.centroid[0] - artery.centroid[0], vein.centroid[1] - artery.centroid[1])
                a = self.cfg.offset_smoothing if self.offset is not None else 1.0
                self.offset = new if self.offset is None else (
                    (1 - a) * self.offset[0] + a * new[0], (1 - a) * self.offset[1] + a * new[1])
            self.vein_peak_area = max(self.vein_peak_area, vein.area)
            self.last_vein_area, self.last_vein_t = vein.area, t
            return TrackState(VeinStatus.TRACKED, vein, artery, vein.area * self.px, aspect)
        if self.last_vein_t is None:
            return TrackState(VeinStatus.SEARCHING, None, artery, None, aspect)
        shrinking = self.last_vein_area < self.cfg.collapse_fraction * self.vein_peak_area
        recent = (t - self.last_vein_t) <= self.cfg.collapse_memory_s
        if artery is not None and shrinking and recent:
            # stays "recent" for as long as the collapse lasts: refresh the sighting time at zero area
            self.last_vein_area, self.last_vein_t = 0.0, t
            predicted = self._predicted_vein(artery)
            if predicted is not None:
                self.vein_pos = predicted
            return TrackState(VeinStatus.COLLAPSED, None, artery, 0.0, aspect)
        return TrackState(VeinStatus.LOST, None, artery, None, aspect)
