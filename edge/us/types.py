"""Result types of the ultrasound job, passed from the pipeline to the sinks.

Pixel conventions: ``labels``/``Blob`` geometry are on the MODEL grid (spec input H x W); ``region`` maps
that grid onto the screen frame; areas named ``*_px`` in reports are SCREEN pixels (model-grid area x
``px_per_model_px``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

Region = tuple[int, int, int, int]  # x, y, w, h in screen pixels


class VerdictKind(StrEnum):
    """The three verdicts. A ``str``: JSON, DICOM and text outputs carry the plain value."""

    COMPRESSIBLE = "compressible"
    NON_COMPRESSIBLE = "non_compressible"
    INDETERMINATE = "indeterminate"


class VeinStatus(StrEnum):
    """What the tracker concluded about the vein in one frame (``TrackState.vein_status``)."""

    TRACKED = "tracked"  # a vein blob followed from the previous frames
    COLLAPSED = "collapsed"  # no vein blob, but it was seen shrinking just before: compressed shut
    LOST = "lost"  # no vein blob, and it was not closing: a dropout
    SEARCHING = "searching"  # no vein found yet


@dataclass(frozen=True)
class Blob:
    """One connected component of one class on the model grid."""

    label: int  # 1 artery, 2 vein
    area: float  # model-grid pixels
    centroid: tuple[float, float]  # (x, y) model-grid pixels
    bbox: tuple[int, int, int, int]  # x, y, w, h model-grid pixels
    axis_ratio: float  # minor/major axis of the equivalent ellipse (1 = round, -> 0 = flat)
    aspect_vh: float = float("nan")  # vertical / horizontal extent (sqrt(mu02/mu20)) on the MODEL grid
    mask: np.ndarray = field(repr=False, compare=False, default=None)  # (H, W) bool on the model grid


@dataclass(frozen=True)
class TrackState:
    """What the tracker concluded for one frame."""

    vein_status: VeinStatus
    vein: Blob | None
    artery: Blob | None
    vein_area_px: float | None  # screen px; 0.0 when collapsed; None when lost/searching
    artery_aspect: float | None = None  # artery height / width in SCREEN units: the pressure gauge


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictKind
    reason: str  # one short sentence a clinician can read
    compressibility: float | None  # 1 - min/baseline, 0..1
    baseline_vein_area_px: float | None
    min_vein_area_px: float | None
    artery_flattening: float | None  # 1 - (flattest artery aspect / resting aspect), height/width
    pressure_adequate: bool | None
    final: bool  # False while the stream is running (provisional)

    def to_json(self) -> dict:
        r = lambda v, n=4: None if v is None else round(float(v), n)  # noqa: E731
        return {
            "verdict": self.verdict, "reason": self.reason, "compressibility": r(self.compressibility),
            "baseline_vein_area_px": r(self.baseline_vein_area_px, 1), "min_vein_area_px": r(self.min_vein_area_px, 1),
            "artery_flattening": r(self.artery_flattening), "pressure_adequate": self.pressure_adequate,
            "final": self.final,
        }


@dataclass(frozen=True)
class FrameResult:
    """Everything one processed frame produced. ``frame`` is the screen image the clinician sees."""

    index: int  # source frame index
    t_capture: float  # monotonic seconds
    t_media: float | None
    frame: np.ndarray  # screen frame (HxW grey or HxWx3 BGR), owned by this result
    labels: np.ndarray  # (H, W) uint8 model-grid labels 0/1/2, owned by this result
    region: Region  # x, y, w, h of the image region on the screen
    track: TrackState
    verdict: Verdict
    stage_ms: dict[str, float]  # preprocess, infer, postprocess, track, measure
    t_done: float  # monotonic seconds when the verdict update finished
