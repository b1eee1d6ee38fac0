"""Model output -> label map -> vessel components (pure functions)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.us.types import Blob

ARTERY, VEIN = 1, 2


def labels_from_logits(logits: np.ndarray) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) logits (any float dtype) -> (H, W) uint8 argmax labels."""
    if logits.ndim == 4:
        logits = logits[0]
    return logits.argmax(0).astype(np.uint8)


def axis_ratio(mask: np.ndarray) -> float:
    """Minor/major axis ratio of the ellipse with the same second moments as ``mask`` (1 = round)."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if m["m00"] <= 0:
        return float("nan")
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    common = np.sqrt(4 * mu11 ** 2 + (mu20 - mu02) ** 2)
    lam1, lam2 = (mu20 + mu02 + common) / 2, (mu20 + mu02 - common) / 2
    if lam1 <= 0:
        return float("nan")
    return float(np.sqrt(max(lam2, 0.0) / lam1))


def vertical_aspect(mask: np.ndarray) -> float:
    """Vertical / horizontal extent of ``mask`` from its central second moments: sqrt(mu02 / mu20).

    Why not minor/major: the probe presses along the beam (vertical) axis, and the image region is
    resized anisotropically onto the model grid, so a round artery may look tall there; its vertical
    extent is what pressure shrinks, whatever the grid's aspect.
    """
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if m["m00"] <= 0 or m["mu20"] <= 0:
        return float("nan")
    return float(np.sqrt(m["mu02"] / m["mu20"]))


def blobs(labels: np.ndarray, label: int, min_area: float) -> list[Blob]:
    """Connected components of ``label`` with area >= ``min_area`` model-grid pixels, largest first."""
    binary = (labels == label).astype(np.uint8)
    n, comp, stats, cents = cv2.connectedComponentsWithStats(binary, connectivity=8)
    out = []
    for i in range(1, n):
        area = float(stats[i, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        mask = comp == i
        out.append(Blob(
            label=label, area=area, centroid=(float(cents[i, 0]), float(cents[i, 1])),
            bbox=tuple(int(v) for v in stats[i, :4]), axis_ratio=axis_ratio(mask),
            aspect_vh=vertical_aspect(mask), mask=mask,
        ))
    out.sort(key=lambda b: b.area, reverse=True)
    return out
