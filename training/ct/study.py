"""A CT phantom study and its lesions: the records the renderers fill and the writers read.

:mod:`training.ct.phantom` and :mod:`training.ct.second_renderer` (and :mod:`training.ct.real_lesions`) build
:class:`Study` objects; :mod:`training.ct.phantom_io` writes them as DICOM, NIfTI and ``ground_truth.json``. Kept
apart from the renderer so the writers need not import it (the renderer's CLI imports the writers). Geometry and
ground-truth conventions: see :mod:`training.ct.phantom`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Lesion:
    """A thrombus or a mimic. ``boxes`` maps slice index -> [x0, y0, x1, y1] original pixels (x1/y1 exclusive)."""

    kind: str  # "partial" | "occlusive" | "mixing_streak"
    side: int  # -1 = patient right (image left), +1 = patient left
    level_mm: tuple[float, float]  # anatomical level range (mm caudal of the study origin)
    params: dict
    boxes: dict[int, list[float]] = field(default_factory=dict)

    @property
    def slice_range(self) -> tuple[int, int]:
        keys = sorted(self.boxes)
        return (keys[0], keys[-1]) if keys else (-1, -1)

    def to_json(self) -> dict:
        s0, s1 = self.slice_range
        return {
            "kind": self.kind, "side": "left" if self.side > 0 else "right",
            "length_mm": round(self.level_mm[1] - self.level_mm[0], 2),
            "slice_start": s0, "slice_end": s1,
            "boxes": {str(k): [round(float(v), 2) for v in b] for k, b in sorted(self.boxes.items())},
        }


@dataclass
class Study:
    """One phantom study. hu: (n, H, W) float32 HU, ascending position. positions_mm: (n,) slice-centre z."""

    seed: int
    hu: np.ndarray
    positions_mm: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    thickness_mm: float
    thrombi: list[Lesion]
    mimics: list[Lesion]
    veins: list[dict[int, tuple[float, float, float]]]  # per slice: side -> (x, y, radius) pixels
    distractors: list[list[tuple[float, float]]] = field(default_factory=list)  # per slice: (x, y) px of mimics


    def gt_boxes(self, index: int) -> list[list[float]]:
        """Thrombus boxes on slice ``index`` (original pixels)."""
        return [t.boxes[index] for t in self.thrombi if index in t.boxes]


def box_of(coverage: np.ndarray) -> list[float] | None:
    """[x0, y0, x1, y1] (x1/y1 exclusive) of the pixels whose coverage exceeds 0.5, or None below 2 such pixels."""
    return box_of_mask(coverage > 0.5)


def box_of_mask(m: np.ndarray) -> list[float] | None:
    """[x0, y0, x1, y1] (x1/y1 exclusive) of the True pixels of ``m``, or None below 2 of them."""
    if m.sum() < 2:
        return None
    rows, cols = np.nonzero(m)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]
