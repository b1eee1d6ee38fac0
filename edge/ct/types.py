"""Data types of the CT job, shared by readers, the streaming detector, linking, metrics and phantoms.

Coordinates: ``row`` is y, ``col`` is x. Boxes are [x0, y0, x1, y1] in pixels, x1/y1 exclusive, floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CTSlice:
    """One axial CT slice in Hounsfield units.

    hu: (H, W) float32 HU (RescaleSlope/Intercept applied). Owned by the receiver once handed over.
    index: position in the series sorted by position along the slice normal, ascending, 0 = first. For a
        stream whose total is not yet known this is the arrival-order index after sorting what has arrived.
    position_mm: signed position along the slice normal (ImagePositionPatient . normal).
    pixel_spacing_mm: (row spacing, column spacing) in mm.
    thickness_mm: SliceThickness when present, else the spacing between neighbours, else None.
    """

    hu: np.ndarray
    index: int
    position_mm: float
    pixel_spacing_mm: tuple[float, float]
    thickness_mm: float | None = None
    series_uid: str = ""
    sop_uid: str = ""
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Detection:
    """One box on one slice, in the ORIGINAL pixel grid of that slice."""

    slice_index: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    score: float  # probability in [0, 1]


@dataclass(frozen=True)
class Finding:
    """A DVT candidate: detections linked across consecutive slices."""

    slice_start: int
    slice_end: int  # inclusive
    box: tuple[float, float, float, float]  # on the slice with the highest score (original pixels)
    box_mm: tuple[float, float, float, float]  # same box in mm from the slice's top-left pixel corner
    score: float  # max score
    mean_score: float
    peak_slice: int
    detections: tuple[Detection, ...] = ()

    def to_json(self) -> dict:
        return {
            "slice_start": self.slice_start,
            "slice_end": self.slice_end,
            "box": [round(float(v), 1) for v in self.box],
            "box_mm": [round(float(v), 2) for v in self.box_mm],
            "score": round(float(self.score), 4),
            "mean_score": round(float(self.mean_score), 4),
            "peak_slice": self.peak_slice,
            "n_slices": self.slice_end - self.slice_start + 1,
        }
